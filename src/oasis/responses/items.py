"""Responses input items ↔ stored items ↔ the core's :class:`Conversation`.

Every input item is normalized to its stored ("ItemResource") form first: it gets an id,
a status, and content parts in list form. Stored items are what ``input_items`` and
conversation item lists return, and what later turns are rebuilt from.
"""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from openai import BaseModel as OpenAIModel
from openai.types.conversations import ConversationItem
from openai.types.conversations import Message as ConversationMessage
from openai.types.responses import (
    ResponseFunctionToolCallItem,
    ResponseFunctionToolCallOutputItem,
    ResponseInputMessageItem,
    ResponseItem,
    ResponseOutputMessage,
    ResponseReasoningItem,
)
from pydantic import TypeAdapter, ValidationError

from oasis.core.conversation import (
    IMAGE_MARKER,
    Conversation,
    FunctionTool,
    Image,
    Message,
    ToolCall,
    joined_parts,
)
from oasis.errors import InvalidRequestError, UnsupportedError
from oasis.ids import new_id
from oasis.responses.compaction import expand
from oasis.tools.base import ReplayedCall, ReplayedOutput
from oasis.types import Item
from oasis.wire.base import validation_problem

ItemLookup = Callable[[str], Awaitable[Item | None]]
Replay = Callable[[Item], ReplayedCall | ReplayedOutput | None]

RESPONSE_ITEM: TypeAdapter[Any] = TypeAdapter(ResponseItem)
CONVERSATION_ITEM: TypeAdapter[Any] = TypeAdapter(ConversationItem)

_TEXT_PARTS = {"input_text", "output_text", "text"}
_INPUT_ROLES = {"user", "system", "developer"}

# The SDK's types that a stored item of each kind must satisfy: the ``input_items`` list
# returns it as a ``ResponseItem``, a conversation's item list as a ``ConversationItem``
# (for messages a type of its own; the other kinds share theirs).
_STORED_FORMS: dict[str, tuple[type[OpenAIModel], ...]] = {
    "message": (ResponseInputMessageItem, ConversationMessage),
    "assistant_message": (ResponseOutputMessage, ConversationMessage),
    "function_call": (ResponseFunctionToolCallItem,),
    "function_call_output": (ResponseFunctionToolCallOutputItem,),
    "reasoning": (ResponseReasoningItem,),
}


def _members_by_type(union: Any) -> dict[str, type[OpenAIModel]]:
    """The members of an SDK item union by the ``type`` literal each one carries."""
    members = typing.get_args(typing.get_args(union)[0])
    out: dict[str, type[OpenAIModel]] = {}
    for member in members:
        for literal in typing.get_args(member.model_fields["type"].annotation):
            out.setdefault(literal, member)
    return out


# The other item types (hosted tools' calls, MCP approvals, shell and patch calls…): stored
# in the SDK's form, listed back as they came, and shown to the model on later turns by
# the tool kind that makes them (``ToolKind.replay``).
_OTHER_FORMS: dict[str, tuple[type[OpenAIModel], ...]] = {
    kind: (member, *([c] if (c := _members_by_type(ConversationItem).get(kind)) else []))
    for kind, member in _members_by_type(ResponseItem).items()
    if kind not in {"message", "function_call", "function_call_output", "reasoning"}
}
_OTHER_PREFIXES = {
    "web_search_call": "ws",
    "file_search_call": "fs",
    "computer_call": "cu",
    "computer_call_output": "cuo",
    "image_generation_call": "ig",
    "code_interpreter_call": "ci",
    "mcp_list_tools": "mcpl",
    "mcp_approval_request": "mcpr",
    "mcp_approval_response": "mcpa",
    "mcp_call": "mcp",
    "custom_tool_call": "ctc",
    "custom_tool_call_output": "ctco",
}


def _checked(item: Item, path: str) -> Item:
    """``item`` if it lists and replays through the SDK's types; else a 400 naming the field.

    Every field a client gives is copied into storage only after this check, so no request
    can store an item that a later list (or the SDK's strict validation) would choke on.
    """
    form = "assistant_message" if item.get("role") == "assistant" else str(item["type"])
    for model in _STORED_FORMS.get(form) or _OTHER_FORMS[form]:
        try:
            model.model_validate(item)
        except ValidationError as exc:
            raise validation_problem(_telling(exc), prefix=path) from exc
    return item


