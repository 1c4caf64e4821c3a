"""``/metrics`` in the Prometheus text format, and JSON access logs."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families

from tests.server import Server, oasis_cli, start_server

MODEL = "smollm2-135m-instruct"


def _samples(server: Server) -> dict[str, list[tuple[dict[str, str], float]]]:
    response = httpx.get(f"{server.base_url}/metrics")  # no key: scrapers have none
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def test_metrics_parse_and_count_requests_tokens_and_queues(server: Server, client: OpenAI) -> None:
    chat = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=3
    )
    assert chat.usage is not None
    for _ in client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=3, stream=True
    ):
        pass
    samples = _samples(server)
    requests = {
        (labels["route"], labels["status"]): value
        for labels, value in samples["oasis_requests_total"]
    }
    assert requests[("/v1/chat/completions", "200")] >= 2
    tokens = {
        (labels["model"], labels["direction"]): value
        for labels, value in samples["oasis_tokens_total"]
    }
    assert tokens[(MODEL, "input")] >= chat.usage.prompt_tokens
    assert tokens[(MODEL, "output")] >= chat.usage.completion_tokens
    first_token = {
        labels["route"]: value
        for labels, value in samples["oasis_time_to_first_token_seconds_count"]
    }
    assert first_token["/v1/chat/completions"] >= 1
    latency = {
        labels["route"]: value for labels, value in samples["oasis_request_duration_seconds_count"]
    }
    assert latency["/v1/chat/completions"] >= 2
    queues = {labels["model"]: value for labels, value in samples["oasis_queue_depth"]}
    assert queues[MODEL] >= 0
    assert MODEL in {labels["model"] for labels, _ in samples["oasis_active_sequences"]}
    assert samples["oasis_requests_in_progress"][0][1] >= 0
    jobs = {labels["kind"] for labels, _ in samples["oasis_background_jobs"]}
    assert jobs == {"responses", "batches"}
    outcomes = {labels["outcome"] for labels, _ in samples["oasis_batch_lines_done"]}
    assert outcomes == {"completed", "failed"}
    assert {labels["reason"] for labels, _ in samples["oasis_batch_lines_rerun"]} == {"preempted"}


def test_routes_are_labelled_by_template_not_by_id(server: Server) -> None:
    httpx.get(
        f"{server.api_url}/responses/resp_not_there", headers={"Authorization": "Bearer sk-test"}
    )
    routes = {labels["route"] for labels, _ in _samples(server)["oasis_requests_total"]}
    assert "/v1/responses/{response_id}" in routes
    assert not any("resp_not_there" in route for route in routes)


def test_json_access_log_has_request_and_key_ids_but_never_the_secret(tmp_path: Path) -> None:
    data = tmp_path / "logged"
    oasis_cli(data, "projects", "create", "logged")
    secret = oasis_cli(data, "keys", "create", "--project", "logged", "--name", "logger")
    key_id = json.loads(oasis_cli(data, "keys", "list", "--json"))[0]["id"]
    server = start_server(data, config={"preload": []}, args=["--log-format", "json"])
    try:
        with OpenAI(base_url=server.api_url, api_key=secret, max_retries=0, timeout=300) as sdk:
            raw = sdk.chat.completions.with_raw_response.create(
                model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=2
            )
        request_id = raw.headers["x-request-id"]
        used = raw.parse().usage
        assert used is not None
    finally:
        server.stop()
    log = server.log()
    assert secret not in log and secret[9:] not in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    line = next(entry for entry in lines if entry["request_id"] == request_id)
    assert line["key_id"] == key_id
    assert line["project_id"].startswith("proj_")
    assert line["route"] == "/v1/chat/completions" and line["status"] == 200
    assert line["model"] == MODEL
    assert line["input_tokens"] == used.prompt_tokens
    assert line["output_tokens"] == used.completion_tokens
    assert line["duration_ms"] > 0
