"""The diffusers image engine: text to image, image to image and inpainting.

The configured directory (or hub snapshot) is loaded with ``DiffusionPipeline``; the
image-to-image and inpainting variants are derived from it with ``AutoPipeline*.from_pipe``,
which shares the weights, so one model serves generations and edits. A checkpoint trained
for inpainting (a 9-channel UNet) serves generations as "inpaint everything".

One worker thread per model runs jobs in order; previews and finished images cross back
to the event loop through an ``asyncio.Queue``. Model options (``[[models]].options``):

``steps``            denoising steps at medium quality (default 20; SD-Turbo: 1-4)
``quality_steps``    ``{low = .., medium = .., high = ..}`` overrides the step table
``guidance_scale``   classifier-free guidance (default: the pipeline's; turbo models: 0)
``strength``         how far an edit without a mask departs from the picture (0.75)
``seed``             a fixed base seed: the same request then gives the same pictures
``negative_prompt``  sent with every prompt
``device``, ``dtype``   default ``cuda``/``float16`` when a GPU is present, else ``cpu``/``float32``
``cpu_offload``      on a GPU, keep idle sub-models in RAM (less VRAM, slower)
``max_batch``        images denoised together (default 4)
``default_size``     ``"WxH"`` for ``size=auto`` (default: the UNet's native size)
"""

from __future__ import annotations

import copy
import logging
import math
import random
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from oasis.config import Settings
from oasis.engines.base import FinishedImage, ImageJob, PartialImage
from oasis.engines.worker import ModelWorker
from oasis.errors import InvalidRequestError, ModelUnavailableError
from oasis.models.assets import resolve_source
from oasis.models.specs import ModelSpec

log = logging.getLogger(__name__)


class _Cancelled(Exception):
    """Raised inside the denoising loop when the request went away."""


def _parse_size(value: str) -> tuple[int, int]:
    width, _, height = value.lower().partition("x")
    return int(width), int(height)


class DiffusersEngine:
    """An :class:`~oasis.engines.base.ImageEngine` over one diffusers pipeline."""

    def __init__(self, spec: ModelSpec, path: Path, settings: Settings) -> None:
        import torch
        from diffusers import (
            AutoPipelineForImage2Image,
            AutoPipelineForInpainting,
            DiffusionPipeline,
        )
        from diffusers.pipelines.auto_pipeline import AUTO_INPAINT_PIPELINES_MAPPING
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        # Loading bars would flood the server log; the manager logs the load instead.
        diffusers_logging.disable_progress_bar()
        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        self._torch = torch
        self.spec = spec
        options = spec.options
        has_gpu = torch.cuda.is_available()
        self._device = str(options.get("device", "cuda" if has_gpu else "cpu"))
        dtype_name = str(options.get("dtype", "float16" if self._device != "cpu" else "float32"))
        dtype = getattr(torch, dtype_name, None)
        if not isinstance(dtype, torch.dtype):
            raise ModelUnavailableError(
                f"`{spec.id}`: unknown dtype `{dtype_name}` in its options."
            )
        try:
            pipe = DiffusionPipeline.from_pretrained(str(path), dtype=dtype)  # type: ignore[no-untyped-call]
        except (OSError, ValueError, RuntimeError, TypeError) as exc:
            raise ModelUnavailableError(
                f"diffusers could not load `{spec.id}` from {path}: {exc}"
            ) from exc
        if options.get("cpu_offload") and self._device != "cpu":
            pipe.enable_model_cpu_offload()
        else:
            pipe.to(self._device)
        inpaint_classes = {cls.__name__ for cls in AUTO_INPAINT_PIPELINES_MAPPING.values()}
        self._native_inpainting = type(pipe).__name__ in inpaint_classes
        self._base = pipe
        self._img2img: Any = None
        self._inpaint: Any = pipe if self._native_inpainting else None
        if not self._native_inpainting:
            # Derived pipelines share the modules: no second copy of the weights.
            try:
                self._img2img = AutoPipelineForImage2Image.from_pipe(pipe)
            except (ValueError, KeyError) as exc:
                log.info("%s: no image-to-image variant (%s)", spec.id, exc)
            try:
                self._inpaint = AutoPipelineForInpainting.from_pipe(pipe)
            except (ValueError, KeyError) as exc:
                log.info("%s: no inpainting variant (%s)", spec.id, exc)
        self.can_inpaint = self._inpaint is not None
        tokenizer = getattr(pipe, "tokenizer", None) or getattr(pipe, "tokenizer_2", None)
        self._counter: Any = copy.deepcopy(tokenizer) if tokenizer is not None else None
        self._counter_lock = threading.Lock()
        for variant in (self._base, self._img2img, self._inpaint):
            if variant is not None:
                variant.set_progress_bar_config(disable=True)

        scale = int(getattr(pipe, "vae_scale_factor", 8) or 8)
        self.size_multiple = scale
        if "default_size" in options:
            self.default_size = _parse_size(str(options["default_size"]))
        else:
            native = getattr(getattr(pipe, "unet", None), "config", None)
            sample = getattr(native, "sample_size", None) or 64
            side = int(sample if isinstance(sample, int) else sample[0]) * scale
            self.default_size = (side, side)
        self._steps = self._step_table(options)
        self._guidance = options.get("guidance_scale")
        self._strength = float(options.get("strength", 0.75))
        self._seed = options.get("seed")
        self._negative = options.get("negative_prompt")
        self._max_batch = max(1, int(options.get("max_batch", 4)))
        self._worker: ModelWorker[PartialImage | FinishedImage] = ModelWorker(
            f"diffusers-{spec.id}", settings.max_queue
        )

    @staticmethod
    def _step_table(options: dict[str, Any]) -> dict[str, int]:
        steps = int(options.get("steps", 20))
        table = {"low": max(1, steps // 2), "medium": steps, "high": steps * 2}
        table.update({k: int(v) for k, v in dict(options.get("quality_steps", {})).items()})
        return table

    def count_tokens(self, text: str) -> int:
        """Prompt tokens by the pipeline's (first) tokenizer; words when it has none.

        Thread-safe, and callable while a job runs: it uses a copy of the tokenizer, since
        the pipeline sets truncation on its own (a fast tokenizer refuses concurrent use).
        """
        if self._counter is None:
            return len(text.split())
        with self._counter_lock:
            return len(self._counter(text, truncation=False)["input_ids"])

    def generate(self, job: ImageJob) -> AsyncIterator[PartialImage | FinishedImage]:
        """Queue ``job`` on the worker thread; see :class:`~oasis.engines.base.ImageEngine`."""
        if job.mask is not None and not self.can_inpaint:  # the service checks this first
            raise InvalidRequestError(
                f"The model `{self.spec.id}` cannot inpaint; send the edit without a mask.",
                param="mask",
            )

        def job_runner(
            emit: Callable[[PartialImage | FinishedImage], None], cancel: threading.Event
        ) -> None:
            self._job(job, emit, cancel)

        return self._worker.stream(job_runner)

    # --- worker thread -------------------------------------------------------------

    def _job(
        self,
        job: ImageJob,
        emit: Callable[[PartialImage | FinishedImage], None],
        cancel: threading.Event,
    ) -> None:
        try:
            start = 0
            while start < job.n and not cancel.is_set():
                count = min(self._max_batch, job.n - start)
                self._run_batch(job, start, count, emit, cancel)
                start += count
        except _Cancelled:
            pass  # the request went away; the worker reports the end by itself

    def _seeds(self, job: ImageJob, start: int, count: int) -> list[int]:
        base = job.seed if job.seed is not None else self._seed
        if base is None:
            return [random.getrandbits(63) for _ in range(count)]
        return [int(base) + start + i for i in range(count)]

    def _call_arguments(self, job: ImageJob) -> tuple[Any, dict[str, Any]]:
        """The pipeline variant for ``job`` and its keyword arguments."""
        from PIL import Image

        steps = self._steps.get(job.quality, self._steps["medium"])
        size = (job.width, job.height)
        kwargs: dict[str, Any] = {"prompt": job.prompt, "num_inference_steps": steps}
        if job.image is None and not self._native_inpainting:
            return self._base, {**kwargs, "width": job.width, "height": job.height}
        if job.mask is None and self._img2img is not None:
            return self._img2img, {
                **kwargs,
                "image": job.image.resize(size),
                "strength": self._strength,
                "num_inference_steps": self._enough_steps(steps, self._strength),
            }
        # Inpainting: a true mask, or "repaint everything" for an inpainting checkpoint.
        image = job.image if job.image is not None else Image.new("RGB", size, (127, 127, 127))
        mask = job.mask if job.mask is not None else Image.new("L", size, 255)
        strength = 1.0 if job.mask is not None or job.image is None else self._strength
        return self._inpaint, {
            **kwargs,
            "image": image.resize(size),
            "mask_image": mask.resize(size),
            "width": job.width,
            "height": job.height,
            "strength": strength,
            "num_inference_steps": self._enough_steps(steps, strength),
        }

    @staticmethod
    def _enough_steps(steps: int, strength: float) -> int:
        # img2img runs int(steps * strength) steps: never let that round down to none.
        return max(steps, math.ceil(1 / max(strength, 1e-3)))

    def _run_batch(
        self,
        job: ImageJob,
        start: int,
        count: int,
        emit: Callable[[PartialImage | FinishedImage], None],
        cancel: threading.Event,
    ) -> None:
        torch = self._torch
        pipe, kwargs = self._call_arguments(job)
        generators = [
            torch.Generator(device="cpu").manual_seed(s) for s in self._seeds(job, start, count)
        ]
        previews: set[int] = set()
        sent = 0

        def on_step_end(
            p: Any, step: int, timestep: Any, tensors: dict[str, Any]
        ) -> dict[str, Any]:
            nonlocal previews, sent
            if cancel.is_set():
                raise _Cancelled
            if job.partial_images and step == 0:
                previews = _preview_steps(int(p.num_timesteps), job.partial_images)
            if step in previews:
                for offset, frame in enumerate(self._decode_preview(p, tensors["latents"])):
                    emit(PartialImage(start + offset, sent, frame))
                sent += 1
            return tensors

        if self._negative is not None:
            kwargs["negative_prompt"] = self._negative
        if self._guidance is not None:
            kwargs["guidance_scale"] = float(self._guidance)
        with torch.inference_mode():
            result = pipe(
                **kwargs,
                num_images_per_prompt=count,
                generator=generators,
                output_type="pil",
                callback_on_step_end=on_step_end,
                callback_on_step_end_tensor_inputs=["latents"],
            )
        for offset, image in enumerate(result.images):
            emit(FinishedImage(start + offset, _finish(image, job)))

    def _decode_preview(self, pipe: Any, latents: Any) -> list[Any]:
        """Decode the current latents through the VAE; [] where that is not possible.

        Latents mid-way are noisier than the result: a preview is what the picture looks
        like at that step. Pipelines whose latents are not plain VAE latents (packed
        transformer latents) give no previews, nor does an fp16 VAE that overflows.
        """
        vae = getattr(pipe, "vae", None)
        if vae is None or latents.ndim != 4 or latents.shape[1] != vae.config.latent_channels:
            return []
        scaled = latents / vae.config.scaling_factor
        shift = getattr(vae.config, "shift_factor", None)
        if shift:
            scaled = scaled + shift
        decoded = vae.decode(scaled.to(vae.dtype), return_dict=False)[0]
        if self._torch.isnan(decoded).any():
            return []  # an fp16 VAE that needs upcasting (SDXL) overflows: no preview
        images: list[Any] = pipe.image_processor.postprocess(decoded, output_type="pil")
        return images

    @property
    def load(self) -> tuple[int, int]:
        """(requests waiting, sequences running) on this model's worker."""
        return self._worker.load

    async def close(self) -> None:
        await self._worker.close()


def _finish(image: Any, job: ImageJob) -> Any:
    """The job's exact size; with a mask, the picture's pixels outside it kept as they were.

    A VAE round trip shifts every pixel a little, and OpenAI's contract is that only the
    masked area changes, so the unmasked area is pasted back from the source.
    """
    from PIL import Image

    size = (job.width, job.height)
    image = image.convert("RGB")
    if image.size != size:
        image = image.resize(size)
    if job.image is not None and job.mask is not None:
        image = Image.composite(image, job.image.convert("RGB").resize(size), job.mask.resize(size))
    return image


def _preview_steps(total: int, wanted: int) -> set[int]:
    """Which of ``total`` steps (0-based, the last excluded) get a preview: evenly spread."""
    candidates = total - 1  # the last step's picture is the final image itself
    count = min(wanted, candidates)
    if count <= 0:
        return set()
    return {(j + 1) * candidates // (count + 1) for j in range(count)}


def create_engine(spec: ModelSpec, settings: Settings) -> DiffusersEngine:
    return DiffusersEngine(spec, resolve_source(spec, settings.data_dir), settings)