def _telling(exc: ValidationError) -> Any:
    """The error that names the bad field. A union reports one error per member: members
    whose ``type`` did not match are not what the client meant, and of the rest the
    deepest error is the most precise."""
    errors = exc.errors(include_url=False)
    other_members = {
        tuple(err["loc"][:-1])
        for err in errors
        if err["loc"][-1:] == ("type",) and err["type"] == "literal_error" and len(err["loc"]) > 1
    }
    meant = [
        err for err in errors if not any(tuple(err["loc"][: len(m)]) == m for m in other_members)
    ]
    return max(meant or errors, key=lambda err: len(err["loc"]))


def _given(raw: Item, key: str, default: Any) -> Any:
    """``raw[key]`` as the client set it (to be checked), or ``default`` when it is absent,
    null or an empty string."""
    value = raw.get(key)
    return default if value is None or value == "" else value


def _kind_of(value: Any, path: str) -> str | None:
    """A ``type`` or ``role`` value: a string, or absent (None); anything else is a 400."""
    if value is None or isinstance(value, str):
        return value
    raise InvalidRequestError(
        f"Invalid type for '{path}': expected a string, but got {type(value).__name__}.",
        param=path,
        code="invalid_type",
    )


def _text_parts(content: Any, path: str, *, assistant: bool) -> list[Item]:
    """Content as a list of text parts in the stored form for the message's role."""
    if isinstance(content, str):
        content = [{"type": "output_text" if assistant else "input_text", "text": content}]
    if not isinstance(content, list):
        raise InvalidRequestError(
            f"Invalid type for '{path}': expected a string or an array of content parts.",
            param=path,
            code="invalid_type",
        )
    parts: list[Item] = []
    for j, part in enumerate(content):
        where = f"{path}[{j}]"
        if not isinstance(part, dict):
            raise InvalidRequestError(
                f"Invalid type for '{where}': expected an object.", param=where, code="invalid_type"
            )
        kind = _kind_of(part.get("type"), f"{where}.type")
        if kind in _TEXT_PARTS:
            text = part.get("text")
            if not isinstance(text, str):
                raise InvalidRequestError(
                    f"Missing required parameter: '{where}.text'.",
                    param=f"{where}.text",
                    code="missing_required_parameter",
                )
            if assistant:
                parts.append(
                    {
                        "type": "output_text",
                        "text": text,
                        "annotations": _given(part, "annotations", []),
                        "logprobs": _given(part, "logprobs", []),
                    }
                )
            else:
                parts.append({"type": "input_text", "text": text})
        elif kind == "refusal" and assistant and isinstance(part.get("refusal"), str):
            parts.append({"type": "refusal", "refusal": part["refusal"]})
        elif kind == "input_image" and not assistant:
            parts.append(_image_part(part, where))
        elif kind in {"input_image", "input_file", "input_audio"}:
            raise UnsupportedError(
                f"Content parts of type '{kind}' are not supported by this model; only text "
                "parts are.",
                param=f"{where}.type",
            )
        else:
            raise InvalidRequestError(
                f"Invalid value for '{where}.type': {kind!r} is not a content part type.",
                param=f"{where}.type",
                code="invalid_value",
            )
    return parts


def _image_part(part: Item, where: str) -> Item:
    """An ``input_image`` part in its stored form: an ``image_url`` or a ``file_id``."""
    image_url, file_id = part.get("image_url"), part.get("file_id")
    if not (isinstance(image_url, str) and image_url) and not (
        isinstance(file_id, str) and file_id
    ):
        raise InvalidRequestError(
            f"Missing required parameter: '{where}.image_url' (or '{where}.file_id').",
            param=f"{where}.image_url",
            code="missing_required_parameter",
        )
    stored: Item = {"type": "input_image", "detail": _given(part, "detail", "auto")}
    if isinstance(image_url, str) and image_url:
        stored["image_url"] = image_url
    if isinstance(file_id, str) and file_id:
        stored["file_id"] = file_id
    return stored


def _required_str(raw: Item, key: str, path: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str):
        raise InvalidRequestError(
            f"Missing required parameter: '{path}.{key}'.",
            param=f"{path}.{key}",
            code="missing_required_parameter",
        )
    return value


