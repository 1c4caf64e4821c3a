"""Schema-driven fuzzing of every route oasis serves: no request may get a server error.

Schemathesis generates requests from OpenAI's own OpenAPI spec (cut down to the served
routes by ``scripts/trim_spec.py``): bodies that fit the spec and bodies that break it.
Every answer must be a success or a 4xx in the OpenAI error envelope. The one 5xx allowed
is a 503: ``model_unavailable``, since the server here has no model it can load (each
built-in model points at a missing file, which keeps the run fast), or an overload with
``Retry-After``. Items a request stored must list again afterwards. Generation is
derandomized, so a run is repeatable and a failure reproducible.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from oasis.models.catalog import BUILTIN_MODELS
from tests.server import Server, start_server

SPEC = Path(__file__).parent / "fuzz" / "openapi-served.json"
# Examples per operation and mode: 25 operations × 2 modes × this many requests.
EXAMPLES = 25

SCHEMA = schemathesis.openapi.from_path(SPEC)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.fixture(scope="module")
def modelless_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Every built-in model (and its aliases) points at a missing file: model routes
    validate the request, then answer 503 instead of generating."""
    models = [
        {
            "id": spec.id,
            "kind": spec.kind,
            "path": f"/nonexistent/{spec.id}",
            "aliases": list(spec.aliases),
        }
        for spec in BUILTIN_MODELS
    ]
    srv = start_server(
        tmp_path_factory.mktemp("oasis-fuzz"), config={"preload": [], "models": models}
    )
    yield srv
    srv.stop()


def _problem(response: Any) -> str | None:
    """What is wrong with an answer, or None when it is a success or a proper client error."""
    status = response.status_code
    if status < 400:
        return None
    try:
        error = response.json()["error"]
        shaped = isinstance(error["message"], str) and isinstance(error["type"], str)
        shaped = shaped and "param" in error and "code" in error
    except (ValueError, KeyError, TypeError):
        shaped = False
    if not shaped:
        return f"{status} outside the error envelope: {response.text[:200]}"
    headers = {key.lower(): value for key, value in response.headers.items()}
    if status == 503 and ("retry-after" in headers or error["code"] == "model_unavailable"):
        # Overloaded (come back after Retry-After), or no model can load here (which the
        # SDK is told not to retry).
        return None
    if status >= 500:
        return f"{status}: {response.text[:300]}"
    return None


def _poisoned(server: Server, path: str, response: Any, known: dict[str, Any]) -> str | None:
    """After items were stored, a problem listing them (a stored item the SDK's types reject
    poisons every later list), or None."""
    if path == "/conversations":
        conversation_id = response.json()["id"]
    elif path == "/conversations/{conversation_id}/items" and response.request.method == "POST":
        conversation_id = known["conversation_id"]
    else:
        return None
    # The same key: stored objects belong to the key (or, with no keys set, its token).
    auth = {"Authorization": response.request.headers.get("Authorization", "")}
    listed = requests.get(
        f"{server.api_url}/conversations/{conversation_id}/items", headers=auth, timeout=60
    )
    if listed.status_code != 200:
        return f"listing stored items: {listed.status_code}: {listed.text[:200]}"
    return None


def _conversation(server: Server, path: str) -> dict[str, Any]:
    """Path parameters of ``path`` naming a new conversation and the one item in it."""
    created = requests.post(
        f"{server.api_url}/conversations",
        json={"items": [{"type": "message", "role": "user", "content": "Hello"}]},
        timeout=60,
    )
    created.raise_for_status()
    conversation_id = created.json()["id"]
    known = {"conversation_id": conversation_id}
    if "{item_id}" in path:
        items = requests.get(f"{server.api_url}/conversations/{conversation_id}/items", timeout=60)
        known["item_id"] = items.json()["data"][0]["id"]
    return known


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: f"{op.method.upper()} {op.path}")
def test_no_server_errors(modelless_server: Server, operation: Any, mode: GenerationMode) -> None:
    problems: dict[str, str] = {}
    sent = 0
    started = time.monotonic()
    known: dict[str, Any] = {}
    if mode is GenerationMode.POSITIVE and "{conversation_id}" in operation.path:
        # Valid requests about a conversation that exists, so they get past the lookup.
        known = _conversation(modelless_server, operation.path)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=known or None))
    def run(case: Any) -> None:
        nonlocal sent
        if mode is GenerationMode.POSITIVE and isinstance(case.body, dict):
            # The spec leaves `model` optional in places; without one a request stops at
            # the first check, so valid bodies name a served model to get further in.
            case.body.setdefault("model", "gpt-4o")
        response = case.call(base_url=modelless_server.api_url, session=session, timeout=60)
        sent += 1
        problem = _problem(response)
        if problem is None and response.status_code < 300:
            problem = _poisoned(modelless_server, operation.path, response, known)
        if problem is not None:
            body = case.body if isinstance(case.body, (dict, list, str)) else repr(case.body)
            problems.setdefault(problem.splitlines()[0][:160], json.dumps(body)[:600])

    with requests.Session() as session:
        run()
    print(
        f"{operation.method.upper()} {operation.path} [{mode}]: {sent} requests in "
        f"{time.monotonic() - started:.1f}s"
    )
    assert not problems, "\n".join(f"{p}\n  request body: {b}" for p, b in problems.items())
