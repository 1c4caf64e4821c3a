"""The ``code_interpreter`` tool end to end: items, stream order, include, container files
and their citations, state between calls, and refusal where no sandbox can run.

Most cases use the scripted model (its code is the user's text, so the protocol is exact);
one runs the real default model with a forced ``tool_choice``.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.conftest import SANDBOX_KEYS, SCRIPTED
from tests.responses_helpers import MODEL, check_order, sse_events
from tests.server import Server, sdk_for, start_server

AUTO = {"type": "code_interpreter", "container": {"type": "auto"}}
OUTPUTS = ["code_interpreter_call.outputs"]


@pytest.fixture(scope="module")
def raw(sandbox_server: Server) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {SANDBOX_KEYS[0]}"}
    with httpx.Client(base_url=sandbox_server.api_url, headers=headers, timeout=120) as client:
        yield client


@pytest.fixture(autouse=True)
def _needs_the_sandbox(request: pytest.FixtureRequest) -> None:
    if request.node.name != "test_without_a_sandbox_the_tool_is_refused":
        request.getfixturevalue("sandbox_ready")


def _run(client: OpenAI, code: str, tool: dict[str, Any] = AUTO, **extra: Any) -> Any:
    return client.responses.create(model=SCRIPTED, input=code, tools=[tool], **extra)


def test_a_call_runs_the_code_and_the_model_reads_its_output(box_client: OpenAI) -> None:
    response = _run(box_client, "x = 6 * 7\nprint('x is', x)", include=OUTPUTS)
    call, answer = response.output
    assert call.type == "code_interpreter_call" and call.status == "completed"
    assert call.code == "x = 6 * 7\nprint('x is', x)"
    assert call.container_id.startswith("cntr_")
    assert call.outputs is not None
    assert [o.model_dump() for o in call.outputs] == [{"type": "logs", "logs": "x is 42\n"}]
    assert answer.type == "message" and "x is 42" in answer.content[0].text
    # Outputs are stored whole, and shown only to a request that includes them.
    assert box_client.responses.retrieve(response.id).output[0].outputs is None
    shown = box_client.responses.retrieve(response.id, include=OUTPUTS)  # type: ignore[list-item]
    assert shown.output[0].outputs is not None


def test_variables_survive_between_calls_of_a_container(box_client: OpenAI) -> None:
    box = box_client.containers.create(name="state")
    tool = {"type": "code_interpreter", "container": box.id}
    first = _run(box_client, "total = 40", tool)
    assert first.output[0].container_id == box.id
    second = _run(box_client, "total + 2", tool, include=OUTPUTS)
    assert second.output[0].outputs[0].logs == "42\n"
    # An auto container in a later turn keeps using the conversation's container.
    third = _run(box_client, "total * 2", AUTO, previous_response_id=second.id, include=OUTPUTS)
    assert third.output[0].container_id == box.id
    assert third.output[0].outputs[0].logs == "80\n"


def test_files_the_code_writes_are_cited_and_downloadable(box_client: OpenAI) -> None:
    uploaded = box_client.files.create(
        file=("numbers.csv", io.BytesIO(b"n\n1\n2\n3\n")), purpose="user_data"
    )
    tool = {"type": "code_interpreter", "container": {"type": "auto", "file_ids": [uploaded.id]}}
    code = (
        "import numpy as np\n"
        "n = np.loadtxt('/mnt/data/numbers.csv', skiprows=1)\n"
        "open('/mnt/data/total.txt', 'w').write(str(int(n.sum())))\n"
        "import matplotlib.pyplot as plt\n"
        "plt.plot(n)\n"
        "print('sum', int(n.sum()))"
    )
    response = _run(box_client, code, tool, include=OUTPUTS)
    call, answer = response.output
    kinds = [o.type for o in call.outputs]
    assert kinds == ["logs", "image"], call.outputs
    image = call.outputs[1]
    assert image.url.startswith("data:image/png;base64,")
    assert base64.b64decode(image.url.split(",", 1)[1]).startswith(b"\x89PNG")

    files = {f.path: f for f in box_client.containers.files.list(call.container_id).data}
    assert files["/mnt/data/numbers.csv"].source == "user"
    assert files["/mnt/data/total.txt"].source == "assistant"
    assert files["/mnt/data/plot_1.png"].source == "assistant"
    text = answer.content[0].text
    citations = {a.filename: a for a in answer.content[0].annotations}
    assert set(citations) == {"total.txt", "plot_1.png"}
    for name, cite in citations.items():
        assert cite.type == "container_file_citation"
        assert cite.container_id == call.container_id
        assert cite.file_id == files[f"/mnt/data/{name}"].id
        assert text[cite.start_index : cite.end_index] == name
    total = box_client.containers.files.content.retrieve(
        citations["total.txt"].file_id, container_id=call.container_id
    )
    assert total.read() == b"6"


def test_stream_order_follows_openai(raw: httpx.Client) -> None:
    body = {"model": SCRIPTED, "input": "print('a' * 200)", "tools": [AUTO], "stream": True}
    events = sse_events(raw.post("/responses", json=body))
    check_order(events)
    kinds = [e["type"] for e in events if "code_interpreter" in e["type"]]
    deltas = [k for k in kinds if k.endswith("code.delta")]
    assert len(deltas) >= 1
    assert kinds == [
        "response.code_interpreter_call.in_progress",
        *deltas,
        "response.code_interpreter_call_code.done",
        "response.code_interpreter_call.interpreting",
        "response.code_interpreter_call.completed",
    ]
    added = next(e for e in events if e["type"] == "response.output_item.added")
    assert added["item"]["code"] == "" and added["item"]["outputs"] is None
    code = "".join(e["delta"] for e in events if e["type"].endswith("code.delta"))
    assert code == "print('a' * 200)"
    done = next(e for e in events if e["type"] == "response.output_item.done")
    assert done["item"]["code"] == code and done["item"]["outputs"] is None  # not included


def test_the_sdk_stream_helper_accepts_the_stream(box_client: OpenAI) -> None:
    with box_client.responses.stream(model=SCRIPTED, input="print(1)", tools=[AUTO]) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert final.output[0].type == "code_interpreter_call"


@pytest.mark.parametrize(
    ("tool", "param"),
    [
        ({"type": "code_interpreter", "container": "cntr_nope"}, "tools[0].container"),
        ({"type": "code_interpreter", "container": ""}, "tools[0].container"),
        ({"type": "code_interpreter", "container": {"type": "manual"}}, "tools[0].container.type"),
        (
            {"type": "code_interpreter", "container": {"type": "auto", "file_ids": ["file-x"]}},
            "tools[0].container.file_ids[0]",
        ),
        (
            {"type": "code_interpreter", "container": {"type": "auto", "memory_limit": "3g"}},
            "tools[0].container.memory_limit",
        ),
    ],
)
def test_bad_tools_name_the_field(raw: httpx.Client, tool: dict[str, Any], param: str) -> None:
    response = raw.post("/responses", json={"model": SCRIPTED, "input": "1", "tools": [tool]})
    assert response.status_code in {400, 404}, response.text
    assert response.json()["error"]["param"] == param


def test_the_real_model_writes_and_runs_code(client: OpenAI) -> None:
    """The tiny default model, forced to call the tool: its code runs in the sandbox and the
    loop goes on to an answer (one hosted call allowed, so the next step must answer)."""
    response = client.responses.create(
        model=MODEL,
        input="Use python to compute 2 to the power of 10.",
        tools=[AUTO],  # type: ignore[list-item]
        tool_choice={"type": "code_interpreter"},
        max_tool_calls=1,
        temperature=0,
        max_output_tokens=120,
        include=OUTPUTS,  # type: ignore[list-item]
    )
    call = response.output[0]
    assert call.type == "code_interpreter_call" and call.status == "completed"
    assert call.code and call.container_id.startswith("cntr_")
    assert call.outputs is not None
    assert response.output[-1].type == "message"
    assert client.containers.retrieve(call.container_id).id == call.container_id


def test_without_a_sandbox_the_tool_is_refused(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    srv = start_server(
        tmp_path_factory.mktemp("oasis-nosandbox"),
        config={"preload": [], "code_interpreter": {"bwrap": "/nonexistent/bwrap"}},
    )
    try:
        with sdk_for(srv, "sk-test") as sdk, httpx.Client(base_url=srv.api_url) as raw_http:
            response = raw_http.post(
                "/responses", json={"model": MODEL, "input": "hi", "tools": [AUTO]}
            )
            assert response.status_code == 400, response.text
            error = response.json()["error"]
            assert error["param"] == "tools[0]"
            assert "sandbox" in error["message"] and "/nonexistent/bwrap" in error["message"]
            # Containers still hold files; only running code needs the sandbox.
            assert sdk.containers.create(name="files only").status == "running"
        assert "code_interpreter is disabled" in srv.log()
    finally:
        srv.stop()


def test_stored_calls_replay_to_the_model(box_client: OpenAI) -> None:
    first = _run(box_client, "print('replayed')")
    later = box_client.responses.create(
        model=SCRIPTED, input="hello", previous_response_id=first.id
    )
    assert later.output_text == "ok; earlier results: replayed"
