"""Generation options (tools, tool_choice, response format) and the checks every backend
shares: a request that names a tool it does not offer is refused the same way whichever
engine would have run it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from oasis.core.conversation import FunctionTool
from oasis.errors import InvalidRequestError


@dataclass(frozen=True)
class ResponseFormat:
    """What shape the text output must take. ``schema`` is set for ``json_schema``."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    schema: dict[str, Any] | None = None
    strict: bool = False
    name: str | None = None


@dataclass(frozen=True)
class GenerationOptions:
    """Tools and output constraints, in the terms both chat and Responses share.

    ``tool_choice`` is "none", "auto", "required", or the name of the one function that
    must be called. With "required" or a name, decoding is constrained so the output is
    always well-formed calls whose arguments validate against the tools' schemas; with
    "auto" the model may answer in text, and any call it starts is constrained the same
    way. ``response_format`` json_object / json_schema constrains the text likewise.
    ``allowed_tools`` (tool_choice ``allowed_tools``) narrows which tools may be called
    without changing the tools the prompt shows, so the prompt prefix stays cacheable.
    """

    tools: tuple[FunctionTool, ...] = ()
    tool_choice: str = "auto"
    allowed_tools: frozenset[str] | None = None
    parallel_tool_calls: bool = True
    response_format: ResponseFormat = field(default_factory=ResponseFormat)
    # Where these live in the request body, for 400s (`{index}` is the tool's position).
    tools_param: str = "tools[{index}].function.parameters"
    tool_choice_param: str = "tool_choice"
    response_format_param: str = "response_format.json_schema.schema"


def check_options(options: GenerationOptions) -> None:
    """Refuse options that contradict themselves, before any model is involved."""
    _check_allowed(options)
    choice = options.tool_choice
    if not options.tools and choice not in {"none", "auto"}:
        raise InvalidRequestError(
            f"tool_choice '{choice}' needs at least one tool in `tools`.",
            param=options.tool_choice_param,
        )
    named = choice not in {"none", "auto", "required"}
    if options.tools and named and not any(t.name == choice for t in options.tools):
        raise InvalidRequestError(
            f"tool_choice names the function '{choice}', which is not in `tools`.",
            param=options.tool_choice_param,
        )
    fmt = options.response_format
    if fmt.type == "json_schema" and fmt.schema is None:
        raise InvalidRequestError(
            "json_schema needs a `schema`.", param=options.response_format_param
        )


def tools_in_play(options: GenerationOptions) -> tuple[FunctionTool, ...]:
    """The tools the model is shown this turn: all of them, or none with tool_choice "none"."""
    return () if options.tool_choice == "none" else options.tools


def callable_tools(options: GenerationOptions) -> tuple[FunctionTool, ...]:
    """The tools the model may actually call: narrowed by ``allowed_tools`` and a named
    tool_choice (the prompt still shows :func:`tools_in_play`)."""
    tools = tools_in_play(options)
    if options.allowed_tools is not None:
        tools = tuple(t for t in tools if t.name in options.allowed_tools)
    if options.tool_choice in {"auto", "required"}:
        return tools
    return tuple(t for t in tools if t.name == options.tool_choice)


def _check_allowed(options: GenerationOptions) -> None:
    if options.allowed_tools is None:
        return
    unknown = sorted(options.allowed_tools - {t.name for t in options.tools})
    if unknown or not options.allowed_tools:
        raise InvalidRequestError(
            f"`allowed_tools` names the function '{unknown[0]}', which is not in `tools`."
            if unknown
            else "`allowed_tools` needs at least one tool.",
            param=options.tool_choice_param,
            code="invalid_value",
        )
    if options.tool_choice not in {"auto", "required"}:
        raise InvalidRequestError(
            "`allowed_tools` takes mode 'auto' or 'required'.",
            param=options.tool_choice_param,
            code="invalid_value",
        )
