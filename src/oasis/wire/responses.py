"""Request bodies of ``/v1/responses``.

Input items stay plain dicts here: their many shapes are checked and normalized by
:mod:`oasis.responses.items`, which names the exact ``input[i]…`` path on errors.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from oasis.wire.base import Metadata, WireModel

LOGPROBS_INCLUDE = "message.output_text.logprobs"


_NAME = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_\-]+$")


class FunctionToolParam(WireModel):
    """A function the client runs: a call ends the turn."""

    type: Literal["function"]
    name: str = _NAME
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class CustomToolParam(WireModel):
    """A client-side tool that takes free-form text (optionally under a grammar)."""

    type: Literal["custom"]
    name: str = _NAME
    description: str | None = None
    format: dict[str, Any] | None = None


class WebSearchToolParam(WireModel):
    type: Literal[
        "web_search",
        "web_search_2025_08_26",
        "web_search_preview",
        "web_search_preview_2025_03_11",
    ]
    search_context_size: Literal["low", "medium", "high"] | None = None
    user_location: dict[str, Any] | None = None
    filters: dict[str, Any] | None = None


class FileSearchToolParam(WireModel):
    type: Literal["file_search"]
    vector_store_ids: list[str]
    max_num_results: int | None = Field(default=None, ge=1, le=50)
    filters: dict[str, Any] | None = None
    ranking_options: dict[str, Any] | None = None


class McpToolParam(WireModel):
    type: Literal["mcp"]
    server_label: str = Field(min_length=1)
    server_url: str | None = None
    connector_id: str | None = None
    server_description: str | None = None
    authorization: str | None = None
    headers: dict[str, str] | None = None
    allowed_tools: list[str] | dict[str, Any] | None = None
    require_approval: Literal["always", "never"] | dict[str, Any] | None = None

    @model_validator(mode="after")
    def _server_needed(self) -> McpToolParam:
        if self.server_url is None and self.connector_id is None:
            raise ValueError("an mcp tool needs `server_url` or `connector_id`")
        return self


class ComputerUseToolParam(WireModel):
    type: Literal["computer_use_preview"]
    display_width: int = Field(ge=1)
    display_height: int = Field(ge=1)
    environment: Literal["windows", "mac", "linux", "ubuntu", "browser"]


class ComputerToolParam(WireModel):
    """The GA computer tool: no screen declared (it is the screenshots' size)."""

    type: Literal["computer"]


class CodeInterpreterToolParam(WireModel):
    type: Literal["code_interpreter"]
    container: str | dict[str, Any]


class ImageGenerationToolParam(WireModel):
    type: Literal["image_generation"]
    model: str | None = None
    size: str | None = None
    quality: str | None = None
    background: str | None = None
    output_format: Literal["png", "webp", "jpeg"] | None = None
    output_compression: int | None = Field(default=None, ge=0, le=100)
    partial_images: int | None = Field(default=None, ge=0, le=3)
    moderation: str | None = None
    input_fidelity: str | None = None
    input_image_mask: dict[str, Any] | None = None


class UnknownToolParam(WireModel):
    """Any other ``type``: refused, naming ``tools[i].type``."""

    type: Any

    @field_validator("type")
    @classmethod
    def _refuse(cls, value: Any) -> Any:
        raise ValueError(f"{value!r} is not a tool type the API defines")


_TOOL_MODELS: dict[str, type[WireModel]] = {
    "function": FunctionToolParam,
    "custom": CustomToolParam,
    "file_search": FileSearchToolParam,
    "mcp": McpToolParam,
    "computer_use_preview": ComputerUseToolParam,
    "computer": ComputerToolParam,
    "code_interpreter": CodeInterpreterToolParam,
    "image_generation": ImageGenerationToolParam,
    **dict.fromkeys(
        [
            "web_search",
            "web_search_2025_08_26",
            "web_search_preview",
            "web_search_preview_2025_03_11",
        ],
        WebSearchToolParam,
    ),
}


def _tool_tag(value: Any) -> str:
    # Tags are class names: capitalized, so error paths skip them (``tools[i].name``).
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    model = _TOOL_MODELS.get(kind) if isinstance(kind, str) else None
    return (model or UnknownToolParam).__name__


ToolParam = Annotated[
    Annotated[FunctionToolParam, Tag("FunctionToolParam")]
    | Annotated[CustomToolParam, Tag("CustomToolParam")]
    | Annotated[WebSearchToolParam, Tag("WebSearchToolParam")]
    | Annotated[FileSearchToolParam, Tag("FileSearchToolParam")]
    | Annotated[McpToolParam, Tag("McpToolParam")]
    | Annotated[ComputerUseToolParam, Tag("ComputerUseToolParam")]
    | Annotated[ComputerToolParam, Tag("ComputerToolParam")]
    | Annotated[CodeInterpreterToolParam, Tag("CodeInterpreterToolParam")]
    | Annotated[ImageGenerationToolParam, Tag("ImageGenerationToolParam")]
    | Annotated[UnknownToolParam, Tag("UnknownToolParam")],
    Discriminator(_tool_tag),
]
"""One tool of ``tools``, validated by its ``type``."""
HostedToolParam = (
    WebSearchToolParam
    | FileSearchToolParam
    | McpToolParam
    | ComputerUseToolParam
    | ComputerToolParam
    | CodeInterpreterToolParam
    | ImageGenerationToolParam
)


class TextFormat(WireModel):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_\-]+$"
    )
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _schema_needed(self) -> TextFormat:
        if self.type == "json_schema" and (self.schema_ is None or self.name is None):
            raise ValueError("a json_schema format needs `name` and `schema`")
        return self


class TextConfig(WireModel):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ReasoningConfig(WireModel):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class ConversationRef(WireModel):
    id: str


class StreamOptions(WireModel):
    include_obfuscation: bool | None = None


class ResponseCreateRequest(WireModel):
    model: str | None = None
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    conversation: str | ConversationRef | None = None
    store: bool | None = None
    background: bool | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    include: list[str] | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    max_tool_calls: int | None = Field(default=None, ge=0)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    parallel_tool_calls: bool | None = None
    tools: list[ToolParam] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    truncation: Literal["auto", "disabled"] | None = None
    metadata: Metadata | None = None
    service_tier: str | None = None
    user: str | None = None
    safety_identifier: str | None = Field(default=None, max_length=64)
    prompt_cache_key: str | None = None

    @property
    def conversation_id(self) -> str | None:
        if self.conversation is None:
            return None
        return self.conversation if isinstance(self.conversation, str) else self.conversation.id

    @property
    def wants_logprobs(self) -> bool:
        return LOGPROBS_INCLUDE in (self.include or [])
