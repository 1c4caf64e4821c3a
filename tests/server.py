"""Start and stop a real ``oasis serve`` process for tests (free port, temp data dir)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from openai import OpenAI

OASIS = str(Path(sys.executable).with_name("oasis"))


REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
        )
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def write_config(path: Path, config: dict[str, Any]) -> Path:
    """Write ``config`` as TOML: scalars and inline tables first, then ``[[models]]``."""
    lines: list[str] = []
    for key, value in config.items():
        if key not in {"models", "aliases"}:
            lines.append(f"{key} = {_toml_value(value)}")
    if config.get("aliases"):
        lines.append("[aliases]")
        lines += [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in config["aliases"].items()]
    for model in config.get("models", []):
        lines.append("[[models]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in model.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Server:
    """A running server. ``stop()`` ends it; ``start_server`` on the same dir restarts."""

    base_url: str
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    config_path: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 20) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def kill(self) -> None:
        """Stop abruptly, as a crash would."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def start_server(
    data_dir: Path,
    *,
    config: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
    port: int | None = None,
    timeout: float = 120,
    prefix: list[str] | None = None,
) -> Server:
    """Start ``oasis serve`` and wait until ``/health`` answers. ``prefix`` is a command
    the server runs under (it must exec it, so the server keeps the process id)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    cmd = [OASIS, "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]
    config_path = None
    if config is not None:
        config_path = write_config(data_dir / "oasis-test.toml", config)
        cmd += ["--config", str(config_path)]
    cmd = [*(prefix or []), *cmd, *(args or [])]
    full_env = {**os.environ, "OASIS_API_KEYS": "", **(env or {})}
    # The repository root last on the path: test plugins (``tests.scripted_engine``) import
    # in the server as a third-party module would, after the code under test.
    paths = [p for p in full_env.get("PYTHONPATH", "").split(os.pathsep) if p]
    full_env["PYTHONPATH"] = os.pathsep.join([*paths, str(REPO_ROOT)])
    log_path = data_dir / f"server-{port}.log"
    with log_path.open("ab") as log_file:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=full_env)
    server = Server(
        f"http://127.0.0.1:{port}", port, data_dir, process, log_path, config_path, env or {}
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"oasis serve exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.base_url}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"oasis serve did not become healthy in {timeout}s:\n{server.log()}")


def oasis_cli(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run ``oasis ARGS --data-dir DATA_DIR``; its stdout (the secret, the id), stripped."""
    result = subprocess.run(
        [OASIS, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OASIS_API_KEYS": "", **(env or {})},
    )
    if result.returncode != 0:
        raise RuntimeError(f"oasis {' '.join(args)} failed:\n{result.stderr}{result.stdout}")
    return result.stdout.strip()


def sdk_for(server: Server, key: str) -> OpenAI:
    """The official SDK with strict validation, for ``key``."""
    return OpenAI(
        base_url=server.api_url,
        api_key=key,
        max_retries=0,
        timeout=300,
        _strict_response_validation=True,
    )
