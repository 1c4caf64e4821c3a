"""Validation of a batch's input file, line by line, before any line runs.

A line is ``{"custom_id": ..., "method": "POST", "url": <the batch's endpoint>, "body":
{...}}``. Every problem is reported with its line number and a code; a file with any
problem fails the batch in ``validating``, so a batch never fails half-way through. The
bodies themselves are checked when they run, by the endpoint, as the endpoint checks them:
a bad body is one failed line in the error file, not a failed batch.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from oasis.store.batches import PendingLine

MAX_LINES = 50_000  # OpenAI's limits on one batch's input file
MAX_BYTES = 200 * 1024 * 1024
# Errors past this many are not listed (the file fails either way).
MAX_ERRORS = 100


@dataclass
class InputCheck:
    """The lines of a valid file, the one model they name, and the problems found."""

    lines: list[PendingLine] = field(default_factory=list)
    model: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)

    def problem(self, code: str, message: str, line: int | None, param: str | None) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"code": code, "message": message, "line": line, "param": param})


async def _lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, bytes]]:
    """The file's lines, numbered from 1; a last line without a newline counts too."""
    number = 0
    rest = b""
    async for chunk in chunks:
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        for part in parts:
            number += 1
            yield number, part
    if rest:
        yield number + 1, rest


async def check_input(chunks: AsyncIterator[bytes], endpoint: str) -> InputCheck:
    """Every line of the file in ``chunks`` checked against ``endpoint``."""
    check = InputCheck()
    seen: set[str] = set()
    async for number, raw in _lines(chunks):
        if not raw.strip():
            continue  # blank lines (a trailing newline, say) carry no request
        if len(check.lines) + 1 > MAX_LINES:
            check.problem(
                "too_many_requests",
                f"The input file has more than {MAX_LINES} requests.",
                number,
                None,
            )
            break
        _check_line(check, seen, number, raw, endpoint)
    if not check.lines and not check.errors:
        check.problem("empty_file", "The input file holds no requests.", None, None)
    return check


def _check_line(check: InputCheck, seen: set[str], number: int, raw: bytes, endpoint: str) -> None:
    try:
        item = json.loads(raw)
    except (ValueError, RecursionError):
        check.problem("invalid_json_line", "This line is not valid JSON.", number, None)
        return
    if not isinstance(item, dict):
        check.problem("invalid_json_line", "This line is not a JSON object.", number, None)
        return
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        message = "Each line needs a string `custom_id`."
        check.problem("missing_required_parameter", message, number, "custom_id")
        return
    if custom_id in seen:
        check.problem(
            "duplicate_custom_id",
            f"The custom_id {custom_id!r} appears on an earlier line; each must be unique.",
            number,
            "custom_id",
        )
        return
    seen.add(custom_id)
    if item.get("method") != "POST":
        check.problem("invalid_method", "The `method` of a line must be POST.", number, "method")
        return
    if item.get("url") != endpoint:
        check.problem(
            "invalid_url",
            f"The `url` of this line is {item.get('url')!r}, not the batch's endpoint {endpoint}.",
            number,
            "url",
        )
        return
    body = item.get("body")
    if not isinstance(body, dict):
        check.problem("invalid_body", "The `body` of a line must be a JSON object.", number, "body")
        return
    if body.get("stream"):
        check.problem(
            "invalid_value", "Streaming is not supported in a batch.", number, "body.stream"
        )
        return
    model = body.get("model")
    if isinstance(model, str):
        if check.model is None:
            check.model = model
        elif model != check.model:
            check.problem(
                "mismatched_model",
                f"This line asks for model {model!r}, an earlier one for {check.model!r}; "
                "a batch uses one model.",
                number,
                "body.model",
            )
            return
    check.lines.append(PendingLine(number, custom_id, body))