def _output_text(output: Any, path: str) -> Any:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        for j, part in enumerate(output):
            if not isinstance(part, dict) or part.get("type") != "input_text":
                raise UnsupportedError(
                    "Only text outputs are supported in function_call_output.",
                    param=f"{path}.output[{j}]",
                )
        return output
    raise InvalidRequestError(
        f"Missing required parameter: '{path}.output'.",
        param=f"{path}.output",
        code="missing_required_parameter",
    )


async def normalize_input(
    value: str | list[Item] | None, lookup: ItemLookup, *, param: str = "input"
) -> list[Item]:
    """The request's ``input`` as stored items (ids assigned, references resolved)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [
            {
                "id": new_id("msg"),
                "type": "message",
                "role": "user",
                "status": "completed",
                "content": [{"type": "input_text", "text": value}],
            }
        ]
    out: list[Item] = []
    for i, raw in enumerate(value):
        path = f"{param}[{i}]"
        kind = _kind_of(raw.get("type"), f"{path}.type")
        if kind is None and "role" in raw:
            kind = "message"
        if kind is None and "id" in raw:
            kind = "item_reference"
        if kind == "item_reference":
            out.append(await _referenced(raw, path, lookup))
        else:
            out.append(_checked(_normalize_item(raw, kind, path), path))
            if kind == "compaction":
                expand(out[-1], path)  # only this server's own compaction items are read
    return out


async def _referenced(raw: Item, path: str, lookup: ItemLookup) -> Item:
    ref = _required_str(raw, "id", path)
    found = await lookup(ref)
    if found is None:
        raise InvalidRequestError(
            f"Item with id '{ref}' not found.", param=f"{path}.id", code="invalid_value"
        )
    return found


def _normalize_item(raw: Item, kind: str | None, path: str) -> Item:
    if kind == "message":
        role = _kind_of(raw.get("role"), f"{path}.role")
        if role not in _INPUT_ROLES | {"assistant"}:
            raise InvalidRequestError(
                f"Invalid value for '{path}.role': {role!r}. Supported values are: 'user', "
                "'assistant', 'system' and 'developer'.",
                param=f"{path}.role",
                code="invalid_value",
            )
        if "content" not in raw:
            raise InvalidRequestError(
                f"Missing required parameter: '{path}.content'.",
                param=f"{path}.content",
                code="missing_required_parameter",
            )
        assistant = role == "assistant"
        item: Item = {
            "id": _given(raw, "id", new_id("msg")),
            "type": "message",
            "role": role,
            "status": _given(raw, "status", "completed"),
            "content": _text_parts(raw["content"], f"{path}.content", assistant=assistant),
        }
        if assistant and raw.get("phase") is not None:
            item["phase"] = raw["phase"]
        return item
    if kind == "function_call":
        return {
            "id": _given(raw, "id", new_id("fc")),
            "type": "function_call",
            "call_id": _required_str(raw, "call_id", path),
            "name": _required_str(raw, "name", path),
            "arguments": _required_str(raw, "arguments", path),
            "status": _given(raw, "status", "completed"),
        }
    if kind == "function_call_output":
        return {
            "id": _given(raw, "id", new_id("fco")),
            "type": "function_call_output",
            "call_id": _required_str(raw, "call_id", path),
            "output": _output_text(raw.get("output"), path),
            "status": _given(raw, "status", "completed"),
        }
    if kind == "reasoning":
        item = {
            "id": _given(raw, "id", new_id("rs")),
            "type": "reasoning",
            "summary": _given(raw, "summary", []),
        }
        for key in ("content", "encrypted_content", "status"):
            if raw.get(key) is not None:
                item[key] = raw[key]
        return item
    if kind in _OTHER_FORMS:
        item = _other_item(raw, kind)
        if kind == "computer_call" and ("action" in item) == ("actions" in item):
            raise InvalidRequestError(
                f"A computer_call gives exactly one of '{path}.action' (computer_use_preview) "
                f"and '{path}.actions' (computer).",
                param=f"{path}.action",
                code="invalid_value",
            )
        return item
    raise InvalidRequestError(
        f"Invalid value for '{path}.type': {kind!r} is not an input item type.",
        param=f"{path}.type",
        code="invalid_value",
    )


def _other_item(raw: Item, kind: str) -> Item:
    """A hosted-tool (or other) item as given, with the id and status its stored form
    needs; :func:`_checked` then holds it to the SDK's type."""
    item = {key: value for key, value in raw.items() if value is not None}
    item["id"] = _given(raw, "id", new_id(_OTHER_PREFIXES.get(kind, "item")))
    output = item.get("output")
    if (
        kind == "computer_call_output"
        and isinstance(output, dict)
        and output.get("type") == "input_image"
    ):
        # OpenAI's computer-use sample app sends its screenshot as an input image.
        item["output"] = {**output, "type": "computer_screenshot"}
    if "status" in _OTHER_FORMS[kind][0].model_fields and "status" not in item:
        item["status"] = "completed"
    return item


