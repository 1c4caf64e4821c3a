"""The playground page, driven in a real headless Chromium (Debian's ``chromium`` through
Playwright; Playwright's own browser downloads are never used).

The page is loaded from a server that requires an API key, so everything it shows came
through the public API with the key typed into it. Screenshots of the main views are saved
under pytest's tmp dir; the path is printed at the end of the module.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI
from playwright.sync_api import (
    Browser,
    ElementHandle,
    Page,
    Response,
    expect,
    sync_playwright,
)

from tests.server import Server, sdk_for, start_server

pytestmark = pytest.mark.slow

KEY = "sk-playground-test"
WAIT_MS = 600_000  # a generation on a loaded 2-core machine; this bounds a hang, not speed


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from tests.tiny_diffusion import TEXT_TO_IMAGE, image_model_configs

    # A tiny, randomly initialised diffusers pipeline, aliased gpt-image-1.
    images = image_model_configs(tmp_path_factory.mktemp("diffusers"))
    srv = start_server(
        tmp_path_factory.mktemp("oasis-playground"),
        config={
            "preload": ["smollm2-135m-instruct"],
            "models": [m for m in images if m["id"] == TEXT_TO_IMAGE],
        },
        env={"OASIS_API_KEYS": KEY},
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def pg_client(pg_server: Server) -> Iterator[OpenAI]:
    with sdk_for(pg_server, KEY) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[Path]:
    """Where screenshots go; the path is printed when the module is done."""
    folder = tmp_path_factory.mktemp("playground-screenshots")
    yield folder
    names = ", ".join(sorted(p.name for p in folder.iterdir()))
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # shown even when output is captured
            reporter.write_line(f"\nplayground screenshots in {folder}: {names}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's chromium is not installed: run scripts/install.sh")
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(
            executable_path=executable,
            headless=True,
            # A microphone that plays a test tone, granted without a prompt.
            args=["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"],
        )
        yield chromium
        chromium.close()


class PageRecord:
    """What a page did besides drawing: the URLs it asked for and the script errors it hit."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.urls: list[str] = []
        self.errors: list[str] = []
        self.event_streams: list[str] = []
        page.on("request", lambda request: self.urls.append(request.url))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("response", self._response)

    def _response(self, response: Response) -> None:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            self.event_streams.append(response.url)


def open_playground(
    browser: Browser, server: Server, key: str, **context: Any
) -> Iterator[PageRecord]:
    """A tab on ``server``'s playground with ``key`` entered (``context``: more options of
    the browser context); closed when the generator is."""
    opened = browser.new_context(viewport={"width": 1280, "height": 860}, **context)
    record = PageRecord(opened.new_page())
    record.page.set_default_timeout(WAIT_MS)
    record.page.goto(f"{server.base_url}/")
    record.page.wait_for_selector("body[data-ready=true]")
    record.page.fill("#api-key", key)
    record.page.click("#save-key")
    record.page.wait_for_selector("#key-status.ok")
    yield record
    opened.close()


@pytest.fixture(scope="module")
def page(browser: Browser, pg_server: Server) -> Iterator[PageRecord]:
    """One tab on the playground with the key entered, shared by the module's tests."""
    yield from open_playground(browser, pg_server, KEY, permissions=["microphone"])


