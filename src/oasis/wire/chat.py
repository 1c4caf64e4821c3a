"""Request body of ``POST /v1/chat/completions``."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Protocol, TypeVar

from pydantic import Discriminator, Field, Tag, model_validator

from oasis.wire.base import Metadata, WireModel
from oasis.wire.sampling import SamplingRequest

Text = Annotated[str, Field()]


class ImageURL(WireModel):
    url: str = Field(min_length=1)
    detail: Literal["auto", "low", "high"] | None = None


class ContentPart(WireModel):
    type: str
    text: str | None = None
    image_url: ImageURL | None = None  # set on an ``image_url`` part


class _Typed(Protocol):
    @property
    def type(self) -> str: ...


_Model = TypeVar("_Model", bound=_Typed)


def _with_body(model: _Model, what: str) -> _Model:
    """``model``, whose field named by its ``type`` (``function``, ``custom``) must be set."""
    kind = model.type
    if getattr(model, kind) is None:
        raise ValueError(f"a {kind} {what} needs `{kind}`")
    return model


class FunctionCallBody(WireModel):
    name: str
    arguments: str = ""


class CustomCallBody(WireModel):
    name: str
    input: str = ""


class ToolCallParam(WireModel):
    """A past call: of a function, or (``type: "custom"``) of a custom tool."""

    id: str
    type: Literal["function", "custom"] = "function"
    function: FunctionCallBody | None = None
    custom: CustomCallBody | None = None

    @model_validator(mode="after")
    def _body_needed(self) -> ToolCallParam:
        return _with_body(self, "tool call")


class ChatMessage(WireModel):
    """Any chat message. One flat model keeps validation errors' ``param`` paths clean."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallParam] | None = None
    function_call: FunctionCallBody | None = None  # deprecated form of one tool call
    tool_call_id: str | None = None
    refusal: str | None = None

    @model_validator(mode="after")
    def _check_role_fields(self) -> ChatMessage:
        if self.role == "assistant":
            if (
                self.content is None
                and not self.tool_calls
                and self.function_call is None
                and self.refusal is None
            ):
                raise ValueError(
                    "an assistant message needs `content`, `tool_calls` or `function_call`"
                )
        elif self.content is None and self.role != "function":  # a result may be null
            raise ValueError(f"a {self.role} message needs `content`")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs `tool_call_id`")
        if self.role == "function" and not self.name:
            raise ValueError("a function message needs `name`")
        if isinstance(self.content, list) and not self.content and self.role != "assistant":
            raise ValueError("`content` must not be an empty array")
        return self


class FunctionDefinition(WireModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_\-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class CustomDefinition(WireModel):
    """A custom tool: free-form text input; ``format`` is checked by the service."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_\-]+$")
    description: str | None = None
    format: dict[str, Any] | None = None


class ChatFunctionTool(WireModel):
    type: Literal["function"]
    function: FunctionDefinition


class ChatCustomTool(WireModel):
    type: Literal["custom"]
    custom: CustomDefinition


def _chat_tool_tag(value: Any) -> str:
    # Tags are class names: capitalized, so error paths skip them (``tools[i].function``).
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return "ChatCustomTool" if kind == "custom" else "ChatFunctionTool"


ChatTool = Annotated[
    Annotated[ChatFunctionTool, Tag("ChatFunctionTool")]
    | Annotated[ChatCustomTool, Tag("ChatCustomTool")],
    Discriminator(_chat_tool_tag),
]
"""One tool of ``tools``: a function, or a custom tool (free-form input)."""


class NamedToolChoiceFunction(WireModel):
    name: str


class NamedToolChoice(WireModel):
    """A function (or, ``type: "custom"``, a custom tool) the model must call."""

    type: Literal["function", "custom"]
    function: NamedToolChoiceFunction | None = None
    custom: NamedToolChoiceFunction | None = None

    @model_validator(mode="after")
    def _name_needed(self) -> NamedToolChoice:
        return _with_body(self, "tool choice")

    @property
    def name(self) -> str:
        named = self.function if self.type == "function" else self.custom
        assert named is not None  # checked above
        return named.name


class AllowedTools(WireModel):
    mode: Literal["auto", "required"]
    tools: list[NamedToolChoice] = Field(min_length=1)


class AllowedToolsChoice(WireModel):
    """``tool_choice`` that narrows ``tools`` to a subset for this request."""

    type: Literal["allowed_tools"]
    allowed_tools: AllowedTools


class JSONSchemaFormat(WireModel):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(WireModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_needed(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("`json_schema` is required when type is 'json_schema'")
        return self


class ApproximateLocation(WireModel):
    country: str | None = None
    region: str | None = None
    city: str | None = None
    timezone: str | None = None


class UserLocation(WireModel):
    type: Literal["approximate"]
    approximate: ApproximateLocation


class WebSearchOptions(WireModel):
    """Search the web before answering, as OpenAI's search models do."""

    user_location: UserLocation | None = None
    search_context_size: Literal["low", "medium", "high"] | None = None


class ChatCompletionRequest(SamplingRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    tools: list[ChatTool] | None = None
    tool_choice: (
        Literal["none", "auto", "required"] | NamedToolChoice | AllowedToolsChoice | None
    ) = None
    parallel_tool_calls: bool | None = None
    # The deprecated forerunners of tools/tool_choice: one call, answered in
    # ``message.function_call`` with finish_reason "function_call".
    functions: list[FunctionDefinition] | None = Field(default=None, min_length=1, max_length=128)
    function_call: Literal["none", "auto"] | NamedToolChoiceFunction | None = None
    response_format: ResponseFormat | None = None
    metadata: Metadata | None = None
    store: bool | None = None
    service_tier: str | None = None
    reasoning_effort: str | None = None
    web_search_options: WebSearchOptions | None = None

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens
