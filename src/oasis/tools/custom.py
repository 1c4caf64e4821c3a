"""Custom tools: the client runs them, like functions, but they take free-form text
instead of JSON arguments, optionally constrained by a grammar (``format``: ``text``, or
``grammar`` with ``syntax`` ``lark`` or ``regex`` and its ``definition``), which the
decoder enforces token by token. The checks here are the ones Chat Completions and
Responses share; the two spell the format differently (Chat nests the grammar under
``format.grammar``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from oasis.core.constraints import check_grammar
from oasis.core.conversation import FunctionTool, InputFormat
from oasis.errors import InvalidRequestError
from oasis.tools.base import ConfiguredTool, HostedCall, ReplayedCall, ToolContext, ToolEvent
from oasis.types import Item


def input_format(value: Any, param: str, *, nested: bool = False) -> InputFormat:
    """A custom tool's ``format`` (at ``param``), checked: an unknown type or syntax, a
    missing definition or a grammar the decoder cannot compile is a 400 naming its field.
    ``nested``: Chat's spelling, the grammar under ``format.grammar``."""
    if value is None:
        return InputFormat()
    if not isinstance(value, dict):
        raise InvalidRequestError("`format` must be an object.", param=param, code="invalid_type")
    kind = value.get("type")
    if kind == "text":
        return InputFormat()
    if kind != "grammar":
        raise InvalidRequestError(
            f"Invalid value for '{param}.type': {kind!r}. Supported values are: 'text' and "
            "'grammar'.",
            param=f"{param}.type",
            code="invalid_value",
        )
    grammar = value.get("grammar") if nested else value
    where = f"{param}.grammar" if nested else param
    if not isinstance(grammar, dict):
        raise InvalidRequestError(
            f"Missing required parameter: '{where}'.",
            param=where,
            code="missing_required_parameter",
        )
    syntax = grammar.get("syntax")
    if syntax not in ("lark", "regex"):
        raise InvalidRequestError(
            f"Invalid value for '{where}.syntax': {syntax!r}. Supported values are: 'lark' "
            "and 'regex'.",
            param=f"{where}.syntax",
            code="invalid_value",
        )
    definition = grammar.get("definition")
    if not isinstance(definition, str):
        raise InvalidRequestError(
            f"Missing required parameter: '{where}.definition'.",
            param=f"{where}.definition",
            code="missing_required_parameter",
        )
    checked = InputFormat(syntax, definition)
    check_grammar(checked, f"{where}.definition")
    return checked


def format_echo(custom: InputFormat) -> Item:
    """A checked format as Responses shows it (``CustomToolInputFormat``)."""
    if custom.syntax == "text":
        return {"type": "text"}
    return {"type": "grammar", "syntax": custom.syntax, "definition": custom.definition}


class CustomToolKind:
    """``{"type": "custom"}`` tools of Responses: client-side, called with raw text."""

    server_side = False
    item_types: frozenset[str] = frozenset()  # custom_tool_call items are the core's own

    def configure(self, params: Sequence[tuple[int, Any]]) -> list[ConfiguredTool]:
        out: list[ConfiguredTool] = []
        for index, param in params:
            custom = input_format(param.format, f"tools[{index}].format")
            tool = FunctionTool(param.name, param.description, custom=custom)
            echo: Item = {"type": "custom", "name": param.name, "format": format_echo(custom)}
            if param.description is not None:
                echo["description"] = param.description
            out.append(ConfiguredTool("custom", index, echo, tool))
        return out

    def run(self, call: HostedCall, context: ToolContext) -> AsyncIterator[ToolEvent]:
        raise TypeError("custom tools run on the client")

    def replay(self, item: Item) -> ReplayedCall | None:
        return None


TOOL = CustomToolKind()
