"""Object ids in OpenAI's spelling: a type prefix, then random hex.

Responses objects join with ``_`` (``resp_``, ``msg_``, ``fc_``, ``rs_``, ``fco_``,
``conv_``, ``call_``, ``req_``); the older Chat and Completions objects with ``-``
(``chatcmpl-``, ``cmpl-``). Ids only need to be unique; an id that is also a credential
(an image URL's name) is made where it is used, with more randomness.
"""

from __future__ import annotations

import secrets


def new_id(prefix: str, *, nbytes: int = 24, sep: str = "_") -> str:
    """``prefix`` + ``sep`` + ``2 * nbytes`` random hex digits."""
    return f"{prefix}{sep}{secrets.token_hex(nbytes)}"
