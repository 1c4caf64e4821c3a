"""The ``openai-agents`` SDK runs an Agent with a function tool against oasis."""

from __future__ import annotations

import asyncio

import pytest
from agents import (
    Agent,
    ModelSettings,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from openai import AsyncOpenAI

from tests.responses_helpers import MODEL
from tests.server import Server

pytestmark = pytest.mark.slow


def test_agent_invokes_a_function_tool(server: Server) -> None:
    set_tracing_disabled(True)
    calls: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        calls.append(city)
        return f"It is sunny in {city}."

    async def run() -> str:
        client = AsyncOpenAI(
            base_url=server.api_url,
            api_key="sk-test",
            max_retries=0,
            _strict_response_validation=True,
        )
        try:
            agent = Agent(
                name="weather",
                instructions="Use the get_weather tool to answer.",
                model=OpenAIResponsesModel(model=MODEL, openai_client=client),
                model_settings=ModelSettings(tool_choice="required", temperature=0, max_tokens=64),
                tools=[get_weather],
                tool_use_behavior="stop_on_first_tool",
            )
            result = await Runner.run(agent, "What is the weather in Paris?", max_turns=3)
            return str(result.final_output)
        finally:
            await client.close()

    output = asyncio.run(run())
    assert calls, "the tool was never invoked"
    assert output == f"It is sunny in {calls[0]}."
