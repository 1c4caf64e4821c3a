"""The servers behind one remote model: pooled connections, balancing, health, errors.

Each base URL gets one pooled :class:`httpx.AsyncClient` for the life of the model. A
request goes to the healthy upstream with the fewest requests in flight (least outstanding
requests). A connect error marks an upstream down and the request moves to another one:
nothing was sent, so repeating it is safe; no other failure is retried, so a generation is
never run twice. A background check (``GET /models``) takes a dead upstream out and puts
it back when it answers again.

Upstream answers become our errors here, at the boundary: a 4xx stays a 4xx naming the
parameter, a 5xx or an unreachable server is a 503 the SDK retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from oasis.errors import (
    EngineUnreachableError,
    InvalidRequestError,
    ModelUnavailableError,
    OasisError,
    PayloadTooLargeError,
    RateLimitError,
)

log = logging.getLogger(__name__)

# Client errors that are the operator's to fix (a wrong key or model name in the config),
# not the caller's: the caller gets a 503 that says so, not a 401 about its own key.
_CONFIG_STATUSES = {401, 403, 404}
# How long the rest of a body after its ``[DONE]`` may take to arrive.
_DRAIN_SECONDS = 1.0


@dataclass(frozen=True)
class UpstreamConfig:
    """How to reach the servers of one model (from the spec's source and options)."""

    model_id: str
    urls: tuple[str, ...]
    api_key: str | None = None
    connect_timeout: float = 5.0
    # Seconds between two pieces of an answer; a long prompt may take a while to start.
    read_timeout: float = 600.0
    health_interval: float = 5.0
    max_connections: int = 256


class Upstream:
    """One server: its connection pool, requests in flight, and whether it is up."""

    def __init__(self, url: str, config: UpstreamConfig) -> None:
        self.url = url
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self.client = httpx.AsyncClient(
            base_url=url,
            headers=headers,
            timeout=httpx.Timeout(config.read_timeout, connect=config.connect_timeout, pool=None),
            limits=httpx.Limits(
                max_connections=config.max_connections,
                max_keepalive_connections=config.max_connections,
            ),
            trust_env=False,  # an engine on loopback must not be sent through a proxy
        )
        self.outstanding = 0
        self.healthy = True

    def mark(self, healthy: bool, why: str = "") -> None:
        if healthy != self.healthy:
            if healthy:
                log.info("upstream %s is back", self.url)
            else:
                log.warning("upstream %s is down: %s", self.url, why)
        self.healthy = healthy


class UpstreamStream:
    """An upstream answer being streamed. ``aclose()`` hangs up on the server (the
    connection closes, so the server sees the client go) and frees the upstream's slot."""

    def __init__(self, upstream: Upstream, response: httpx.Response) -> None:
        self.upstream = upstream
        self.response = response
        self._closed = False

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """The JSON payload of each server-sent event, until ``[DONE]`` or the end."""
        data: list[str] = []
        lines = self.response.aiter_lines()
        try:
            async for line in lines:
                if line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
                    continue
                if line or not data:
                    continue  # comments (pings), other fields, blank lines between events
                payload, data = "\n".join(data), []
                if payload == "[DONE]":
                    await _drain(lines)
                    return
                yield _json_object(payload, self.upstream.url)
        except httpx.HTTPError as exc:
            raise EngineUnreachableError(
                f"The engine at {self.upstream.url} broke off its answer: {type(exc).__name__}."
            ) from exc
        if data and data != ["[DONE]"]:
            yield _json_object("\n".join(data), self.upstream.url)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The raw body as it arrives (audio), errors translated."""
        try:
            async for chunk in self.response.aiter_bytes():
                if chunk:
                    yield chunk
        except httpx.HTTPError as exc:
            raise EngineUnreachableError(
                f"The engine at {self.upstream.url} broke off its answer: {type(exc).__name__}."
            ) from exc

    async def read(self) -> bytes:
        """The whole body, errors translated."""
        try:
            return await self.response.aread()
        except httpx.HTTPError as exc:
            raise EngineUnreachableError(
                f"The engine at {self.upstream.url} broke off its answer: {type(exc).__name__}."
            ) from exc

    @property
    def content_type(self) -> str:
        return str(self.response.headers.get("content-type", ""))

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.upstream.outstanding -= 1
        # Shielded: a cancelled reader (the client hung up) must still close the socket.
        await asyncio.shield(self.response.aclose())


ParamMap = Callable[[str | None], str | None]
# Multipart file fields: name -> (filename, content, content type).
FileFields = dict[str, tuple[str, bytes, str]]


def _form_fields(body: dict[str, Any]) -> dict[str, str | list[str]]:
    """``body`` as multipart form fields: scalars as text, lists as ``name[]``."""
    fields: dict[str, str | list[str]] = {}
    for name, value in body.items():
        if value is None:
            continue
        if isinstance(value, list):
            fields[f"{name}[]"] = [_form_text(v) for v in value]
        else:
            fields[name] = _form_text(value)
    return fields


def _form_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


class UpstreamPool:
    """Every upstream of one model, balanced, health-checked, with errors translated."""

    def __init__(self, config: UpstreamConfig) -> None:
        self.config = config
        self.upstreams = [Upstream(url, config) for url in config.urls]
        self._turn = 0
        self._health: asyncio.Task[None] | None = None

    def _pick(self, tried: set[int]) -> int | None:
        """The least busy healthy upstream not yet tried; any untried one when none is
        healthy (the check may be behind); None when all were tried."""
        fresh = [i for i in range(len(self.upstreams)) if i not in tried]
        healthy = [i for i in fresh if self.upstreams[i].healthy] or fresh
        if not healthy:
            return None
        self._turn += 1  # ties go round the upstreams in turn
        n = len(self.upstreams)
        return min(healthy, key=lambda i: (self.upstreams[i].outstanding, (i - self._turn) % n))

    async def stream(
        self,
        path: str,
        body: dict[str, Any],
        param_map: ParamMap = lambda name: name,
        *,
        files: FileFields | None = None,
    ) -> UpstreamStream:
        """POST ``body`` to ``path`` and return the streamed answer once its status is 2xx.

        With ``files``, ``body`` goes as the fields of a multipart form (list values as
        repeated ``name[]`` fields, as the SDK sends them) beside those files; without,
        as JSON. A connect error moves on to the next upstream (each is tried once, a lone one
        twice); anything else raises the translated error.
        """
        self._start_health_checks()
        tried: set[int] = set()
        attempts = max(2, len(self.upstreams))
        last: Exception | None = None
        for _ in range(attempts):
            index = self._pick(tried)
            if index is None:
                break
            if len(self.upstreams) > 1:
                tried.add(index)
            upstream = self.upstreams[index]
            if files is None:
                request = upstream.client.build_request("POST", path, json=body)
            else:
                request = upstream.client.build_request(
                    "POST", path, data=_form_fields(body), files=files
                )
            upstream.outstanding += 1
            try:
                response = await upstream.client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                upstream.outstanding -= 1
                upstream.mark(False, str(exc) or type(exc).__name__)
                last = exc
                continue
            except BaseException as exc:
                upstream.outstanding -= 1
                if isinstance(exc, httpx.HTTPError):
                    raise self._unreachable(upstream, exc) from exc
                raise
            upstream.mark(True)
            answer = UpstreamStream(upstream, response)
            if response.status_code >= 400:
                try:
                    raw = await response.aread()
                except httpx.HTTPError:
                    raw = b""
                finally:
                    await answer.aclose()
                raise self._status_error(upstream, response, raw, param_map)
            return answer
        raise EngineUnreachableError(
            f"The engine of `{self.config.model_id}` cannot be reached"
            + (f" ({type(last).__name__})." if last else ".")
        )

    def _unreachable(self, upstream: Upstream, exc: Exception) -> EngineUnreachableError:
        return EngineUnreachableError(
            f"The engine of `{self.config.model_id}` at {upstream.url} failed: "
            f"{type(exc).__name__}."
        )

    def _status_error(
        self, upstream: Upstream, response: httpx.Response, raw: bytes, param_map: ParamMap
    ) -> OasisError:
        status = response.status_code
        message, param, code = _error_fields(raw)
        if status >= 500:
            return EngineUnreachableError(
                f"The engine of `{self.config.model_id}` failed with {status}: {message}"
            )
        if status in _CONFIG_STATUSES:
            return ModelUnavailableError(
                f"The engine of `{self.config.model_id}` at {upstream.url} refused the "
                f"request ({status}): {message} Check the model's `url`, `api_key` and "
                "`upstream_model`."
            )
        if status == 413:
            return PayloadTooLargeError(message, param=param_map(param), code=code)
        if status == 429:
            retry = response.headers.get("retry-after", "1")
            return RateLimitError(message, retry_after=int(retry) if retry.isdigit() else 1)
        return InvalidRequestError(message, param=param_map(param), code=code)

    def _start_health_checks(self) -> None:
        if self._health is None and self.config.health_interval > 0:
            self._health = asyncio.create_task(self._check_health(), name="upstream health")

    async def _check_health(self) -> None:
        while True:
            await asyncio.sleep(self.config.health_interval)
            try:
                await asyncio.gather(*(self._probe(u) for u in self.upstreams))
            except Exception:  # a failed round must not end the checks for good
                log.exception("health check of `%s` failed", self.config.model_id)

    async def _probe(self, upstream: Upstream) -> None:
        try:
            response = await upstream.client.get(
                "/models", timeout=max(self.config.connect_timeout, 1.0)
            )
        except httpx.TimeoutException as exc:
            # Connected but slow: a server busy generating may answer nothing else
            # (llama-cpp-python's holds one lock for both); only a refused connection
            # means it is gone.
            if isinstance(exc, httpx.ConnectTimeout):
                upstream.mark(False, "connect timeout")
            return
        except httpx.HTTPError as exc:
            upstream.mark(False, str(exc) or type(exc).__name__)
            return
        upstream.mark(response.status_code < 500, f"GET /models answered {response.status_code}")

    async def reachable(self) -> bool:
        """Whether any upstream answers ``GET /models`` now (probed afresh: readiness must
        not wait for the next periodic check)."""
        await asyncio.gather(*(self._probe(u) for u in self.upstreams))
        return any(u.healthy for u in self.upstreams)

    async def close(self) -> None:
        if self._health is not None:
            self._health.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health
        for upstream in self.upstreams:
            await upstream.client.aclose()


def event_error(event: dict[str, Any], model_id: str) -> OasisError | None:
    """The error an upstream reports inside its stream (after its 200), if this event is one."""
    if "error" not in event or event.get("choices"):
        return None
    message, _, _ = _error_fields(json.dumps(event).encode())
    return EngineUnreachableError(f"The engine of `{model_id}` failed while answering: {message}")


async def _drain(lines: AsyncIterator[str]) -> None:
    """Read what follows ``[DONE]`` (the end of the chunked body): a response closed
    before its end takes its connection with it, and the next request would pay for a new
    one. A server that keeps the stream open past ``[DONE]`` loses its connection."""
    with contextlib.suppress(TimeoutError, httpx.HTTPError):
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for _ in lines:
                pass


def _json_object(payload: str, url: str) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except ValueError as exc:
        problem = f"The engine at {url} sent an event that is not JSON."
        raise EngineUnreachableError(problem) from exc
    if not isinstance(value, dict):
        raise EngineUnreachableError(f"The engine at {url} sent an event that is not an object.")
    return value


def _error_fields(raw: bytes) -> tuple[str, str | None, str | None]:
    """(message, param, code) of an upstream error body: the OpenAI envelope, FastAPI's
    ``detail``, or plain text."""
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        body = json.loads(text)
    except ValueError:
        return text[:2000] or "(no message)", None, None
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail") or json.dumps(error)[:2000]
        param = error.get("param")
        code = error.get("code")
        return (
            str(message),
            param if isinstance(param, str) else None,
            code if isinstance(code, str) else None,
        )
    return str(error)[:2000], None, None