def check_call_ids(context: list[Item], new: list[Item], *, param: str = "input") -> None:
    """Every ``function_call_output`` (``custom_tool_call_output``) in ``new`` answers a
    function (custom tool) call made earlier in the context, every
    ``mcp_approval_response`` an ``mcp_approval_request``, and every
    ``computer_call_output`` a ``computer_call``, acknowledging its pending safety checks."""
    calls = {"function_call", "custom_tool_call"}
    outputs = {"function_call_output": "function call", "custom_tool_call_output": "custom tool"}
    known = {i["call_id"] for i in context if i.get("type") in calls}
    requests = {i["id"] for i in context if i.get("type") == "mcp_approval_request"}
    computer = {i["call_id"]: i for i in context if i.get("type") == "computer_call"}
    for index, item in enumerate(new):
        kind = item.get("type")
        if kind in calls:
            known.add(item["call_id"])
        elif kind == "computer_call":
            computer[item["call_id"]] = item
        elif kind == "computer_call_output":
            _check_computer_output(item, computer, f"{param}[{index}]")
        elif kind == "mcp_approval_request":
            requests.add(item["id"])
        elif kind in outputs and item["call_id"] not in known:
            raise InvalidRequestError(
                f"No tool call found for {outputs[kind]} output with call_id {item['call_id']}.",
                param=f"{param}[{index}].call_id",
                code="invalid_value",
            )
        elif (
            item.get("type") == "mcp_approval_response"
            and item.get("approval_request_id") not in requests
        ):
            raise InvalidRequestError(
                f"No MCP approval request found with id {item.get('approval_request_id')!r}.",
                param=f"{param}[{index}].approval_request_id",
                code="invalid_value",
            )


def _check_computer_output(item: Item, calls: dict[str, Item], path: str) -> None:
    """A ``computer_call_output`` answers a known ``computer_call`` and acknowledges every
    safety check that call left pending."""
    call = calls.get(item["call_id"])
    if call is None:
        raise InvalidRequestError(
            f"No computer call found for computer call output with call_id {item['call_id']}.",
            param=f"{path}.call_id",
            code="invalid_value",
        )
    acknowledged = {check.get("id") for check in item.get("acknowledged_safety_checks") or []}
    missing = [
        str(check.get("id"))
        for check in call.get("pending_safety_checks") or []
        if check.get("id") not in acknowledged
    ]
    if missing:
        raise InvalidRequestError(
            f"The computer call {item['call_id']} has pending safety checks that were not "
            f"acknowledged: {', '.join(missing)}. Show them to the user and, if they approve, "
            "list them in acknowledged_safety_checks.",
            param=f"{path}.acknowledged_safety_checks",
            code="invalid_value",
        )


def _message_text(item: Item) -> str:
    texts = []
    for part in item.get("content", []):
        if part.get("type") == "refusal":
            texts.append(part.get("refusal", ""))
        else:
            texts.append(part.get("text", ""))
    return "".join(texts)


def _message_content(item: Item, path: str) -> tuple[str, tuple[Image, ...]]:
    """A stored input message's text, with a marker where each image sits, and its
    images (``path`` names the message in the request, for a 400 about an image)."""
    parts: list[str | Image] = []
    for j, part in enumerate(item.get("content", [])):
        if part.get("type") == "input_image":
            where = f"{path}.content[{j}]"
            detail = str(part.get("detail") or "auto")
            parts.append(Image(where, part.get("image_url"), part.get("file_id"), detail=detail))
        else:
            parts.append(
                part.get("refusal", "") if part.get("type") == "refusal" else part.get("text", "")
            )
    return joined_parts(parts)


