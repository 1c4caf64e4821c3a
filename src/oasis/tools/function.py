"""Function tools: the client runs them, so a call ends the turn. The checks here are the
ones Chat Completions and Responses share."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol

from oasis.core.conversation import FunctionTool
from oasis.errors import InvalidRequestError
from oasis.tools.base import ConfiguredTool, HostedCall, ReplayedCall, ToolContext, ToolEvent
from oasis.types import Item


class FunctionDefinitionLike(Protocol):
    """A function definition as either endpoint's wire model spells it."""

    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str | None: ...
    @property
    def parameters(self) -> dict[str, Any] | None: ...
    @property
    def strict(self) -> bool | None: ...


def function_tools(
    definitions: Sequence[FunctionDefinitionLike], param: Callable[[int], str]
) -> list[FunctionTool]:
    """Checked function definitions; ``param(i)`` is where the i-th sits in the request.

    Names must be unique and ``parameters`` must be an object schema.
    """
    tools: list[FunctionTool] = []
    seen: set[str] = set()
    for i, function in enumerate(definitions):
        if function.name in seen:
            raise InvalidRequestError(
                f"Duplicate function name '{function.name}'.", param=f"{param(i)}.name"
            )
        seen.add(function.name)
        parameters = function.parameters
        if parameters is not None and parameters.get("type", "object") != "object":
            raise InvalidRequestError(
                "A function's `parameters` must be a JSON schema of type 'object'.",
                param=f"{param(i)}.parameters",
            )
        tools.append(
            FunctionTool(
                name=function.name,
                description=function.description,
                parameters=parameters,
                strict=bool(function.strict),
            )
        )
    return tools


class FunctionToolKind:
    """``{"type": "function"}`` tools of Responses."""

    server_side = False
    item_types: frozenset[str] = frozenset()  # function_call items are the core's own

    def configure(self, params: Sequence[tuple[int, Any]]) -> list[ConfiguredTool]:
        indexes = [index for index, _ in params]
        functions = function_tools([param for _, param in params], lambda i: f"tools[{indexes[i]}]")
        out: list[ConfiguredTool] = []
        for index, function in zip(indexes, functions, strict=True):
            echo: Item = {
                "type": "function",
                "name": function.name,
                "parameters": function.parameters,
                "strict": function.strict,
            }
            if function.description is not None:
                echo["description"] = function.description
            out.append(ConfiguredTool("function", index, echo, function))
        return out

    def run(self, call: HostedCall, context: ToolContext) -> AsyncIterator[ToolEvent]:
        raise TypeError("function tools run on the client")

    def replay(self, item: Item) -> ReplayedCall | None:
        return None


TOOL = FunctionToolKind()
