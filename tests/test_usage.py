"""Usage accounting: what the database records equals what the clients were told."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from openai import OpenAI

from tests.server import Server, oasis_cli, sdk_for, start_server

MODEL = "smollm2-135m-instruct"
EMBEDDER = "all-minilm-l6-v2"


@dataclass
class Setup:
    server: Server
    first: str
    second: str
    admin: str


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    data = tmp_path_factory.mktemp("oasis-usage")
    project = oasis_cli(data, "projects", "create", "counted")
    keys = [oasis_cli(data, "keys", "create", "--project", project) for _ in range(2)]
    admin = oasis_cli(data, "keys", "create", "--admin")
    server = start_server(data, config={"preload": [MODEL]})
    yield Setup(server, keys[0], keys[1], admin)
    server.stop()


def _completions_traffic(sdk: OpenAI) -> tuple[int, int, int]:
    """Chat, completions and Responses, plain and streamed: (input, output, requests)."""
    seen: list[tuple[int, int]] = []
    chat = sdk.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    assert chat.usage is not None
    seen.append((chat.usage.prompt_tokens, chat.usage.completion_tokens))
    chunks = sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Name a colour."}],
        max_tokens=4,
        stream=True,
        stream_options={"include_usage": True},
    )
    last = [chunk for chunk in chunks][-1]
    assert last.usage is not None
    seen.append((last.usage.prompt_tokens, last.usage.completion_tokens))
    legacy = sdk.completions.create(model=MODEL, prompt="One, two,", max_tokens=4)
    assert legacy.usage is not None
    seen.append((legacy.usage.prompt_tokens, legacy.usage.completion_tokens))
    response = sdk.responses.create(model=MODEL, input="Say yes.", max_output_tokens=16)
    assert response.usage is not None
    seen.append((response.usage.input_tokens, response.usage.output_tokens))
    events = sdk.responses.create(model=MODEL, input="Say no.", max_output_tokens=16, stream=True)
    # Either end carries the usage: 16 tokens may not be enough to finish.
    final = next(
        e.response for e in events if e.type in {"response.completed", "response.incomplete"}
    )
    assert final.usage is not None
    seen.append((final.usage.input_tokens, final.usage.output_tokens))
    return sum(i for i, _ in seen), sum(o for _, o in seen), len(seen)


def test_usage_totals_equal_what_clients_received(setup: Setup) -> None:
    start = int(time.time()) - 5
    with sdk_for(setup.server, setup.first) as first, sdk_for(setup.server, setup.second) as second:
        first_in, first_out, first_n = _completions_traffic(first)
        second_in, second_out, second_n = _completions_traffic(second)
        embedded = first.embeddings.create(
            model=EMBEDDER, input=["alpha", "beta gamma"], encoding_format="float"
        )
    with OpenAI(
        base_url=setup.server.api_url,
        api_key="unused",
        admin_api_key=setup.admin,
        max_retries=0,
        _strict_response_validation=True,
    ) as admin:
        page = admin.admin.organization.usage.completions(
            start_time=start, bucket_width="1h", group_by=["api_key_id", "model"]
        )
        results = [r for bucket in page.data for r in bucket.results]
        assert {r.model for r in results} == {MODEL}
        by_key: dict[str | None, list[int]] = {}
        for r in results:
            totals = by_key.setdefault(r.api_key_id, [0, 0, 0])
            totals[0] += r.input_tokens
            totals[1] += r.output_tokens
            totals[2] += r.num_model_requests
        assert sorted(by_key.values()) == sorted(
            [[first_in, first_out, first_n], [second_in, second_out, second_n]]
        )
        assert all(key is not None and key.startswith("key_") for key in by_key)

        whole = admin.admin.organization.usage.completions(start_time=start, bucket_width="1d")
        totals = [r for bucket in whole.data for r in bucket.results]
        assert sum(r.input_tokens for r in totals) == first_in + second_in
        assert sum(r.output_tokens for r in totals) == first_out + second_out
        assert all(r.project_id is None and r.model is None for r in totals)  # not grouped

        embeddings = admin.admin.organization.usage.embeddings(
            start_time=start, group_by=["project_id"]
        )
        rows = [r for bucket in embeddings.data for r in bucket.results]
        assert sum(r.input_tokens for r in rows) == embedded.usage.prompt_tokens
        assert all(r.project_id is not None and r.project_id.startswith("proj_") for r in rows)

    table = oasis_cli(setup.server.data_dir, "usage", "--days", "1")
    assert MODEL in table and "completions" in table


def test_usage_buckets_page_and_refuse_bad_parameters(setup: Setup) -> None:
    url = f"{setup.server.api_url}/organization/usage/completions"
    headers = {"Authorization": f"Bearer {setup.admin}"}
    now = int(time.time())
    first = httpx.get(
        url,
        params={"start_time": now - 5 * 60, "bucket_width": "1m", "limit": 3},
        headers=headers,
    ).json()
    assert len(first["data"]) == 3 and first["has_more"] is True
    assert all(b["end_time"] - b["start_time"] == 60 for b in first["data"])
    rest = httpx.get(
        url,
        params={"start_time": now - 5 * 60, "bucket_width": "1m", "page": first["next_page"]},
        headers=headers,
    ).json()
    assert rest["data"][0]["start_time"] == first["data"][-1]["end_time"]
    for params, param in [
        ({}, "start_time"),
        ({"start_time": "soon"}, "start_time"),
        ({"start_time": now, "bucket_width": "1w"}, "bucket_width"),
        ({"start_time": now, "group_by": "user_id"}, "group_by"),
        ({"start_time": now, "bucket_width": "1d", "limit": 99}, "limit"),
        ({"start_time": now, "page": "page_1"}, "page"),
    ]:
        response = httpx.get(url, params=params, headers=headers)
        assert response.status_code == 400, params
        assert response.json()["error"]["param"] == param
    unknown = httpx.get(f"{url}_please", params={"start_time": now}, headers=headers)
    assert unknown.status_code == 404
