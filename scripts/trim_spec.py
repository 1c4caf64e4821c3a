"""Write the part of OpenAI's OpenAPI spec that oasis serves, for the fuzz check.

The official spec is about 3 MB of YAML. The fuzz test (tests/test_fuzz.py) needs only the
operations oasis serves and the schemas they reach, so this keeps those, drops the
documentation (descriptions, examples, ``x-oaiMeta``) and writes compact JSON::

    python scripts/trim_spec.py path/to/openapi.yaml tests/fuzz/openapi-served.json

Run it again when the official spec or the set of served routes changes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

# Path (as the spec spells it, without /v1) → methods oasis serves there.
SERVED: dict[str, tuple[str, ...]] = {
    "/responses": ("post",),
    "/responses/input_tokens": ("post",),
    "/responses/{response_id}": ("get", "delete"),
    "/responses/{response_id}/cancel": ("post",),
    "/responses/{response_id}/input_items": ("get",),
    "/conversations": ("post",),
    "/conversations/{conversation_id}": ("get", "post", "delete"),
    "/conversations/{conversation_id}/items": ("get", "post"),
    "/conversations/{conversation_id}/items/{item_id}": ("get", "delete"),
    "/chat/completions": ("get", "post"),
    "/chat/completions/{completion_id}": ("get", "post", "delete"),
    "/chat/completions/{completion_id}/messages": ("get",),
    "/completions": ("post",),
    "/embeddings": ("post",),
    "/images/generations": ("post",),
    "/images/edits": ("post",),
    "/audio/speech": ("post",),
    "/audio/transcriptions": ("post",),
    "/audio/translations": ("post",),
    "/models": ("get",),
    "/models/{model}": ("get", "delete"),
}

# Documentation keys, dropped wherever they are not the name of a property.
_DOC_KEYS = {"description", "example", "examples", "x-oaiMeta", "summary", "title"}


def _strip(node: Any, *, in_properties: bool = False) -> Any:
    if isinstance(node, list):
        return [_strip(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if not in_properties and key in _DOC_KEYS:
            continue
        if not in_properties and key == "oneOf":
            # The spec's item unions overlap (an easy message is also a message item), so
            # "exactly one" rejects most generated items and the fuzzer gives up on whole
            # bodies; OpenAI tells the members apart by `type`, and so do we.
            key = "anyOf"
        out[key] = _strip(value, in_properties=key == "properties" and not in_properties)
    if not in_properties and isinstance(out.get("properties"), dict) and "type" not in out:
        # Some request bodies leave out `type: object`; the fuzzer then rarely sends one.
        out["type"] = "object"
    return out


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            ref = current.get("$ref")
            if isinstance(ref, str):
                found.add(ref)
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)
    return found


def trim(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` cut down to the served operations and every component they reference."""
    paths = {
        path: {method: spec["paths"][path][method] for method in methods}
        for path, methods in SERVED.items()
    }
    components: dict[str, dict[str, Any]] = {}
    pending = _refs(paths)
    seen: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        _, _, section, name = ref.split("/", 3)
        value = spec["components"][section][name]
        components.setdefault(section, {})[name] = value
        pending |= _refs(value)
    components["securitySchemes"] = spec["components"]["securitySchemes"]
    trimmed = {
        "openapi": spec["openapi"],
        "info": {"title": spec["info"]["title"], "version": spec["info"]["version"]},
        "servers": spec["servers"],
        "security": spec["security"],
        "paths": paths,
        "components": components,
    }
    return dict(_strip(trimmed))


def main() -> None:
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    spec = yaml.load(source.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(trim(spec), separators=(",", ":"), sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
