"""What every ``oasis`` subcommand shares: the options that find settings, and errors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from oasis.config import ConfigError, Settings, load_settings

console = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML or YAML config file.")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Where state and caches live.")]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` as an error; the exit to raise."""
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def settings_from(config: Path | None, **overrides: object) -> Settings:
    """The settings as ``serve`` would load them, or exit 2 saying what is wrong."""
    try:
        return load_settings(config, **overrides)
    except ConfigError as exc:
        raise fail(str(exc)) from exc


def table_console() -> Console:
    """The console for results. Piped into ``grep`` or a file, rows are never cut to the
    80 columns Rich assumes without a terminal: each stays on one line, however long."""
    out = Console()
    return out if out.is_terminal else Console(width=100_000)
