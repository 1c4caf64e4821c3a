"""Object ids in OpenAI's spelling (DIGEST §0.6)."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    """``resp_``, ``msg_``, ``fc_``, ``rs_``, ``fco_``, ``conv_`` … plus 48 hex digits."""
    return f"{prefix}_{secrets.token_hex(24)}"
