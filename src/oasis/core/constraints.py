"""Output constraints: what grammar a request needs, and following it token by token.

:func:`tool_call_grammar` and :func:`response_format_grammar` build the llguidance
grammars the generation core hands to an engine (as
:class:`~oasis.core.types.OutputConstraint`). :class:`ConstraintState` is what an engine
runs while sampling: it answers "may this token come next?" cheaply, masks the logits only
when the answer is no (so a model that already follows the grammar pays almost nothing),
and handles lazy constraints that switch on at a trigger such as ``<tool_call>``.
"""

from __future__ import annotations

import ctypes
import json
from typing import Any

import numpy as np
from llguidance import LLMatcher, LLTokenizer

from oasis.core.conversation import FunctionTool, InputFormat
from oasis.core.json_schema import check_schema, compile_lark, json_rule, lark_literal
from oasis.core.tool_calls import CALL_CLOSE, CALL_OPEN, FENCE_CLOSE, FENCE_OPEN
from oasis.core.types import OutputConstraint
from oasis.errors import InvalidRequestError

# Any JSON value except an object with a "name" key: fenced JSON that is not a call.
_NOT_A_CALL: dict[str, Any] = {
    "anyOf": [
        {"type": ["array", "string", "number", "boolean", "null"]},
        {"type": "object", "properties": {"name": False}, "additionalProperties": True},
    ]
}


def _call_body_rules(tools: tuple[FunctionTool, ...], params: list[str]) -> list[str]:
    """Lark rules for one call of any of ``tools``: ``fbody`` (a function call's JSON
    object; the caller closes the call) and ``cbody`` (a custom tool's name, raw input and
    closing tag; see :mod:`oasis.core.tool_calls`), each defined when such tools exist."""
    functions: list[str] = []
    customs: list[str] = []
    rules: list[str] = []
    for i, tool in enumerate(tools):
        if tool.custom is not None:
            head = json.dumps({"name": tool.name}, ensure_ascii=False) + "\n"
            rules.append(_input_rule(f"input_{i}", tool.custom, params[i]))
            customs.append(f"{lark_literal(head)} input_{i}")
            continue
        schema = tool.parameters or {"type": "object", "properties": {}}
        check_schema(schema, param=params[i], strict=tool.strict)
        head = '{"name": "' + tool.name + '", "arguments": '
        rules.append(f"args_{i}: {json_rule(schema, strict=tool.strict)}")
        functions.append(f"{lark_literal(head)} args_{i} {lark_literal('}')}")
    if customs:
        rules.insert(0, "cbody: " + " | ".join(customs))
    if functions:
        rules.insert(0, "fbody: " + " | ".join(functions))
    return rules


def _input_rule(name: str, custom: InputFormat, param: str) -> str:
    """The rule ``name``: a custom tool's raw input, then the call's closing tag."""
    close = "\n" + CALL_CLOSE
    if custom.syntax == "lark":
        check_grammar(custom, param)
        return f"{name}: %lark {{\n{custom.definition}\n}} {lark_literal(close)}"
    # Lazy: the input ends at the first closing tag (the regex's first full match).
    pattern = "(?s:.*)" if custom.syntax == "text" else f"(?:{_unanchored(custom.definition)})"
    if custom.syntax == "regex":
        check_grammar(custom, param)
    # The closing tag holds no regex metacharacters: it reads as itself.
    return f"{name}[lazy]: {regex_literal(pattern + close)}"


def check_grammar(custom: InputFormat, param: str) -> None:
    """A 400 naming ``param`` unless the decoder can enforce ``custom``'s grammar."""
    if custom.syntax == "text":
        return
    if not custom.definition.strip():
        raise InvalidRequestError("The grammar's definition is empty.", param=param)
    if custom.syntax == "lark":
        lark = custom.definition
    else:
        lark = f"start: {regex_literal(_unanchored(custom.definition))}"
    error = LLMatcher.validate_grammar(LLMatcher.grammar_from_lark(lark))
    if error:
        first = error.strip().splitlines()[0]
        raise InvalidRequestError(
            f"The {custom.syntax} grammar cannot be used for constrained decoding: {first}",
            param=param,
            code="invalid_grammar",
        )


