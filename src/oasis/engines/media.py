"""Images for a local llama.cpp model, through its multimodal projector (libmtmd).

A model spec that names a projector (``mmproj = "path"``) loads it beside the model. Its
prompts are tokenized by mtmd: the rendered text, with llama.cpp's media marker where each
image sits (:data:`oasis.core.conversation.IMAGE_MARKER`), becomes text chunks and image
chunks. A prompt is still a list of ints (:class:`MediaPrompt`): each image chunk stands
there as one negative placeholder per KV position it takes, so positions, prefix reuse
and the scheduler's bookkeeping work as for text; the engine evaluates a run of
placeholders with :meth:`Projector.eval`, which encodes the image and writes its
embeddings into the sequence's KV cells.

Written against the mtmd API of llama-cpp-python 0.3.36 (as its ``MTMDChatHandler``
uses it). No published vision weights can be installed where oasis is tested; the path is
tested end to end with the packaged SmolLM2 and a tiny random-weight gemma3 projector
(``tests/tiny_mmproj.py``, ``tests/test_vision_mtmd.py``).
"""

from __future__ import annotations

import ctypes
import hashlib
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oasis.errors import InvalidRequestError, ModelUnavailableError, OasisError

_TAG_SPAN = 1 << 20  # placeholders of one image: -(1 + tag * _TAG_SPAN + position)


@dataclass(frozen=True)
class ImageRun:
    """One image chunk of a prompt: where its placeholders start and how many there are."""

    start: int
    length: int
    chunk: Any  # an ``mtmd_input_chunk *``, owned by the prompt's chunk list


class MediaPrompt(list[int]):
    """Prompt tokens in which images stand as placeholder runs (see the module docstring).

    The mtmd chunk list the runs point into is freed when the prompt is collected."""

    runs: tuple[ImageRun, ...] = ()

    def run_at(self, index: int) -> ImageRun | None:
        """The image run that covers position ``index``, if any."""
        return next((r for r in self.runs if r.start <= index < r.start + r.length), None)


def _placeholders(data: bytes, length: int) -> list[int]:
    tag = int.from_bytes(hashlib.sha256(data).digest()[:3], "big")
    return [-(1 + tag * _TAG_SPAN + i) for i in range(length)]


def _quiet_logs(mtmd: Any) -> None:
    """Send mtmd's and clip's logs (a dozen lines per image) where llama.cpp's go: through
    llama-cpp-python's callback, which the engine keeps to errors."""
    from llama_cpp._logger import llama_log_callback

    for name in ("mtmd_log_set", "mtmd_helper_log_set"):
        setter = getattr(mtmd._libmtmd, name)
        setter.argtypes = [type(llama_log_callback), ctypes.c_void_p]
        setter.restype = None
        setter(llama_log_callback, None)


class Projector:
    """The loaded projector of one model (an ``mtmd_context``)."""

    def __init__(self, path: Path, model: Any, threads: int) -> None:
        import llama_cpp.mtmd_cpp as mtmd

        self._mtmd = mtmd
        _quiet_logs(mtmd)
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = False
        params.print_timings = False
        params.n_threads = threads
        self._ctx = mtmd.mtmd_init_from_file(str(path).encode(), model, params)
        if not self._ctx:
            # The usual cause: a projector made for another model (its width differs);
            # llama.cpp's own error, on stderr, names it.
            raise ModelUnavailableError(
                f"llama.cpp could not load the projector {path}: it is not an mmproj GGUF, "
                "or it was made for another model (see the server log for llama.cpp's reason)."
            )
        if not mtmd.mtmd_support_vision(self._ctx):
            mtmd.mtmd_free(self._ctx)
            raise ModelUnavailableError(f"The projector {path} does not read images.")

    def tokenize(self, text: str, images: Sequence[bytes], params: Sequence[str]) -> MediaPrompt:
        """``text`` (markers where ``images`` go, in order) as a prompt; a picture mtmd
        cannot read is a 400 naming its part (``params[i]`` for ``images[i]``)."""
        mtmd = self._mtmd
        bitmaps = []
        try:
            for data, param in zip(images, params, strict=True):
                buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
                bitmap = mtmd.mtmd_helper_bitmap_init_from_buf(self._ctx, buf, len(data), False)
                if not bitmap:
                    raise InvalidRequestError(
                        f"The image of '{param}' could not be decoded: send a whole PNG, "
                        "JPEG, GIF or WebP picture.",
                        param=param,
                        code="invalid_image_format",
                    )
                bitmaps.append(bitmap)
            chunks = mtmd.mtmd_input_chunks_init()
            if not chunks:
                raise OasisError("mtmd could not allocate input chunks.")
            prompt = MediaPrompt()
            weakref.finalize(prompt, mtmd.mtmd_input_chunks_free, chunks)
            encoded = text.encode("utf-8")
            # The rendered template already holds the model's BOS: nothing is added.
            source = mtmd.mtmd_input_text(encoded, len(encoded), False, True)
            array = (mtmd.mtmd_bitmap_p_ctypes * len(bitmaps))(*bitmaps)
            status = mtmd.mtmd_tokenize(
                self._ctx, chunks, ctypes.byref(source), array, len(bitmaps)
            )
            if status != 0:
                # The core renders one marker per image (and drops any a client typed),
                # so only a chat template that leaves out or repeats a message gets here.
                where = params[0] if params else ""
                raise InvalidRequestError(
                    "The model's chat template did not place each image of the request "
                    f"once (mtmd status {status}).",
                    param=where.split(".")[0].split("[")[0] or None,
                )
            self._fill(prompt, chunks, images)
            return prompt
        finally:
            for bitmap in bitmaps:
                mtmd.mtmd_bitmap_free(bitmap)

    def _fill(self, prompt: MediaPrompt, chunks: Any, images: Sequence[bytes]) -> None:
        mtmd = self._mtmd
        runs: list[ImageRun] = []
        for i in range(mtmd.mtmd_input_chunks_size(chunks)):
            chunk = mtmd.mtmd_input_chunks_get(chunks, i)
            if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                count = ctypes.c_size_t(0)
                pointer = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
                prompt.extend(pointer[j] for j in range(count.value))
            else:
                length = int(mtmd.mtmd_input_chunk_get_n_pos(chunk))
                runs.append(ImageRun(len(prompt), length, chunk))
                prompt.extend(_placeholders(images[len(runs) - 1], length))
        prompt.runs = tuple(runs)

    def eval(self, lctx: Any, run: ImageRun, position: int, seq_id: int, n_batch: int) -> None:
        """(Scheduler thread.) Encode ``run``'s image and decode its embeddings into
        sequence ``seq_id`` at ``position``."""
        import llama_cpp

        after = llama_cpp.llama_pos(0)
        status = self._mtmd.mtmd_helper_eval_chunk_single(
            self._ctx, lctx, run.chunk, position, seq_id, n_batch, False, ctypes.byref(after)
        )
        if status != 0:
            raise OasisError(f"llama.cpp could not evaluate an image (mtmd status {status}).")
        if after.value != position + run.length:
            raise OasisError("an image took another number of positions than mtmd announced")

    def close(self) -> None:
        if self._ctx:
            self._mtmd.mtmd_free(self._ctx)
            self._ctx = None
