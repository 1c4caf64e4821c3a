"""The Batch API end to end: the official SDK (strict validation) against a real server.

A bad input file fails the batch in ``validating`` with line-numbered errors; good files run
every line through the endpoint's own service (chat, embeddings, responses) and end with
output and error files; a cancel keeps the lines that finished; a restart resumes a batch
without running a finished line again, and a batch whose window ended meanwhile expires
with its finished lines kept; live requests are served ahead of batch lines.
"""

from __future__ import annotations

import base64
import io
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types import Batch, CreateEmbeddingResponse, ImagesResponse
from openai.types.chat import ChatCompletion
from openai.types.responses import Response
from PIL import Image as PILImage

from oasis.engines.worker import LIVE_QUIET
from tests.server import Server, start_server

CHAT = "/v1/chat/completions"
ENDS = {"completed", "failed", "expired", "cancelled"}


def chat_line(custom_id: str, content: str = "Say hi.", **extra: Any) -> dict[str, Any]:
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 4,
        **extra,
    }
    return {"custom_id": custom_id, "method": "POST", "url": CHAT, "body": body}


def upload(client: OpenAI, lines: list[Any]) -> str:
    """The lines (dicts are written as JSON, strings as they are) as a ``batch`` file."""
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    return client.files.create(file=("input.jsonl", text.encode() + b"\n"), purpose="batch").id


def wait(client: OpenAI, batch_id: str, statuses: set[str] = ENDS, timeout: float = 600) -> Batch:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        if batch.status in statuses:
            return batch
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_id} still {batch.status} after {timeout} s")