def regex_literal(pattern: str) -> str:
    """``pattern`` as a Lark ``/regex/`` literal (its slashes and line breaks escaped)."""
    out: list[str] = []
    escaped = False
    for ch in pattern:
        if escaped:
            out.append(ch)
            escaped = False
        elif ch == "\\":
            out.append(ch)
            escaped = True
        else:
            out.append({"/": "\\/", "\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch, ch))
    return "/" + "".join(out) + "/"


def _unanchored(pattern: str) -> str:
    """A whole-input regex without its ``^`` and ``$``: the decoder matches whole inputs
    anyway, and an anchor before the closing tag would match nothing."""
    pattern = pattern.removeprefix("^")
    if pattern.endswith("$"):
        body = pattern[:-1]
        if (len(body) - len(body.rstrip("\\"))) % 2 == 0:  # not an escaped "$"
            pattern = body
    return pattern


def tool_call_grammar(
    tools: tuple[FunctionTool, ...],
    params: list[str],
    *,
    forced: bool,
    parallel: bool,
    text_schema: dict[str, Any] | None = None,
    text_strict: bool = True,
    text_param: str = "response_format",
) -> OutputConstraint:
    """The constraint for a turn with tools.

    ``forced`` (tool_choice required or a named function, ``tools`` then holding just the
    allowed ones): the output is exactly one call. Otherwise the constraint is lazy: text
    is free, and from each ``<tool_call>`` the model writes, the call must be well formed
    and its arguments valid.
    ``text_schema`` (a response format alongside auto tools): the output is either calls
    or JSON text matching it, constrained from the first token.
    """
    body = _call_body_rules(tools, params)
    has_functions = any(t.custom is None for t in tools)
    has_custom = any(t.custom is not None for t in tools)
    closed = lark_literal(chr(10) + CALL_CLOSE)
    ends = [f"fbody {closed}"] * has_functions + ["cbody"] * has_custom
    call = f"call: {lark_literal(CALL_OPEN + chr(10))} ({' | '.join(ends)})"
    if forced or text_schema is not None:
        # One call per forced turn: a tiny model allowed more repeats its call until the
        # token budget runs out and leaves a broken one at the end. Several calls in one
        # turn come from tool_choice "auto" with parallel_tool_calls.
        calls = "calls: call"
        start = "start: calls"
        if text_schema is not None and not forced:
            start += " | text_json"
            body.append(f"text_json: {json_rule(text_schema, strict=text_strict)}")
        lark = "\n".join([start, calls, call, *body])
        return OutputConstraint(compile_lark(lark, text_param if not forced else params[0]))
    # Lazy: the grammar covers what follows the trigger, up to the closing tag.
    newline = lark_literal(chr(10))
    tails = [f"fbody {newline}? {lark_literal(CALL_CLOSE)}"] * has_functions + [
        "cbody"
    ] * has_custom
    lark = "\n".join([f"start: {newline}? ({' | '.join(tails)})", *body])
    alternates: tuple[tuple[str, str], ...] = ()
    if has_functions:
        # Some models (Qwen2.5-Coder) write calls as a fenced JSON block instead. After a
        # ```json fence the output is a call, or JSON that cannot be mistaken for one (no
        # "name" key), then the closing fence.
        fence = "\n".join(
            [
                f"start: {newline}? (fbody | other) {lark_literal(chr(10) + FENCE_CLOSE)}",
                f"other: {json_rule(_NOT_A_CALL, strict=False)}",
                *body,
            ]
        )
        alternates = ((FENCE_OPEN, compile_lark(fence, params[0])),)
    return OutputConstraint(
        compile_lark(lark, params[0]),
        trigger=CALL_OPEN,
        end_after_match=not parallel,
        alternates=alternates,
    )


def harmony_call_grammar(
    headers: list[str], tools: list[FunctionTool], params: list[str]
) -> OutputConstraint:
    """Exactly one call of any of ``tools``, for a harmony model (gpt-oss), whose choice of
    tool is in the message header: each tool's header (Lark, from
    :func:`~oasis.core.harmony.header_lark`: the recipient, then ``<|message|>``), then
    its JSON arguments under its schema. For ``tool_choice`` ``required`` among several
    tools; the prompt ends with the part of the header they share."""
    calls: list[str] = []
    rules: list[str] = []
    for i, (header, tool, param) in enumerate(zip(headers, tools, params, strict=True)):
        schema = tool.parameters or {"type": "object", "properties": {}}
        check_schema(schema, param=param, strict=tool.strict)
        rules.append(f"args_{i}: {json_rule(schema, strict=tool.strict)}")
        calls.append(f"{header} args_{i}")
    lark = "\n".join([f"start: {' | '.join(calls)}", *rules])
    return OutputConstraint(compile_lark(lark, params[0]))


def response_format_grammar(
    schema: dict[str, Any] | None, *, strict: bool, param: str
) -> OutputConstraint:
    """The constraint for ``json_object`` (``schema`` None) or ``json_schema`` output."""
    if schema is None:
        schema = {"type": "object"}
    else:
        check_schema(schema, param=param, strict=strict)
    lark = f"start: {json_rule(schema, strict=strict)}"
    return OutputConstraint(compile_lark(lark, param))


def tokenizer_from_pieces(
    pieces: list[bytes], special: list[bool], eos_token: int, tokenize_fptr: int, vocab: Any
) -> LLTokenizer:
    """An llguidance tokenizer over a llama.cpp vocabulary.

    Unlike ``llguidance.llamacpp``, only control tokens are special: user-defined tokens
    such as Qwen's ``<tool_call>`` stay ordinary text, so a grammar literal
    ``"<tool_call>"`` can be written with the single token the model prefers.
    """
    tokens = [b"\xff" + p if s else p for p, s in zip(pieces, special, strict=True)]
    return LLTokenizer.from_llamacpp(  # type: ignore[attr-defined, no-any-return]
        tokens=tokens,
        vocab_ptr=vocab,
        tokenize_fptr=tokenize_fptr,
        eos_token=eos_token,
        slices=None,
    )


class ConstraintState:
    """One generation's progress through an :class:`OutputConstraint` (engine thread)."""

    def __init__(self, tokenizer: LLTokenizer, constraint: OutputConstraint, n_vocab: int):
        self._tokenizer = tokenizer
        self._constraint = constraint
        self._n_vocab = n_vocab
        self._mask = np.zeros(((n_vocab + 31) // 32,), dtype=np.int32)
        # Lazy grammars by trigger; the matchers are built when first needed.
        self._lazy: list[tuple[bytes, str]] = []
        if constraint.trigger:
            self._lazy.append((constraint.trigger.encode(), constraint.grammar))
        self._lazy.extend((t.encode(), g) for t, g in constraint.alternates)
        self._matchers: dict[str, LLMatcher] = {}
        self._matcher = self._matcher_for(constraint.grammar)
        self._since = bytearray()  # free text since the constraint last ended (lazy mode)
        self.active = not self._lazy
        self.masked_steps = 0  # how often the fast path failed (for benchmarks)
        self.steps = 0

    def _matcher_for(self, grammar: str) -> LLMatcher:
        matcher = self._matchers.get(grammar)
        if matcher is None:
            matcher = LLMatcher(self._tokenizer, grammar)
            self._matchers[grammar] = matcher
        else:
            matcher.reset()
        return matcher

    def allows(self, token: int) -> bool:
        """Whether ``token`` may come next (always true while a lazy constraint sleeps)."""
        if not self.active:
            return True
        return bool(self._matcher.validate_tokens([token]) == 1)

    def _allowed(self) -> Any:
        """One 0/1 entry per token of the vocabulary: may it come next."""
        self._matcher.unsafe_compute_mask_ptr(self._mask.ctypes.data, self._mask.nbytes)
        return np.unpackbits(self._mask.view(np.uint8), bitorder="little")[: self._n_vocab]

    def allowed_tokens(self) -> list[int]:
        """Every token that may come next (all of them while a lazy constraint sleeps)."""
        if not self.active:
            return list(range(self._n_vocab))
        return [int(t) for t in np.flatnonzero(self._allowed())]

    def mask_logits(self, logits_ptr: Any) -> None:
        """Set the logits of every token the grammar forbids to -inf, in place."""
        self.masked_steps += 1
        allowed = self._allowed()
        address = ctypes.cast(logits_ptr, ctypes.c_void_p).value
        logits = np.ctypeslib.as_array((ctypes.c_float * self._n_vocab).from_address(address or 0))
        logits[allowed == 0] = -np.inf

    def advance(self, token: int, piece: bytes) -> bool:
        """Record the sampled ``token``; True when the output is complete and must end."""
        self.steps += 1
        if self.active:
            self._matcher.consume_token(token)
            return self._after_step()
        self._since += piece
        found = [(self._since.find(t), t, g) for t, g in self._lazy]
        hits = [(at, t, g) for at, t, g in found if at >= 0]
        if not hits:
            return False
        at, trigger, grammar = min(hits, key=lambda hit: hit[0])
        rest = bytes(self._since[at + len(trigger) :])
        self._matcher = self._matcher_for(grammar)
        if rest and not self._matcher.consume_tokens(self._tokenizer.tokenize_bytes(rest)):
            self._since = bytearray()  # the model already left the grammar; let it be
            return False
        self.active = True
        return self._after_step()

    def _after_step(self) -> bool:
        matcher = self._matcher
        if matcher.is_error():
            self.active = False
            self._since = bytearray()
            return False
        if not (matcher.is_stopped() or (matcher.is_accepting() and self._nothing_but_eos())):
            return False
        if not self._lazy or self._constraint.end_after_match:
            return True
        self.active = False
        self._since = bytearray()
        return False

    def _nothing_but_eos(self) -> bool:
        # Accepting with at most end-of-sequence allowed next: the grammar is complete.
        if self._matcher.compute_ff_bytes():
            return False
        self._matcher.unsafe_compute_mask_ptr(self._mask.ctypes.data, self._mask.nbytes)
        return int(np.unpackbits(self._mask.view(np.uint8)).sum()) <= 1
