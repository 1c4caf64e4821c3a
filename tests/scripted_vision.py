"""A scripted vision model for the image-input protocol tests: loaded by a test server
through the ``tool_plugins`` setting, it registers the ``scripted-vision`` engine as a
third-party engine would, and declares that it takes images (``supports_images``).

It answers with facts it decodes from the image bytes it was given, so a test can check
that the very picture it sent (or the screenshot of a real Chromium page) reached the
model: ``images=N last=WxH mime=… centre=#rrggbb corner=#rrggbb``. With the ``computer``
function offered, it calls it with a ``screenshot`` action (``action`` or, for the GA
tool, ``actions``) when the call is forced or when it has not yet seen a call's result.
"""

from __future__ import annotations

import io
import json

from oasis.config import Settings
from oasis.core.backend import Prompt
from oasis.core.conversation import Conversation, Image, ToolCall
from oasis.core.options import GenerationOptions
from oasis.engines.registry import register_engine
from oasis.ids import new_id
from oasis.models.specs import ModelSpec
from tests.scripted_engine import ScriptedBackend, ScriptedPrompt


def describe(images: list[Image]) -> str:
    """What the model says about the images it was shown."""
    from PIL import Image as Picture

    if not images:
        return "images=0"
    last = images[-1]
    assert last.data is not None and last.mime is not None, "the core loads images first"
    with Picture.open(io.BytesIO(last.data)) as picture:
        rgb = picture.convert("RGB")
        width, height = rgb.size
        centre = rgb.getpixel((width // 2, height // 2))
        corner = rgb.getpixel((0, 0))

    def hex_of(pixel: object) -> str:
        assert isinstance(pixel, tuple)
        return "#" + "".join(f"{int(c):02x}" for c in pixel[:3])

    return (
        f"images={len(images)} last={width}x{height} mime={last.mime} "
        f"centre={hex_of(centre)} corner={hex_of(corner)}"
    )


class VisionBackend(ScriptedBackend):
    supports_images = True

    async def prepare(
        self, conversation: Conversation, options: GenerationOptions, *, param: str
    ) -> Prompt:
        text = "\n".join(m.content for m in conversation.messages)
        offered = {t.name: t for t in options.tools} if options.tool_choice != "none" else {}
        computer = offered.get("computer")
        answered = any(m.role == "tool" for m in conversation.messages)
        if computer is not None and (options.tool_choice == "computer" or not answered):
            properties = (computer.parameters or {}).get("properties", {})
            action = {"type": "screenshot"}
            arguments = {"actions": [action]} if "actions" in properties else {"action": action}
            call = ToolCall(new_id("call"), "computer", json.dumps(arguments))
            return ScriptedPrompt(text, len(text.split()), 100_000, call=call)
        answer = describe(conversation.images)
        return ScriptedPrompt(text, len(text.split()), 100_000, answer=answer)


def create_engine(spec: ModelSpec, settings: Settings) -> VisionBackend:
    return VisionBackend(spec)


register_engine("scripted-vision", create_engine)