def wait_done(client: OpenAI, batch_id: str, at_least: int, timeout: float = 600) -> Batch:
    """The batch once ``at_least`` of its lines are done (and it is still running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        counts = batch.request_counts
        assert counts is not None
        if counts.completed + counts.failed >= at_least or batch.status in ENDS:
            return batch
        time.sleep(0.1)
    raise AssertionError(f"batch {batch_id} did not reach {at_least} lines in {timeout} s")


def lines_of(client: OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    file = client.files.retrieve(file_id)
    assert file.purpose == "batch_output"
    text = client.files.content(file_id).text
    return [json.loads(line) for line in text.splitlines()]


def create(client: OpenAI, file_id: str, endpoint: str = CHAT, **extra: Any) -> Batch:
    return client.batches.create(
        input_file_id=file_id,
        endpoint=endpoint,  # type: ignore[arg-type]
        completion_window="24h",
        **extra,
    )


def test_a_bad_file_fails_in_validating_with_line_numbers(client: OpenAI) -> None:
    lines: list[Any] = [
        chat_line("ok-1"),
        "{not json",
        chat_line("ok-1"),  # a duplicate custom_id
        {**chat_line("wrong-url"), "url": "/v1/completions"},
        chat_line("two-models", model="some-other-model"),
        chat_line("streamed", stream=True),
        {**chat_line("get"), "method": "GET"},
    ]
    batch = create(client, upload(client, lines))
    assert batch.status == "validating" and batch.endpoint == CHAT
    failed = wait(client, batch.id)
    assert failed.status == "failed" and failed.failed_at is not None
    assert failed.in_progress_at is None and failed.output_file_id is None
    assert failed.errors is not None and failed.errors.data is not None
    found = [(e.line, e.code, e.param) for e in failed.errors.data]
    assert found == [
        (2, "invalid_json_line", None),
        (3, "duplicate_custom_id", "custom_id"),
        (4, "invalid_url", "url"),
        (5, "mismatched_model", "body.model"),
        (6, "invalid_value", "body.stream"),
        (7, "invalid_method", "method"),
    ]
    assert failed.request_counts is not None and failed.request_counts.total == 0


def test_mixed_chat_batch_completes_with_output_and_error_files(client: OpenAI) -> None:
    lines = [
        chat_line("a", "Name a colour."),
        {**chat_line("no-messages"), "body": {"model": "gpt-4o-mini", "max_tokens": 4}},
        chat_line("b", "Name a fruit."),
        chat_line("hot", temperature=5),
        chat_line("c", "Name an animal."),
    ]
    batch = create(client, upload(client, lines), metadata={"job": "mixed"})
    assert batch.metadata == {"job": "mixed"} and batch.completion_window == "24h"
    assert batch.expires_at is not None and batch.expires_at - batch.created_at == 24 * 3600
    done = wait(client, batch.id)
    assert done.status == "completed", done
    assert done.model == "gpt-4o-mini"
    assert done.in_progress_at and done.finalizing_at and done.completed_at
    counts = done.request_counts
    assert counts is not None and (counts.total, counts.completed, counts.failed) == (5, 3, 2)

    output = lines_of(client, done.output_file_id)
    assert sorted(line["custom_id"] for line in output) == ["a", "b", "c"]
    for line in output:
        assert line["id"].startswith("batch_req_") and line["error"] is None
        assert line["response"]["status_code"] == 200
        assert line["response"]["request_id"].startswith("req_")
        completion = ChatCompletion.model_validate(line["response"]["body"])
        assert completion.object == "chat.completion"
    # The batch's usage is the sum of its lines' own (failed lines used no tokens).
    usages = [ChatCompletion.model_validate(line["response"]["body"]).usage for line in output]
    assert done.usage is not None
    assert done.usage.input_tokens == sum(u.prompt_tokens for u in usages if u) > 0
    assert done.usage.output_tokens == sum(u.completion_tokens for u in usages if u) > 0
    assert done.usage.total_tokens == done.usage.input_tokens + done.usage.output_tokens

    errors = {line["custom_id"]: line for line in lines_of(client, done.error_file_id)}
    assert set(errors) == {"no-messages", "hot"}
    for custom_id, param in (("no-messages", "messages"), ("hot", "temperature")):
        response = errors[custom_id]["response"]
        assert response["status_code"] == 400
        assert response["body"]["error"]["param"] == param
        assert response["body"]["error"]["type"] == "invalid_request_error"


def test_embeddings_batch(client: OpenAI) -> None:
    texts = ["the cat sat", "on the mat", "a quiet afternoon"]
    lines = [
        {
            "custom_id": f"e{i}",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "text-embedding-3-small", "input": text},
        }
        for i, text in enumerate(texts)
    ]
    batch = create(client, upload(client, lines), endpoint="/v1/embeddings")
    done = wait(client, batch.id)
    assert done.status == "completed" and done.error_file_id is None
    output = lines_of(client, done.output_file_id)
    assert sorted(line["custom_id"] for line in output) == ["e0", "e1", "e2"]
    assert done.usage is not None and done.usage.output_tokens == 0
    assert done.usage.input_tokens == sum(
        line["response"]["body"]["usage"]["prompt_tokens"] for line in output
    )
    direct = client.embeddings.create(
        model="text-embedding-3-small", input=texts[0], encoding_format="float"
    )
    for line in output:
        result = CreateEmbeddingResponse.model_validate(line["response"]["body"])
        assert len(result.data[0].embedding) == 384
        if line["custom_id"] == "e0":  # the same service answers the same vector
            assert result.data[0].embedding == pytest.approx(direct.data[0].embedding, abs=1e-5)


def test_responses_batch(client: OpenAI) -> None:
    lines = [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/responses",
            "body": {"model": "gpt-4o-mini", "input": text, "max_output_tokens": 16},
        }
        for i, text in enumerate(["Say hello.", "Say goodbye."])
    ]
    batch = create(client, upload(client, lines), endpoint="/v1/responses")
    done = wait(client, batch.id)
    assert done.status == "completed"
    output = lines_of(client, done.output_file_id)
    assert sorted(line["custom_id"] for line in output) == ["r0", "r1"]
    for line in output:
        response = Response.model_validate(line["response"]["body"])
        # Stored like any response made over HTTP, under the batch's key.
        assert client.responses.retrieve(response.id).id == response.id


def test_image_batches_answer_inline_pictures(client: OpenAI, image_models: dict[str, str]) -> None:
    def line(custom_id: str, url: str, **body: Any) -> dict[str, Any]:
        body = {"model": image_models[body.pop("kind")], "prompt": "a red boat", **body}
        return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}

    generations = "/v1/images/generations"
    lines = [
        line("g0", generations, kind="text_to_image"),
        line("g1", generations, kind="text_to_image", output_format="jpeg"),
        line("link", generations, kind="text_to_image", response_format="url"),
    ]
    done = wait(client, create(client, upload(client, lines), endpoint=generations).id)
    assert done.status == "completed"
    output = {line["custom_id"]: line for line in lines_of(client, done.output_file_id)}
    assert sorted(output) == ["g0", "g1"]
    for custom_id, magic in (("g0", b"\x89PNG"), ("g1", b"\xff\xd8")):
        result = ImagesResponse.model_validate(output[custom_id]["response"]["body"])
        assert result.data is not None and result.data[0].b64_json is not None
        assert base64.b64decode(result.data[0].b64_json).startswith(magic)
    (failed,) = lines_of(client, done.error_file_id)
    assert failed["custom_id"] == "link" and failed["response"]["status_code"] == 400
    assert failed["response"]["body"]["error"]["param"] == "response_format"

    picture = "data:image/png;base64," + base64.b64encode(_png((64, 64))).decode()
    edits = "/v1/images/edits"
    edit = line("e0", edits, kind="inpainting", images=[{"image_url": picture}])
    done = wait(client, create(client, upload(client, [edit]), endpoint=edits).id)
    assert done.status == "completed", done.errors
    (edited,) = lines_of(client, done.output_file_id)
    result = ImagesResponse.model_validate(edited["response"]["body"])
    assert result.data is not None and result.data[0].b64_json


def _png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_cancel_mid_run_keeps_finished_lines(client: OpenAI) -> None:
    lines = [chat_line(f"c{i}", f"Count to {i}.", max_tokens=24) for i in range(40)]
    batch = create(client, upload(client, lines))
    wait_done(client, batch.id, 1)
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in {"cancelling", "cancelled"}
    done = wait(client, batch.id)
    assert done.status == "cancelled" and done.cancelling_at and done.cancelled_at
    counts = done.request_counts
    assert counts is not None and counts.total == 40
    assert 1 <= counts.completed < 40 and counts.failed == 0
    output = lines_of(client, done.output_file_id)
    assert len(output) == counts.completed
    assert len({line["custom_id"] for line in output}) == len(output)
    # Cancelling again changes nothing.
    assert client.batches.cancel(batch.id).status == "cancelled"


@pytest.fixture(scope="module")
def wide_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenAI]:
    """A server running 8 batch lines at once: without priorities, a live request would
    queue behind all 8."""
    server = start_server(
        tmp_path_factory.mktemp("oasis-batches"),
        config={"preload": ["smollm2-135m-instruct"], "batch_concurrency": 8},
    )
    try:
        with OpenAI(
            base_url=server.api_url, api_key="x", _strict_response_validation=True, max_retries=0
        ) as sdk:
            yield sdk
    finally:
        server.stop()


def test_live_requests_go_ahead_of_batch_lines(wide_client: OpenAI) -> None:
    client = wide_client
    lines = [chat_line(f"p{i}", f"Tell a story about {i}.", max_tokens=24) for i in range(40)]
    batch = create(client, upload(client, lines))
    before = wait_done(client, batch.id, 1).request_counts
    live = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    assert live.choices[0].message.content is not None
    after = client.batches.retrieve(batch.id)
    assert after.status == "in_progress" and before is not None and after.request_counts
    # Counted in lines, not seconds: the live request started at once on the sequence kept
    # free for it and the batch lines sat out its steps (a few may end before it joins or
    # before the retrieve); it did not queue behind the lines in flight.
    assert after.request_counts.completed - before.completed <= 3
    client.batches.cancel(batch.id)
    wait(client, batch.id)


def _metric(client: OpenAI, sample: str) -> float:
    """The value of one ``/metrics`` sample (name and labels as the text format writes them)."""
    base = str(client.base_url).rstrip("/").removesuffix("/v1")
    text = httpx.get(f"{base}/metrics", timeout=30).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(sample)
    )


RERUNS = 'oasis_batch_lines_rerun{reason="preempted"}'


def test_a_line_that_gives_way_to_a_live_request_runs_again_once(wide_client: OpenAI) -> None:
    """Chat lines may take every sequence; a live request that finds none free makes the
    newest line give its one up. That line runs again from the start: the output file has
    each line once, with the answer it gives alone."""
    client = wide_client
    reruns = _metric(client, RERUNS)
    time.sleep(LIVE_QUIET)  # after the live requests of the tests before
    prompts = [f"Write about the color number {i}." for i in range(12)]
    lines = [chat_line(f"c{i}", p, max_tokens=40, temperature=0) for i, p in enumerate(prompts)]
    batch = create(client, upload(client, lines))
    # Once live traffic has been quiet for a moment, the lines take all four sequences.
    running = 'oasis_active_sequences{model="smollm2-135m-instruct"}'
    deadline = time.monotonic() + 120
    while _metric(client, running) < 4:
        assert time.monotonic() < deadline, "the batch never took every sequence"
        time.sleep(0.05)
    for i in range(3):  # the first finds every sequence taken by a batch line
        live = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"Hi {i}"}], max_tokens=4
        )
        assert live.choices[0].message.content is not None
    done = wait(client, batch.id)
    assert done.status == "completed" and done.request_counts is not None
    assert done.request_counts.completed == 12 and done.request_counts.failed == 0
    assert _metric(client, RERUNS) > reruns
    output = {line["custom_id"]: line for line in lines_of(client, done.output_file_id)}
    assert sorted(output) == sorted(f"c{i}" for i in range(12))  # each once
    for i, prompt in enumerate(prompts):
        alone = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": prompt}],
            max_tokens=40,
            temperature=0,
        )
        body = output[f"c{i}"]["response"]["body"]
        assert body["choices"][0]["message"]["content"] == alone.choices[0].message.content
        assert body["usage"]["completion_tokens"] == alone.usage.completion_tokens  # type: ignore[union-attr]


def test_create_errors_name_their_param(client: OpenAI) -> None:
    other = client.files.create(file=("x.txt", b"hello"), purpose="assistants")
    with pytest.raises(openai.BadRequestError) as bad:
        create(client, other.id)
    assert bad.value.body["param"] == "input_file_id"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as missing:
        create(client, "file-missing")
    assert missing.value.body["param"] == "input_file_id"  # type: ignore[index]
    good = upload(client, [chat_line("x")])
    with pytest.raises(openai.BadRequestError) as endpoint:
        create(client, good, endpoint="/v1/videos")
    assert endpoint.value.body["param"] == "endpoint"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as window:
        client.batches.create(
            input_file_id=good,
            endpoint=CHAT,
            completion_window="48h",  # type: ignore[arg-type]
        )
    assert window.value.body["param"] == "completion_window"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as unknown:
        client.batches.retrieve("batch_missing")
    assert unknown.value.body["param"] == "batch_id"  # type: ignore[index]


def test_list_pages_newest_first(client: OpenAI) -> None:
    file_id = upload(client, ["{broken"])
    made = [create(client, file_id).id for _ in range(3)]
    page = client.batches.list(limit=2)
    assert [b.id for b in page.data] == made[::-1][:2] and page.has_more
    rest = client.batches.list(limit=2, after=made[1])
    assert rest.data[0].id == made[0]
    for batch_id in made:
        assert wait(client, batch_id).status == "failed"


@pytest.fixture
def restart_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "data"


def _start(data_dir: Path) -> Server:
    return start_server(
        data_dir, config={"preload": ["smollm2-135m-instruct"], "batch_concurrency": 1}
    )


def _done_lines(data_dir: Path, batch_id: str) -> dict[str, str]:
    """custom_id → the output line id of each line the stopped server recorded as done."""
    with sqlite3.connect(data_dir / "oasis.db") as db:
        rows = db.execute(
            "SELECT custom_id, result FROM batch_lines WHERE batch_id = ? AND done",
            (batch_id,),
        ).fetchall()
    return {custom_id: json.loads(result)["id"] for custom_id, result in rows}


def test_restart_mid_run_resumes_each_line_once(restart_dir: Path) -> None:
    lines = [chat_line(f"r{i}", f"Describe the number {i}.", max_tokens=16) for i in range(12)]
    server = _start(restart_dir)
    try:
        with OpenAI(
            base_url=server.api_url, api_key="x", _strict_response_validation=True, max_retries=0
        ) as sdk:
            batch = create(sdk, upload(sdk, lines))
            # A second batch, whose window is made to end while the server is down.
            late = create(sdk, upload(sdk, [chat_line(f"x{i}") for i in range(4)]))
            wait_done(sdk, batch.id, 2)
    finally:
        server.stop()
    before = _done_lines(restart_dir, batch.id)
    assert 2 <= len(before) < 12, "the batch should still have been running"
    late_before = _done_lines(restart_dir, late.id)
    with sqlite3.connect(restart_dir / "oasis.db") as db:
        db.execute("UPDATE batches SET expires_at = 1 WHERE id = ?", (late.id,))

    server = _start(restart_dir)
    try:
        with OpenAI(
            base_url=server.api_url, api_key="x", _strict_response_validation=True, max_retries=0
        ) as sdk:
            done = wait(sdk, batch.id)
            assert done.status == "completed", done
            counts = done.request_counts
            assert counts is not None and (counts.total, counts.completed) == (12, 12)
            output = lines_of(sdk, done.output_file_id)

            expired = wait(sdk, late.id)
            assert expired.status == "expired" and expired.expired_at is not None
            late_counts = expired.request_counts
            assert late_counts is not None and late_counts.total == 4
            assert late_counts.completed == len(late_before)
            assert late_counts.failed == 4 - len(late_before)
            late_output = lines_of(sdk, expired.output_file_id)
            late_errors = lines_of(sdk, expired.error_file_id)
    finally:
        server.stop()
    ids = [line["custom_id"] for line in output]
    assert sorted(ids) == sorted(f"r{i}" for i in range(12))  # each exactly once
    # A line done before the restart was not run again: its output is the one stored then.
    by_custom_id = {line["custom_id"]: line["id"] for line in output}
    assert all(by_custom_id[custom_id] == line_id for custom_id, line_id in before.items())
    # The expired batch kept what it had finished; the rest are batch_expired errors.
    assert {line["custom_id"] for line in late_output} == set(late_before)
    assert all(line["error"]["code"] == "batch_expired" for line in late_errors)
    assert {line["custom_id"] for line in late_output + late_errors} == {f"x{i}" for i in range(4)}
