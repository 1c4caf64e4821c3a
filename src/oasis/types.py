"""Type aliases every layer shares."""

from __future__ import annotations

from typing import Any

Item = dict[str, Any]
"""A Responses item (input, output or conversation item) as JSON, in its stored form.

It is checked against the SDK's item types once, where it enters: input items in
:mod:`oasis.responses.items`, output items as the builder emits their stream events."""
