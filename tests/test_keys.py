"""Keys and projects in the database: isolation, sharing, revocation, expiry, admin keys."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from tests.server import Server, oasis_cli, sdk_for, start_server

CONFIG_KEY = "sk-config-file-key"


@dataclass
class Keys:
    server: Server
    alpha_one: str
    alpha_two: str
    beta: str
    admin: str


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    data = tmp_path_factory.mktemp("oasis-keys")
    oasis_cli(data, "projects", "create", "alpha")
    oasis_cli(data, "projects", "create", "beta")
    issued = Keys(
        server=None,  # type: ignore[arg-type]
        alpha_one=oasis_cli(data, "keys", "create", "--project", "alpha", "--name", "one"),
        alpha_two=oasis_cli(data, "keys", "create", "--project", "alpha", "--name", "two"),
        beta=oasis_cli(data, "keys", "create", "--project", "beta"),
        admin=oasis_cli(data, "keys", "create", "--admin"),
    )
    issued.server = start_server(
        data,
        config={"preload": ["smollm2-135m-instruct"]},
        env={"OASIS_API_KEYS": CONFIG_KEY},
    )
    yield issued
    issued.server.stop()


def test_keys_of_one_project_share_conversations_and_others_get_404(keys: Keys) -> None:
    with (
        sdk_for(keys.server, keys.alpha_one) as one,
        sdk_for(keys.server, keys.alpha_two) as two,
        sdk_for(keys.server, keys.beta) as beta,
        sdk_for(keys.server, CONFIG_KEY) as config_key,
    ):
        conversation = one.conversations.create(items=[{"role": "user", "content": "hi"}])
        assert two.conversations.retrieve(conversation.id).id == conversation.id
        items = two.conversations.items.list(conversation.id)
        assert [item.type for item in items.data] == ["message"]
        for outsider in (beta, config_key):
            with pytest.raises(openai.NotFoundError):
                outsider.conversations.retrieve(conversation.id)
            with pytest.raises(openai.NotFoundError):
                outsider.conversations.delete(conversation.id)
        two.conversations.delete(conversation.id)  # a sibling key may delete it too


def test_keys_of_one_project_share_responses_and_others_get_404(keys: Keys) -> None:
    with (
        sdk_for(keys.server, keys.alpha_one) as one,
        sdk_for(keys.server, keys.alpha_two) as two,
        sdk_for(keys.server, keys.beta) as beta,
    ):
        first = one.responses.create(
            model="smollm2-135m-instruct", input="Say hi.", max_output_tokens=16, store=True
        )
        assert two.responses.retrieve(first.id).id == first.id
        # A sibling key continues the chain: the previous response is the project's.
        follow = two.responses.create(
            model="smollm2-135m-instruct",
            input="Again.",
            previous_response_id=first.id,
            max_output_tokens=16,
        )
        assert follow.previous_response_id == first.id
        with pytest.raises(openai.NotFoundError):
            beta.responses.retrieve(first.id)
        with pytest.raises(openai.NotFoundError):
            beta.responses.input_items.list(first.id)
        # As OpenAI answers for a previous response it cannot find: 400 naming the param.
        with pytest.raises(openai.BadRequestError) as info:
            beta.responses.create(
                model="smollm2-135m-instruct",
                input="Steal.",
                previous_response_id=first.id,
                max_output_tokens=16,
            )
        assert info.value.param == "previous_response_id"


def test_missing_and_unknown_keys_are_401_once_keys_exist(keys: Keys) -> None:
    assert httpx.get(f"{keys.server.api_url}/models").status_code == 401
    wrong = httpx.get(
        f"{keys.server.api_url}/models", headers={"Authorization": "Bearer sk-oasis-made-up"}
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"


def test_config_file_keys_keep_working(keys: Keys) -> None:
    with sdk_for(keys.server, CONFIG_KEY) as sdk:
        assert any(m.id == "smollm2-135m-instruct" for m in sdk.models.list())


def _revoke(data: Path, name: str) -> None:
    listed = json.loads(oasis_cli(data, "keys", "list", "--json"))
    oasis_cli(data, "keys", "revoke", next(key["id"] for key in listed if key["name"] == name))


def test_revoked_key_is_401_once_the_key_cache_period_ends(keys: Keys) -> None:
    data = keys.server.data_dir
    secret = oasis_cli(data, "keys", "create", "--project", "alpha", "--name", "doomed")
    headers = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(f"{keys.server.api_url}/models", headers=headers).status_code == 200
    _revoke(data, "doomed")
    # The server trusts what it read of the key for key_cache_seconds (5 by default),
    # then reads it again. The deadline is generous: only "eventually 401" is asserted.
    deadline = time.monotonic() + 60
    refused = httpx.get(f"{keys.server.api_url}/models", headers=headers)
    while refused.status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.5)
        refused = httpx.get(f"{keys.server.api_url}/models", headers=headers)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]["message"]


def test_a_key_is_read_from_the_database_once_per_cache_period(tmp_path: Path) -> None:
    """With a long cache period a revoked key still works on a server that read it
    before (the price of one read per period, not per request); with 0, never."""
    data = tmp_path / "cached"
    oasis_cli(data, "projects", "create", "cached")
    long_secret = oasis_cli(data, "keys", "create", "--project", "cached", "--name", "long")
    none_secret = oasis_cli(data, "keys", "create", "--project", "cached", "--name", "none")
    long_lived = start_server(data, config={"preload": [], "key_cache_seconds": 300})
    uncached = start_server(data, config={"preload": [], "key_cache_seconds": 0})
    try:
        pairs = [(long_lived, long_secret), (uncached, none_secret)]
        for server, secret in pairs:
            headers = {"Authorization": f"Bearer {secret}"}
            assert httpx.get(f"{server.api_url}/models", headers=headers).status_code == 200
        _revoke(data, "long")
        _revoke(data, "none")
        codes = [
            httpx.get(
                f"{server.api_url}/models", headers={"Authorization": f"Bearer {secret}"}
            ).status_code
            for server, secret in pairs
        ]
        assert codes == [200, 401]
    finally:
        long_lived.stop()
        uncached.stop()


def test_expired_key_is_401(keys: Keys) -> None:
    secret = oasis_cli(
        keys.server.data_dir, "keys", "create", "--project", "beta", "--expires", "2s"
    )
    headers = {"Authorization": f"Bearer {secret}"}
    time.sleep(2.5)
    refused = httpx.get(f"{keys.server.api_url}/models", headers=headers)
    assert refused.status_code == 401
    assert "expired" in refused.json()["error"]["message"]


def test_admin_keys_read_usage_only(keys: Keys) -> None:
    admin = {"Authorization": f"Bearer {keys.admin}"}
    project = {"Authorization": f"Bearer {keys.alpha_one}"}
    usage = f"{keys.server.api_url}/organization/usage/completions?start_time=0"
    assert httpx.get(usage, headers=admin).status_code == 200
    denied = httpx.get(usage, headers=project)
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "admin_key_required"
    assert httpx.get(f"{keys.server.api_url}/models", headers=admin).status_code == 403


def test_secrets_are_stored_only_as_hashes(keys: Keys) -> None:
    stored = b"".join(path.read_bytes() for path in _database_files(keys.server.data_dir))
    for secret in (keys.alpha_one, keys.alpha_two, keys.beta, keys.admin):
        assert secret.encode() not in stored
        assert secret[9:].encode() not in stored  # nor its random part


def _database_files(data_dir: Path) -> list[Path]:
    return [p for p in data_dir.iterdir() if p.name.startswith("oasis.db")]
