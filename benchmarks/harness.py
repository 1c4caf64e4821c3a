"""What every benchmark shares: a real server that always stops, and one result file.

Each benchmark measures oasis beside the runtime it wraps in one run, then writes its
summary to ``benchmarks/results/<name>.json`` with the machine's core count, so results
from different machines are never mistaken for each other.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.server import Server, start_server

RESULTS = Path(__file__).resolve().parent / "results"


@contextmanager
def served(
    data_dir: Path,
    config: dict[str, Any] | None = None,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> Iterator[Server]:
    """``oasis serve`` on ``data_dir`` for the duration of the block."""
    server = start_server(data_dir, config=config, env=env, timeout=timeout)
    try:
        yield server
    finally:
        server.stop()


def write_result(name: str, summary: dict[str, Any], out: Path | None = None) -> Path:
    """Write ``summary`` (with the benchmark's name and the core count first) and print it."""
    payload = {"benchmark": name, "cores": os.cpu_count(), **summary}
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(payload, indent=2))
    return path
