"""``oasis keys``, ``oasis projects`` and ``oasis usage``: the operator's commands.

They open the server's database directly (the same settings as ``serve``: ``--config``,
``--data-dir``, ``OASIS_DATABASE_URL``), so they work whether or not a server is running;
a running server sees a new or revoked key on its next request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, TypeVar

import typer
from rich.table import Table

from oasis.cli_common import (
    ConfigOpt,
    DataDirOpt,
    console,
    fail,
    settings_from,
    table_console,
)
from oasis.config import Settings
from oasis.owners import OwnerIds
from oasis.store import Store, open_store
from oasis.store.keys import ApiKey
from oasis.store.projects import ProjectExistsError

keys_app = typer.Typer(help="Issue, list and revoke API keys.", no_args_is_help=True)
projects_app = typer.Typer(help="Create and list projects.", no_args_is_help=True)

T = TypeVar("T")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

RpmOpt = Annotated[int | None, typer.Option("--rpm", min=1, help="Requests per minute.")]
TpmOpt = Annotated[int | None, typer.Option("--tpm", min=1, help="Tokens per minute.")]


def _with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    async def run() -> T:
        secret = settings.owner_secret
        owner_ids = OwnerIds(settings.data_dir, secret.get_secret_value() if secret else None)
        owner_ids.open()
        store = await open_store(settings, owner_ids)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def when_keys_exist(settings: Settings) -> bool:
    """Whether the database holds any issued key (so a public bind is not open to all)."""
    return _with_store(settings, lambda store: store.keys.any())


def parse_expiry(text: str, now: float) -> int:
    """``30d``, ``12h``, ``90m``, ``3600s`` from now, or an ISO-8601 date or time (UTC)."""
    match = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if match:
        return int(now) + int(match.group(1)) * _UNITS[match.group(2)]
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"--expires {text!r}: give a duration (30d, 12h, 90m) or an ISO date") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when.timestamp() <= now:
        raise fail(f"--expires {text!r} is in the past")
    return int(when.timestamp())


async def _project_id(store: Store, project: str | None) -> str | None:
    """The id of the project named (or numbered) ``project``; exit 2 if there is none."""
    if project is None:
        return None
    found = await store.projects.find(project)
    if found is None:
        raise fail(f"no project {project!r}; create it with `oasis projects create`")
    return found.id


def _when(stamp: int | None) -> str:
    if stamp is None:
        return ""
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M")


def _number(value: int | None) -> str:
    return "" if value is None else str(value)


@keys_app.command("create")
def create_key(
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="The project's name or id.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="A label for the key.")] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="30d, 12h, 90m, or an ISO date.")
    ] = None,
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
    admin: Annotated[
        bool, typer.Option("--admin", help="An admin key: the Usage API only, no project.")
    ] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Issue a key and print its secret (on stdout, once: only its hash is kept)."""
    if admin == (project is not None):
        raise fail("give either --project NAME or --admin")
    settings = settings_from(config, data_dir=data_dir)
    expires_at = parse_expiry(expires, time.time()) if expires else None

    async def work(store: Store) -> tuple[str, str]:
        project_id = await _project_id(store, project)
        key, secret = await store.keys.create(
            project_id=project_id, name=name, admin=admin, expires_at=expires_at, rpm=rpm, tpm=tpm
        )
        return key.id, secret

    key_id, secret = _with_store(settings, work)
    console.print(f"created {key_id}; the secret below is shown only now")
    typer.echo(secret)


@keys_app.command("list")
def list_keys(
    project: Annotated[str | None, typer.Option("--project", "-p")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array, for scripts.")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Every issued key (never a secret), oldest first."""
    settings = settings_from(config, data_dir=data_dir)

    async def work(store: Store) -> tuple[list[ApiKey], dict[str, str]]:
        names = {p.id: p.name for p in await store.projects.list()}
        return await store.keys.list(await _project_id(store, project)), names

    keys, names = _with_store(settings, work)
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(k) for k in keys], indent=2))
        return
    table = Table("id", "name", "project", "key", "created", "expires", "revoked", "rpm", "tpm")
    for k in keys:
        owner = "(admin)" if k.admin else names.get(k.project_id or "", k.project_id or "")
        table.add_row(
            k.id, k.name or "", owner, k.redacted, _when(k.created_at), _when(k.expires_at),
            _when(k.revoked_at), _number(k.rpm), _number(k.tpm),
        )  # fmt: skip
    table_console().print(table)


@keys_app.command("revoke")
def revoke_key(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_…), from `oasis keys list`.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Revoke a key: every server sharing the database refuses it from its next request."""
    settings = settings_from(config, data_dir=data_dir)
    if not _with_store(settings, lambda store: store.keys.revoke(key_id)):
        raise fail(f"no key {key_id!r} that is not already revoked", 1)
    console.print(f"revoked {key_id}")


@projects_app.command("create")
def create_project(
    name: Annotated[str, typer.Argument(help="A name unique to this server.")],
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
    max_tokens: Annotated[
        int | None,
        typer.Option("--max-tokens", min=1, help="Ceiling on one request's output tokens."),
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a project (its id on stdout). Its keys share its objects and its limits."""
    settings = settings_from(config, data_dir=data_dir)
    try:
        project = _with_store(
            settings,
            lambda store: store.projects.create(name, rpm=rpm, tpm=tpm, max_tokens=max_tokens),
        )
    except ProjectExistsError as exc:
        raise fail(str(exc)) from exc
    console.print(f"created project {name}")
    typer.echo(project.id)


@projects_app.command("list")
def list_projects(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Every project, oldest first."""
    settings = settings_from(config, data_dir=data_dir)
    table = Table("id", "name", "created", "rpm", "tpm", "max tokens")
    for p in _with_store(settings, lambda store: store.projects.list()):
        table.add_row(
            p.id, p.name, _when(p.created_at), _number(p.rpm), _number(p.tpm),
            _number(p.max_tokens),
        )  # fmt: skip
    table_console().print(table)


def usage_table(
    days: Annotated[int, typer.Option("--days", min=1, help="How many days back.")] = 7,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Usage per day (UTC) and model: requests, tokens, audio, images, tool calls, container
    sessions (``code_interpreter_sessions``) and the change in stored vector store bytes."""
    settings = settings_from(config, data_dir=data_dir)
    today = int(time.time()) // 86400 * 86400
    since = today - (days - 1) * 86400
    rows = _with_store(settings, lambda store: store.usage.daily(since))
    table = Table(
        "day", "endpoint", "model", "requests", "input", "cached", "output", "other",
        title=f"usage since {_when(since)[:10]}",
    )  # fmt: skip
    for row in rows:
        other = []
        if row["characters"]:
            other.append(f"{int(row['characters'])} characters")
        if row["seconds"]:
            other.append(f"{float(row['seconds']):.1f} s audio")
        if row["images"]:
            other.append(f"{int(row['images'])} images")
        if row["tool_calls"]:  # a tool's calls, or a Responses turn's built-in tool calls
            other.append(f"{int(row['tool_calls'])} tool calls")
        if row["bytes"]:  # a day's change in vector store bytes
            other.append(f"{int(row['bytes']):+d} bytes stored")
        table.add_row(
            _when(int(row["day"]) * 86400)[:10],
            row["endpoint"],
            row["model"],
            str(row["requests"]),
            str(int(row["input_tokens"] or 0)),
            str(int(row["cached_tokens"] or 0)),
            str(int(row["output_tokens"] or 0)),
            ", ".join(other),
        )
    table_console().print(table)
