"""Facts about the packaged chat model (SmolLM2-135M-Instruct) that tests rely on."""

from __future__ import annotations

# A logit_bias that keeps the model from ending by itself. Its end-of-generation tokens are
# <|endoftext|> (0), <|im_end|> (2) and <reponame> (4); banning only the first two once
# let a sampled run end early on the third.
NEVER_END = {"0": -100, "2": -100, "4": -100}

# The context the session server gives it: the default `context_length`, which is also the
# length it was trained on.
CONTEXT_LENGTH = 8192
# The most bytes one of its tokens covers (a newline and 80 spaces, read from its
# vocabulary with llama_cpp.llama_token_to_piece), so N bytes of text are at least N / 81
# tokens.
MAX_TOKEN_BYTES = 81
