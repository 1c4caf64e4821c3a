"""Render a conversation with the model's own chat template (Jinja, from GGUF metadata)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from oasis.core.conversation import Conversation, Message
from oasis.errors import InvalidRequestError, ModelUnavailableError

# Used when a model file carries no template: ChatML, which most small instruct models know.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class TemplateError(Exception):
    pass


def _raise_exception(message: str) -> None:
    raise TemplateError(message)


def _tojson(value: Any, indent: int | None = None, **_: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


# The same environment Hugging Face's apply_chat_template uses: templates may rely on
# {% break %} / {% continue %}.
_env = ImmutableSandboxedEnvironment(
    trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
)
_env.globals["raise_exception"] = _raise_exception
_env.globals["strftime_now"] = _strftime_now
_env.filters["tojson"] = _tojson


class ChatTemplate:
    """A compiled chat template plus the special tokens it refers to."""

    def __init__(self, source: str | None, bos_token: str, eos_token: str) -> None:
        self.source = source or CHATML_TEMPLATE
        try:
            self._template = _env.from_string(self.source)
        except jinja2.TemplateError as exc:
            # A broken template is the model file's fault, not the client's.
            raise ModelUnavailableError(
                f"The model's chat template does not compile: {exc}"
            ) from exc
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.supports_tools = "tools" in self.source

    def _message_dict(self, message: Message) -> dict[str, Any]:
        # Templates predate the developer role; it means what system meant.
        role = "system" if message.role == "developer" else message.role
        out: dict[str, Any] = {"role": role, "content": message.content}
        if message.tool_calls:
            out["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": _json_or_text(call.arguments)},
                }
                for call in message.tool_calls
            ]
        if message.tool_call_id is not None:
            out["tool_call_id"] = message.tool_call_id
        if message.name is not None:
            out["name"] = message.name
        return out

    def render(
        self,
        conversation: Conversation,
        *,
        add_generation_prompt: bool = True,
        tools: list[dict[str, Any]] | None = None,
        extra_system: str | None = None,
        builtin_tools: list[str] | None = None,
    ) -> str:
        """The prompt text for ``conversation``, ending where the assistant speaks next."""
        messages = [self._message_dict(m) for m in conversation.messages]
        if extra_system:
            if messages and messages[0]["role"] == "system":
                messages[0] = {
                    **messages[0],
                    "content": f"{messages[0]['content']}\n\n{extra_system}",
                }
            else:
                messages.insert(0, {"role": "system", "content": extra_system})
        variables: dict[str, Any] = {
            "messages": messages,
            "add_generation_prompt": add_generation_prompt,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
        }
        if tools:
            variables["tools"] = tools
        if builtin_tools:  # gpt-oss templates describe these built-ins (e.g. "browser")
            variables["builtin_tools"] = builtin_tools
        try:
            return self._template.render(**variables)
        except TemplateError as exc:
            raise InvalidRequestError(
                f"The model's chat template rejected this conversation: {exc}", param="messages"
            ) from exc
        except Exception as exc:  # user-supplied templates fail in many ways (TypeError, …)
            raise InvalidRequestError(
                f"The model's chat template could not render this conversation: {exc}",
                param="messages",
            ) from exc


def _json_or_text(arguments: str) -> Any:
    # Templates such as Qwen's expect parsed arguments (they apply `tojson` themselves).
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments
