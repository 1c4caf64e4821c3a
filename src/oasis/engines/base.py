"""The small protocols every model runtime implements, one per capability.

An engine owns its runtime: it loads weights, runs model code off the event loop (a worker
thread or process), and translates the runtime's exceptions into :mod:`oasis.errors` at
its boundary. Nothing here knows about HTTP. The value types engines exchange with the
request side (``SamplingParams``, ``GeneratedToken``, …) live in :mod:`oasis.core.types`;
a chat model reaches the request side as a :class:`~oasis.core.backend.ChatBackend`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from oasis.core.types import GeneratedToken, SamplingParams
from oasis.models.specs import ModelSpec

if TYPE_CHECKING:  # numpy only for annotations: this module stays light to import
    import numpy as np
    from numpy.typing import NDArray


@runtime_checkable
class Engine(Protocol):
    """What every engine has, whatever its capability."""

    spec: ModelSpec

    async def close(self) -> None:
        """Release the runtime (threads, memory). Called once at shutdown."""


@runtime_checkable
class Queued(Protocol):
    """An engine with a queue in front of its runtime (for the metrics)."""

    @property
    def load(self) -> tuple[int, int]:
        """(requests waiting, sequences running) now."""
        ...


@runtime_checkable
class EmbeddingEngine(Engine, Protocol):
    """A text embedding model: token ids in, one vector per input out.

    Token ids are the model's own vocabulary. :meth:`tokenize` leaves special tokens out;
    :meth:`with_special_tokens` adds them, so text and client token arrays take one path.
    """

    dimensions: int  # length of every vector :meth:`embed` returns
    max_input_tokens: int  # longest input the model takes, special tokens included
    vocab_size: int  # valid token ids are ``0..vocab_size - 1``

    def tokenize(self, texts: list[str], limit: int | None = None) -> list[list[int]]:
        """Token ids for each text, without special tokens. Safe to call from any thread.

        With ``limit``, a text of more than ``limit`` tokens may come back cut short, with
        more than ``limit`` tokens still and those exactly its first ones: enough to
        refuse or truncate it without tokenizing megabytes.
        """

    def with_special_tokens(self, tokens: list[int]) -> list[int]:
        """``tokens`` wrapped in the markers the model expects around one input."""

    async def embed(self, batch: list[list[int]]) -> NDArray[np.float32]:
        """Vectors for a batch of inputs (from :meth:`with_special_tokens`), one row each.

        Batches for one model run one at a time, off the event loop.
        """


@runtime_checkable
class TextEngine(Engine, Protocol):
    """A causal language model: tokens in, sampled tokens out."""

    context_length: int
    chat_template: str | None
    bos_token: str
    eos_token: str
    # The most bytes of UTF-8 text one token can stand for, or None when the tokenizer
    # can drop text (normalization, stripping) so that no such bound holds. A text of N
    # bytes then has at least N / max_token_bytes tokens, known without tokenizing it.
    max_token_bytes: int | None

    def tokenize(self, text: str, *, add_bos: bool = False) -> list[int]:
        """Tokens for ``text``; special-token markup (``<|im_start|>``) is recognised."""

    def detokenize(self, tokens: list[int]) -> str:
        """Text for ``tokens``, special tokens left out."""

    def vocab_size(self) -> int:
        """Number of token ids (valid ids are ``0..vocab_size() - 1``)."""

    def generate(self, prompt: list[int], params: SamplingParams) -> AsyncIterator[GeneratedToken]:
        """Sample tokens after ``prompt`` until end-of-generation or ``max_tokens``.

        Closing the iterator early stops the runtime at its next token: that is how a
        stop sequence or a client that went away ends a generation. A full queue raises
        ``OverloadedError`` here; a wait past ``queue_timeout`` raises it from the
        iterator, before it yields anything.
        """

    def generate_many(
        self, runs: Sequence[tuple[list[int], SamplingParams]]
    ) -> list[AsyncIterator[GeneratedToken]]:
        """:meth:`generate` for each run, queued now and together (one request's choices):
        admitted as a whole or refused with ``OverloadedError`` here, before any runs.
        Only the first run's iterator can time out in the queue: once it has started, the
        rest follow it without being refused."""


@runtime_checkable
class MediaEngine(TextEngine, Protocol):
    """A text engine that may also read images (llama.cpp with a multimodal projector)."""

    supports_images: bool  # False when this model was loaded without a projector

    def tokenize_media(
        self, text: str, images: Sequence[bytes], params: Sequence[str]
    ) -> list[int]:
        """Tokens for ``text`` with ``images`` (encoded pictures, in order) where the
        media markers (:data:`oasis.core.conversation.IMAGE_MARKER`) are. The result is
        only for this engine's :meth:`generate`; a picture it cannot read is a 400
        naming its part (``params``, one per image)."""


@dataclass(frozen=True)
class ImageJob:
    """One image request for an :class:`ImageEngine`, already validated by the service.

    ``image`` and ``mask`` are Pillow images (typed ``Any`` so this module never imports
    Pillow): ``image`` is the RGB picture to edit, ``mask`` an ``L`` image of the same size
    where white marks what to repaint. No image: text to image. An image without a mask:
    the whole picture is reworked (image to image).
    """

    prompt: str
    width: int
    height: int
    n: int = 1
    quality: str = "medium"  # "low" | "medium" | "high": the engine maps it to steps
    seed: int | None = None  # None: the model's configured seed, else a fresh random one
    image: Any = None
    mask: Any = None
    partial_images: int = 0  # how many in-progress previews to send per image (0-3)


@dataclass(frozen=True)
class PartialImage:
    """An in-progress preview of output image ``index`` (Pillow image)."""

    index: int
    partial_index: int
    image: Any


@dataclass(frozen=True)
class FinishedImage:
    """Output image ``index`` (Pillow image, RGB, exactly the job's size)."""

    index: int
    image: Any


# What a client is told when it needs an image model and the server has none.
IMAGES_HINT = (
    "No image model is configured. Add a diffusers model to the config file, e.g. "
    '[[models]] id = "sd-turbo", kind = "images", path = "/models/sd-turbo", '
    'aliases = ["gpt-image-1"] (see the README, "Images").'
)


@runtime_checkable
class ImageEngine(Engine, Protocol):
    """A diffusion model: a prompt (and optionally a picture and mask) in, pictures out."""

    default_size: tuple[int, int]  # (width, height) the model was trained at
    size_multiple: int  # width and height must be multiples of this
    can_inpaint: bool  # False: a job with a ``mask`` is refused (checked before it runs)

    def count_tokens(self, text: str) -> int:
        """Prompt tokens as the model's text encoder counts them (for ``usage``)."""

    def generate(self, job: ImageJob) -> AsyncIterator[PartialImage | FinishedImage]:
        """Run ``job``: previews as they come, then one :class:`FinishedImage` per image.

        Jobs for one model run one at a time, in order. Closing the iterator early stops
        the runtime at its next denoising step.
        """


@dataclass(frozen=True)
class TranscriptionOptions:
    """How to transcribe, in OpenAI's terms, already validated by the service."""

    task: str = "transcribe"  # "transcribe" | "translate" (into English)
    language: str | None = None  # ISO-639-1; None: detect it
    prompt: str | None = None  # style or context hint in the audio's language
    temperature: float = 0.0  # 0: start greedy, raise the temperature on failures
    word_timestamps: bool = False


@dataclass(frozen=True)
class DetectedLanguage:
    """The first event of a transcription: the language the audio is decoded as."""

    language: str
    probability: float


@dataclass(frozen=True)
class TranscribedWord:
    word: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True)
class TranscribedSegment:
    """One decoded stretch of speech; times are seconds from the start of the audio given."""

    seek: int
    start: float
    end: float
    text: str
    tokens: tuple[int, ...]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: tuple[TranscribedWord, ...] = ()


@runtime_checkable
class SpeechToTextEngine(Engine, Protocol):
    """A speech recogniser: mono float32 audio at ``sample_rate`` in, text segments out."""

    sample_rate: int
    languages: frozenset[str]  # the language codes ``TranscriptionOptions.language`` takes

    def count_tokens(self, text: str) -> int:
        """Text tokens as the model's tokenizer counts them (for ``usage``)."""

    def transcribe(
        self, audio: Any, options: TranscriptionOptions
    ) -> AsyncIterator[DetectedLanguage | TranscribedSegment]:
        """Transcribe ``audio`` (a 1-D float32 numpy array, typed ``Any`` so this module
        never imports numpy): one :class:`DetectedLanguage`, then segments as decoded.

        Requests for one model run one at a time, in order. Closing the iterator early
        stops the runtime before its next segment.
        """


@dataclass(frozen=True)
class SynthesizedAudio:
    """One sentence of speech: float32 mono samples in [-1, 1] at the engine's rate."""

    samples: Any
    input_tokens: int  # what the model consumed for it (phonemes, for hibari)


@runtime_checkable
class TextToSpeechEngine(Engine, Protocol):
    """A speech synthesiser: text in, audio out sentence by sentence."""

    sample_rate: int
    voices: tuple[str, ...]  # local voice names that can be used now, default first
    speed_range: tuple[float, float]  # the speeds the model does natively

    def synthesize(self, text: str, *, voice: str, speed: float) -> AsyncIterator[SynthesizedAudio]:
        """Speak ``text`` with ``voice`` at ``speed`` (within ``speed_range``), yielding
        each sentence as soon as it is ready. Closing the iterator early stops the runtime
        before its next sentence.
        """


# --- Engines that answer whole requests ----------------------------------------------------
#
# A remote server (engine ``openai``) tokenizes, decodes audio and encodes speech itself:
# the protocols above (token ids in, samples out) do not fit it. These take a request's
# validated fields and give back what the server said; the service above stays the one
# path per endpoint, branching on which protocol the model's engine provides.


@runtime_checkable
class RelayedAnswer(Protocol):
    """An answer a server is sending, status already 2xx. Read it one way, then close it
    (closing early hangs up, so the server stops working on it)."""

    @property
    def content_type(self) -> str: ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives."""

    def events(self) -> AsyncIterator[dict[str, Any]]:
        """The JSON payload of each server-sent event, until ``[DONE]`` or the end."""

    async def read(self) -> bytes:
        """The whole body."""

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class EmbeddedInputs:
    """What an :class:`EmbeddingRelay` answered: one float32 row per input, and the tokens
    the server counted."""

    vectors: NDArray[np.float32]
    prompt_tokens: int


class TextTokens(Protocol):
    """Counts and cuts texts in some tokenizer's tokens. Safe to call from any thread."""

    name: str  # what counts, for logs

    def count(self, texts: list[str]) -> list[int]:
        """Each text's token count, without special tokens."""

    def cut(self, text: str, limit: int) -> str:
        """The longest prefix of ``text`` of at most ``limit`` tokens."""


@runtime_checkable
class EmbeddingRelay(Engine, Protocol):
    """An embeddings model behind a server that answers whole requests."""

    # The longest input to send, in ``tokens``' count; None leaves the limit to the server.
    max_input_tokens: int | None

    @property
    def tokens(self) -> TextTokens:
        """Counts and cuts texts in (an approximation of) the server's tokens, for chunking
        files; safe to use from any thread."""

    async def embed_inputs(
        self, inputs: list[str] | list[list[int]], dimensions: int | None
    ) -> EmbeddedInputs:
        """Vectors for ``inputs`` (texts, or token ids of the server's model), shortened to
        ``dimensions`` if given and the server does that."""


@dataclass(frozen=True)
class AudioFile:
    """An uploaded audio file, as bytes to send on."""

    data: bytes
    filename: str
    content_type: str = "application/octet-stream"


@runtime_checkable
class SpeechToTextRelay(Engine, Protocol):
    """A speech recogniser behind a server that answers whole requests."""

    async def transcribe_file(
        self, task: str, fields: dict[str, Any], audio: AudioFile
    ) -> RelayedAnswer:
        """Send ``audio`` with the request's ``fields`` (OpenAI's names, ``model`` left to
        the relay) for ``task`` (``"transcribe"`` or ``"translate"``)."""


@runtime_checkable
class TextToSpeechRelay(Engine, Protocol):
    """A speech synthesiser behind a server that answers whole requests."""

    async def speak(self, fields: dict[str, Any]) -> RelayedAnswer:
        """Ask for speech with the request's ``fields`` (OpenAI's names, ``model`` left to
        the relay); the answer is audio bytes, or events if ``stream_format`` is ``sse``."""