def shoot(page: Page, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def wait_until(page: Page, condition: str, seconds: float = 120) -> None:
    """Polls ``condition`` (a JS expression) from the test side: Playwright's own
    ``wait_for_function`` compiles it inside the page, which the page's policy forbids."""
    for _ in range(int(seconds * 5)):
        if page.evaluate(condition):
            return
        page.wait_for_timeout(200)
    raise AssertionError(f"still false after {seconds} s: {condition}")


def wait_turn_over(page: Page) -> None:
    """Waits until the Responses turn has ended (its Send button is enabled again) and
    checks that it ended without an error."""
    page.wait_for_selector("#responses-send button:enabled")
    assert page.text_content("#responses-status") == ""


def finished_item(page: Page, kind: str) -> ElementHandle:
    """Waits for the Responses log's done ``kind`` item (``function_call``, …) and for
    its turn to end without an error; the item."""
    item = page.wait_for_selector(f"#responses-log .item.{kind}.done")
    assert item is not None
    wait_turn_over(page)
    return item


def turn_response_id(page: Page, turn: int) -> str:
    """The response id in the footer of the Responses log's ``turn``-th turn (from 1)."""
    footer = page.text_content(f"#responses-log .turn:nth-child({turn}) > .meta") or ""
    return footer.split(" · ")[0]


def test_root_sends_to_the_page_and_api_routes_are_untouched(pg_server: Server) -> None:
    with httpx.Client(base_url=pg_server.base_url, timeout=30) as raw:
        root = raw.get("/")
        assert root.status_code == 307 and root.headers["location"] == "playground/"
        page = raw.get("/playground/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert '<script type="module" src="js/app.js">' in page.text
        script = raw.get("/playground/js/app.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        # The API still needs the key, and unknown API paths are still enveloped 404s.
        assert raw.get("/v1/models").status_code == 401
        missing = raw.get("/v1/no-such-route", headers={"Authorization": f"Bearer {KEY}"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_url"
        assert raw.get("/playground/no-such-file.js").status_code == 404
        assert raw.get("/health").json()["status"] == "ok"


def test_page_asks_for_a_key_and_keeps_it(browser: Browser, pg_server: Server) -> None:
    context = browser.new_context()
    try:
        record = PageRecord(context.new_page())
        page = record.page
        page.set_default_timeout(60_000)
        page.goto(f"{pg_server.base_url}/")
        assert page.url == f"{pg_server.base_url}/playground/"
        page.wait_for_selector("#key-status.error")
        assert page.text_content("#key-status") == "Enter an API key."
        page.fill("#api-key", "sk-wrong")
        page.click("#save-key")
        expect(page.locator("#key-status")).to_contain_text("401")
        page.fill("#api-key", KEY)
        page.click("#save-key")
        expect(page.locator("#key-status")).to_contain_text("models")
        ids = page.eval_on_selector_all("#model-ids option", "options => options.map(o => o.value)")
        assert "smollm2-135m-instruct" in ids and "gpt-4o-mini" in ids
        page.reload()
        page.wait_for_selector("#key-status.ok")
        assert page.input_value("#api-key") == KEY  # kept in localStorage
        assert record.errors == []
        # Offline: every file and call stayed on this server.
        assert record.urls and all(url.startswith(pg_server.base_url) for url in record.urls)
    finally:
        context.close()


# Records what the log shows while a turn runs: more than one distinct text means the answer
# was drawn piece by piece as the stream arrived, not once at the end; the states are those
# the item cards passed through (a hosted tool's "searching", say).
WATCH_TEXT = """selector => {
  window.seenTexts = new Set();
  window.seenStates = new Set();
  const log = document.querySelector(selector);
  new MutationObserver(() => {
    for (const node of log.querySelectorAll('.message.assistant .text, .item .live')) {
      if (node.textContent) window.seenTexts.add(node.textContent);
    }
    if (log.querySelector('.item.function_call:not(.done)')) window.sawLiveCall = true;
    for (const state of log.querySelectorAll('.item .state')) {
      window.seenStates.add(state.textContent);
    }
  }).observe(log, {subtree: true, childList: true, characterData: true});
}"""


def pick_tool(tab: Page, kind: str) -> list[dict[str, Any]]:
    """Empties the Responses form's tools, clicks the ``kind`` template button and returns
    the tools it wrote (the file_search button lists the stores before it writes)."""
    tools = "#responses-form textarea[name=tools]"
    tab.fill(tools, "")
    tab.click(f"button[data-tool={kind}]")
    expect(tab.locator(tools)).not_to_have_value("")
    written: list[dict[str, Any]] = json.loads(tab.input_value(tools))
    return written


def send_turn(tab: Page, prompt: str, *, tool_choice: str | None = None, **fields: object) -> None:
    """Sets the Responses form's ``tool_choice`` and input ``fields`` (by name), watches
    the log with :data:`WATCH_TEXT`, and sends ``prompt``."""
    if tool_choice is not None:
        tab.select_option("#responses-form select[name=tool_choice]", tool_choice)
    for name, value in fields.items():
        tab.fill(f"#responses-form input[name={name}]", str(value))
    tab.evaluate(WATCH_TEXT, "#responses-log")
    tab.fill("#responses-send textarea", prompt)
    tab.click("#responses-send button")


def test_chat_streams_its_answer_into_the_page(
    page: PageRecord, pg_client: OpenAI, shots: Path
) -> None:
    tab = page.page
    tab.click("nav button[data-view=chat]")
    tab.fill("#chat-form input[name=temperature]", "0")
    tab.fill("#chat-form input[name=max_completion_tokens]", "24")
    tab.fill("#chat-form input[name=seed]", "7")
    tab.evaluate(WATCH_TEXT, "#chat-log")
    prompt = "Name three colours."
    tab.fill("#chat-send textarea", prompt)
    tab.click("#chat-send button")
    tab.wait_for_selector("#chat-log .message.assistant .usage")
    answer = tab.text_content("#chat-log .message.assistant .text")
    assert tab.text_content("#chat-status") == ""
    assert any(url.endswith("/v1/chat/completions") for url in page.event_streams)
    assert len(tab.evaluate("[...window.seenTexts]")) > 1
    # The page put the streamed pieces together into what a plain request answers.
    same = pg_client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": prompt}],
        temperature=0,
        max_completion_tokens=24,
        seed=7,
    )
    assert answer == same.choices[0].message.content
    assert "tokens" in (tab.text_content("#chat-log .message.assistant .usage") or "")
    shoot(tab, shots, "chat")


def test_responses_turn_with_a_function_tool_shows_its_item(
    page: PageRecord, pg_client: OpenAI, shots: Path
) -> None:
    tab = page.page
    tab.click("nav button[data-view=responses]")
    tools = pick_tool(tab, "function")
    assert [tool["name"] for tool in tools] == ["get_weather"]
    send_turn(
        tab,
        "What is the weather in Paris?",
        tool_choice="function:get_weather",
        temperature=0,
        max_output_tokens=64,
    )
    call = finished_item(tab, "function_call")
    assert tab.evaluate("window.sawLiveCall === true")  # drawn before it was done
    shown = call.query_selector(".call")
    assert shown is not None
    name, _, arguments = (shown.text_content() or "").partition("(")
    assert name == "get_weather" and "city" in json.loads(arguments[:-1])
    response_id = turn_response_id(tab, 1)
    stored = pg_client.responses.retrieve(response_id)
    assert stored.output[0].type == "function_call" and stored.status == "completed"
    assert any(url.endswith("/v1/responses") for url in page.event_streams)

    # Its output goes back on the response that made the call; the model answers in text.
    tab.select_option("#responses-form select[name=tool_choice]", "none")
    tab.fill("#responses-log .item.function_call .reply input", '{"temp_c": 18}')
    tab.click("#responses-log .item.function_call .reply button")
    tab.wait_for_selector("#responses-log .turn:nth-child(2) .item.message.done")
    wait_turn_over(tab)
    second_id = turn_response_id(tab, 2)
    assert pg_client.responses.retrieve(second_id).previous_response_id == response_id
    shoot(tab, shots, "responses")

    # The Stored view opens what this page made.
    tab.click("nav button[data-view=stored]")
    tab.click(f"#stored-responses button:text-is('{second_id}')")
    tab.wait_for_selector("#stored-detail .item.function_call_output")
    assert tab.text_content("#stored-detail h2") == second_id
    shoot(tab, shots, "stored")


def test_uploaded_file_is_listed_and_deleted(
    page: PageRecord, pg_client: OpenAI, shots: Path
) -> None:
    tab = page.page
    tab.click("nav button[data-view=files]")
    tab.set_input_files(
        "#file-upload input[name=file]",
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"oasis notes"}],
    )
    tab.click("#file-upload button[type=submit]")
    row = tab.wait_for_selector("#files-table tbody tr:has(td:text-is('notes.txt'))")
    assert row is not None
    file_id = row.get_attribute("data-id")
    assert file_id and file_id in (tab.text_content("#files-status") or "")
    listed = pg_client.files.retrieve(file_id)
    assert listed.filename == "notes.txt" and listed.bytes == len(b"oasis notes")
    shoot(tab, shots, "files")
    row.query_selector("button.danger").click()  # type: ignore[union-attr]
    tab.wait_for_selector(f"#files-table tbody tr[data-id='{file_id}']", state="detached")
    assert file_id not in [f.id for f in pg_client.files.list()]


def test_file_search_over_a_vector_store_made_in_the_page(
    page: PageRecord, pg_client: OpenAI, shots: Path
) -> None:
    tab = page.page
    tab.click("nav button[data-view=files]")
    text = b"The lighthouse keeper's cat is called Biscuit and sleeps on the lamp room stairs."
    tab.set_input_files(
        "#file-upload input[name=file]",
        files=[{"name": "lighthouse.txt", "mimeType": "text/plain", "buffer": text}],
    )
    tab.select_option("#file-upload select[name=purpose]", "assistants")
    tab.click("#file-upload button[type=submit]")
    row = tab.wait_for_selector("#files-table tbody tr:has(td:text-is('lighthouse.txt'))")
    file_id = row.get_attribute("data-id") if row else None
    assert file_id

    tab.click("nav button[data-view=vector-stores]")
    tab.fill("#store-create input[name=name]", "library")
    tab.fill("#store-create input[name=file_ids]", file_id)
    tab.click("#store-create button[type=submit]")
    # The view looks again while the file is ingested.
    tab.wait_for_selector(f"#store-detail li:has-text('{file_id} · completed')")
    store_id = pg_client.vector_stores.list().data[0].id
    assert pg_client.vector_stores.retrieve(store_id).file_counts.completed == 1
    tab.fill("#store-detail input[placeholder='search these files']", "cat name")
    tab.click("#store-detail button:text-is('Search')")
    expect(tab.locator("#store-detail .hit").first).to_contain_text("Biscuit")
    shoot(tab, shots, "vector-stores")

    # A hosted tool: its item shows its progress as it streams, then what it found.
    tab.click("nav button[data-view=responses]")
    tab.click("#responses-clear")
    tools = pick_tool(tab, "file_search")
    assert tools == [{"type": "file_search", "vector_store_ids": [store_id]}]
    # One search, then the answer: after the forced call the choice is the model's, and the
    # tiny model may search again until its tokens run out, leaving no message to wait for.
    send_turn(
        tab,
        "What is the name of the lighthouse keeper's cat?",
        tool_choice="type:file_search",
        max_output_tokens=48,
        max_tool_calls=1,
    )
    found = tab.wait_for_selector("#responses-log .item.file_search_call.done")
    assert found is not None and "lighthouse.txt" in (found.text_content() or "")
    tab.wait_for_selector("#responses-log .item.message.done")
    wait_turn_over(tab)
    assert "searching" in tab.evaluate("[...window.seenStates]")
    shoot(tab, shots, "responses-file-search")


def test_speech_plays_and_audio_is_transcribed(
    page: PageRecord, pg_client: OpenAI, shots: Path
) -> None:
    tab = page.page
    tab.click("nav button[data-view=audio]")
    tab.fill("#speech-form textarea[name=input]", "Hello from the playground.")
    tab.click("#speech-form button[type=submit]")
    tab.wait_for_selector("#speech:not([hidden])")
    assert tab.text_content("#speech-status") == ""
    # The player holds real audio of the right length, not an error body.
    wait_until(tab, "document.querySelector('#speech').duration > 0.5")
    # A clip recorded from the (fake) microphone goes up in the browser's own format.
    tab.click("#record")
    tab.wait_for_timeout(1500)
    tab.click("#record")
    tab.wait_for_selector("#recording:not([hidden])")
    expect(tab.locator("#transcribe-status")).to_contain_text("Recorded")
    tab.click("#transcribe-form button[type=submit]")
    expect(tab.locator("#transcript")).not_to_be_empty(timeout=WAIT_MS)
    assert tab.text_content("#transcribe-status") == ""
    # Spoken words come back as text.
    speech = pg_client.audio.speech.create(
        model="tts-1", voice="alloy", input="The weather is sunny today.", response_format="wav"
    )
    tab.set_input_files(
        "#transcribe-form input[name=file]",
        files=[{"name": "sunny.wav", "mimeType": "audio/wav", "buffer": speech.content}],
    )
    tab.evaluate("document.querySelector('#transcript').textContent = ''")
    tab.click("#transcribe-form button[type=submit]")
    expect(tab.locator("#transcript")).to_contain_text("sunny", ignore_case=True, timeout=WAIT_MS)
    shoot(tab, shots, "audio")


def test_images_are_generated_and_shown(page: PageRecord, shots: Path) -> None:
    tab = page.page
    tab.click("nav button[data-view=images]")
    tab.fill("#image-form textarea[name=prompt]", "a lighthouse at dusk")
    tab.select_option("#image-form select[name=size]", "256x256")
    tab.fill("#image-form input[name=n]", "2")
    tab.click("#image-form button[type=submit]")
    tab.wait_for_selector("#image-results img")
    assert tab.text_content("#image-status") == ""
    wait_until(tab, "[...document.querySelectorAll('#image-results img')].every(i => i.complete)")
    sizes = tab.eval_on_selector_all(
        "#image-results img", "images => images.map(i => [i.naturalWidth, i.naturalHeight])"
    )
    assert sizes == [[256, 256], [256, 256]]
    shoot(tab, shots, "images")


def test_playground_can_be_turned_off(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "data", config={"playground": False, "preload": []})
    try:
        with httpx.Client(base_url=srv.base_url, timeout=30) as raw:
            assert raw.get("/").status_code == 404
            assert raw.get("/playground/").status_code == 404
            assert raw.get("/health").status_code == 200
    finally:
        srv.stop()