def _output_as_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    return "".join(p.get("text", "") for p in output if isinstance(p, dict))


def to_conversation(
    instructions: str | None,
    entries: list[Item],
    tools: tuple[FunctionTool, ...] = (),
    replay: Replay | None = None,
    *,
    first_input: int = 0,
    param: str = "input",
) -> Conversation:
    """Stored items as the core's conversation, ``instructions`` first as a system message.

    ``entries[first_input:]`` are the request's own ``input`` (``param``): an image there
    is named by its path in a 400; one inherited from earlier turns, by ``param`` alone.
    A client's answer that shows a screenshot (``ReplayedOutput.images``) is followed by
    a user message showing it, for the latest such answer only (the core leaves that
    message out for a model that reads text only).

    Consecutive function calls join the assistant message before them (one assistant turn
    with several tool calls); reasoning attaches to the assistant turn it led to. Other
    items (hosted tools' calls) read as ``replay`` says: a call and its result, as the
    model saw them when the call ran; those it does not replay the model does not see.
    """
    messages: list[Message] = []
    if instructions:
        messages.append(Message(role="system", content=instructions))
    reasoning: str | None = None
    # An assistant turn still open for tool calls: its index in ``messages``.
    open_turn: int | None = None
    replays = [
        replay(item) if replay is not None and item.get("type") not in _STORED_FORMS else None
        for item in entries
    ]
    shown = max(
        (k for k, r in enumerate(replays) if isinstance(r, ReplayedOutput) and r.images),
        default=None,
    )
    for k, item in enumerate(entries):
        kind = item.get("type")
        replayed = replays[k]
        path = f"{param}[{k - first_input}]" if k >= first_input else param
        if kind == "reasoning":
            text = "".join(c.get("text", "") for c in item.get("content") or [])
            text = text or "".join(s.get("text", "") for s in item.get("summary") or [])
            reasoning = (reasoning or "") + text if text else reasoning
        elif kind == "message" and item.get("role") == "assistant":
            messages.append(
                Message(role="assistant", content=_message_text(item), reasoning=reasoning)
            )
            reasoning = None
            open_turn = len(messages) - 1
        elif kind == "message":
            content, images = _message_content(item, path)
            messages.append(Message(role=item["role"], content=content, images=images))
            open_turn = None
        elif kind == "compaction":  # made by /v1/responses/compact (responses/compaction.py)
            messages += expand(item)
            open_turn = None
        elif isinstance(replayed, ReplayedOutput):
            # The client's answer to a call of an earlier turn (a computer action's screenshot).
            messages.append(
                Message(role="tool", content=replayed.output, tool_call_id=replayed.call_id)
            )
            if k == shown:
                images = tuple(replace(i, param=f"{path}.output") for i in replayed.images)
                text = "The screen now:" + IMAGE_MARKER * len(images)
                messages.append(Message(role="user", content=text, images=images))
            open_turn = None
        elif kind in {"function_call", "custom_tool_call"} or replayed is not None:
            if kind == "function_call":
                call = ToolCall(id=item["call_id"], name=item["name"], arguments=item["arguments"])
            elif kind == "custom_tool_call":
                call = ToolCall(item["call_id"], item["name"], item["input"], custom=True)
            else:
                assert replayed is not None
                call = ToolCall(
                    id=str(item.get("call_id") or item["id"]),
                    name=replayed.name,
                    arguments=replayed.arguments,
                )
            if open_turn is None:
                messages.append(Message(role="assistant", content="", reasoning=reasoning))
                reasoning = None
                open_turn = len(messages) - 1
            turn = messages[open_turn]
            messages[open_turn] = Message(
                role="assistant",
                content=turn.content,
                tool_calls=(*turn.tool_calls, call),
                reasoning=turn.reasoning,
            )
            if replayed is not None and replayed.output is not None:
                # A hosted call's result follows it at once, as the model read it then.
                messages.append(Message(role="tool", content=replayed.output, tool_call_id=call.id))
                open_turn = None
        elif kind in {"function_call_output", "custom_tool_call_output"}:
            messages.append(
                Message(
                    role="tool",
                    content=_output_as_text(item.get("output")),
                    tool_call_id=item.get("call_id"),
                )
            )
            open_turn = None
    return Conversation(tuple(messages), tools)
