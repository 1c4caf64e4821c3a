"""Usage beyond model tokens: hosted tool calls of each kind, vector store bytes and code
interpreter sessions, in the Usage API, ``oasis usage`` and ``/metrics``; and resumed work
(batch lines, background responses) recorded once, whichever process finished it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.server import Server, oasis_cli, sdk_for, start_server
from tests.test_batches import chat_line, create, lines_of, upload, wait, wait_done
from tests.test_metrics import _samples
from tests.web_world import World, world

__all__ = ["world"]  # the loopback web's module fixture, used here by name

MODEL = "smollm2-135m-instruct"
NOTE = b"The lighthouse keeper's cat is called Biscuit and sleeps on the lamp room stairs."


@dataclass
class Setup:
    server: Server
    project: str
    key: str
    admin: str


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, world: World) -> Iterator[Setup]:
    data = tmp_path_factory.mktemp("oasis-usage-kinds")
    project = oasis_cli(data, "projects", "create", "tools")
    key = oasis_cli(data, "keys", "create", "--project", project)
    admin = oasis_cli(data, "keys", "create", "--admin")
    server = start_server(
        data,
        config={"preload": [MODEL]},
        env=world.env,
    )
    yield Setup(server, project, key, admin)
    server.stop()


def _admin(server: Server, admin: str) -> OpenAI:
    return OpenAI(
        base_url=server.api_url,
        api_key="unused",
        admin_api_key=admin,
        max_retries=0,
        _strict_response_validation=True,
    )


def _results(page: Any) -> list[Any]:
    return [result for bucket in page.data for result in bucket.results]


def _calls(response: Any, kind: str) -> int:
    return sum(1 for item in response.output if item.type == kind)


def _tool_metric(server: Server, tool: str) -> float:
    samples = _samples(server).get("oasis_hosted_tool_calls_total", [])
    return sum(value for labels, value in samples if labels["tool"] == tool)


def _ingested(sdk: OpenAI, store_id: str) -> Any:
    for _ in range(600):
        store = sdk.vector_stores.retrieve(store_id)
        if store.file_counts.in_progress == 0:
            return store
        time.sleep(0.2)
    raise AssertionError(f"vector store {store_id} still ingesting")


def test_tool_calls_sessions_and_stored_bytes_are_usage(setup: Setup) -> None:
    start = int(time.time()) - 5
    with sdk_for(setup.server, setup.key) as sdk, _admin(setup.server, setup.admin) as admin:
        file = sdk.files.create(file=("lighthouse.txt", NOTE), purpose="assistants")
        store = _ingested(sdk, sdk.vector_stores.create(name="notes", file_ids=[file.id]).id)
        assert store.file_counts.completed == 1 and store.usage_bytes > 0
        levels = _results(
            admin.admin.organization.usage.vector_stores(
                start_time=start, bucket_width="1m", group_by=["project_id"]
            )
        )
        # The level at the end of the last bucket: every byte the project stores.
        assert levels[-1].project_id == setup.project
        assert levels[-1].usage_bytes == store.usage_bytes

        searched = sdk.responses.create(
            model=MODEL,
            input="What is the capital of France?",
            tools=[{"type": "web_search"}],
            tool_choice={"type": "web_search"},
            max_tool_calls=1,
            temperature=0,
            max_output_tokens=60,
        )
        looked_up = sdk.responses.create(
            model=MODEL,
            input="What is the cat called?",
            tools=[{"type": "file_search", "vector_store_ids": [store.id]}],
            tool_choice={"type": "file_search"},
            max_tool_calls=1,
            temperature=0,
            max_output_tokens=60,
        )
        searches = _calls(searched, "web_search_call")
        lookups = _calls(looked_up, "file_search_call")
        assert searches >= 1 and lookups >= 1
        sdk.containers.create(name="scratch")

        web = _results(
            admin.admin.organization.usage.web_search_calls(
                start_time=start, group_by=["api_key_id", "model"]
            )
        )
        assert [(r.num_requests, r.num_model_requests, r.model) for r in web] == [
            (searches, 1, MODEL)
        ]
        assert web[0].api_key_id is not None and web[0].api_key_id.startswith("key_")
        files = _results(admin.admin.organization.usage.file_search_calls(start_time=start))
        assert sum(r.num_requests for r in files) == lookups
        sessions = _results(
            admin.admin.organization.usage.code_interpreter_sessions(
                start_time=start, group_by=["project_id"]
            )
        )
        assert [(r.num_sessions, r.project_id) for r in sessions] == [(1, setup.project)]
        # The Responses turns themselves are completions, with their built-in calls.
        turns = _results(admin.admin.organization.usage.completions(start_time=start))
        assert sum(r.num_model_requests for r in turns) == 2

        assert _tool_metric(setup.server, "web_search") == searches
        assert _tool_metric(setup.server, "file_search") == lookups
        assert _samples(setup.server)["oasis_code_interpreter_sessions_total"][0][1] == 1

        # Deleting the store takes its bytes off the level.
        sdk.vector_stores.delete(store.id)
        after = _results(
            admin.admin.organization.usage.vector_stores(start_time=start, bucket_width="1m")
        )
        assert after[-1].usage_bytes == 0

    table = oasis_cli(setup.server.data_dir, "usage", "--days", "1")
    # A row per kind; the day's vector store bytes went up and down again.
    for kind in ("web_search_calls", "file_search_calls", "code_interpreter_sessions"):
        assert kind in table
    assert "vector_stores" in table


def test_new_kinds_refuse_groups_they_do_not_have(setup: Setup) -> None:
    headers = {"Authorization": f"Bearer {setup.admin}"}
    now = int(time.time())
    for kind, group in [
        ("vector_stores", "model"),
        ("code_interpreter_sessions", "api_key_id"),
        ("file_search_calls", "model"),
        ("web_search_calls", "context_level"),
    ]:
        response = httpx.get(
            f"{setup.server.api_url}/organization/usage/{kind}",
            params={"start_time": now, "group_by": group},
            headers=headers,
        )
        assert response.status_code == 400, (kind, response.text)
        assert response.json()["error"]["param"] == "group_by"


def _usage_of(body: dict[str, Any] | None) -> tuple[int, int]:
    """(input, output) tokens of a chat completion's or a response's ``usage``."""
    usage = (body or {}).get("usage") or {}
    return (
        usage.get("prompt_tokens", usage.get("input_tokens", 0)),
        usage.get("completion_tokens", usage.get("output_tokens", 0)),
    )


def test_work_finished_after_a_restart_records_its_usage_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    project = oasis_cli(data, "projects", "create", "resumed", "--max-tokens", "8")
    key = oasis_cli(data, "keys", "create", "--project", project)
    admin = oasis_cli(data, "keys", "create", "--admin")
    config = {"preload": [MODEL], "batch_concurrency": 1}
    lines = [chat_line(f"r{i}", f"Describe the number {i}.", max_tokens=16) for i in range(8)]
    start = int(time.time()) - 5

    server = start_server(data, config=config)
    try:
        with sdk_for(server, key) as sdk:
            batch = create(sdk, upload(sdk, lines))
            background = [
                sdk.responses.create(
                    model=MODEL, input=f"Count to {n}.", background=True, max_output_tokens=32
                ).id
                for n in (3, 30)
            ]
            wait_done(sdk, batch.id, 2)
    finally:
        server.stop()

    server = start_server(data, config=config)  # resumes the batch; the background ones end
    try:
        with sdk_for(server, key) as sdk, _admin(server, admin) as admin_sdk:
            done = wait(sdk, batch.id)
            assert done.status == "completed", done
            output = lines_of(sdk, done.output_file_id)
            assert sorted(line["custom_id"] for line in output) == sorted(
                line["custom_id"] for line in lines
            )
            told = [_usage_of(line["response"]["body"]) for line in output]
            # The project's ceiling held for every line, before the restart and after.
            assert all(0 < out <= 8 for _, out in told), told
            answers = [sdk.responses.retrieve(i).model_dump() for i in background]
            told += [_usage_of(answer) for answer in answers]
            finished = sum(1 for a in answers if a["status"] in {"completed", "incomplete"})
            page = admin_sdk.admin.organization.usage.completions(
                start_time=start, group_by=["api_key_id"]
            )
            results = _results(page)
    finally:
        server.stop()
    # All of it under the one key that asked, whichever process finished it.
    assert len({r.api_key_id for r in results}) == 1
    assert str(results[0].api_key_id).startswith("key_")
    assert sum(r.input_tokens for r in results) == sum(i for i, _ in told)
    assert sum(r.output_tokens for r in results) == sum(o for _, o in told)
    assert sum(r.num_model_requests for r in results) == len(lines) + finished
