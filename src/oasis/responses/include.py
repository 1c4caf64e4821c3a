"""What ``include`` adds to the items the API shows.

Items are stored complete (a web search's sources, a file search's results, the outputs of
code the interpreter ran), because later turns and later reads may want them. The
``include`` of the request that reads them decides which of these parts the client sees;
without it they are left out, as OpenAI leaves them out.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection

from oasis.types import Item


def _drop_sources(item: Item) -> None:
    action = item.get("action")
    if isinstance(action, dict):
        action.pop("sources", None)


def _null(key: str) -> Callable[[Item], None]:
    def clear(item: Item) -> None:
        if key in item:
            item[key] = None

    return clear


def _drop_screenshot(item: Item) -> None:
    output = item.get("output")
    if isinstance(output, dict):
        output.pop("image_url", None)


def _drop_encrypted(item: Item) -> None:
    item.pop("encrypted_content", None)


# item type -> (the include value that shows the part, how to leave it out)
_OPTIONAL_PARTS: dict[str, tuple[str, Callable[[Item], None]]] = {
    "web_search_call": ("web_search_call.action.sources", _drop_sources),
    "file_search_call": ("file_search_call.results", _null("results")),
    "code_interpreter_call": ("code_interpreter_call.outputs", _null("outputs")),
    "reasoning": ("reasoning.encrypted_content", _drop_encrypted),
    "computer_call_output": ("computer_call_output.output.image_url", _drop_screenshot),
}


def shown(item: Item, include: Collection[str]) -> Item:
    """``item`` as a client that asked for ``include`` sees it (a copy when it differs)."""
    part = _OPTIONAL_PARTS.get(str(item.get("type")))
    if part is None or part[0] in include:
        return item
    out = copy.deepcopy(item)
    part[1](out)
    return out


def shown_all(items: list[Item], include: Collection[str]) -> list[Item]:
    """Every item of ``items`` through :func:`shown`."""
    return [shown(item, include) for item in items]
