"""Policy sampling shared by ``trainer.curate`` and ``trainer.evaluate``.

One interface (``PolicySampler``), two engines, one loop:

* ``policy``: ``PolicyArguments`` (the ``--policy``/``--backend``/decoding flags) and
  ``make_sampler`` / ``open_sampler``;
* ``sampling``: ``SamplingConfig``, ``GenerationRequest``, ``seed_for`` and
  ``generate_all`` (chunked generation over a list of requests with a progress bar, the
  one loop curation and evaluation both use);
* ``messages``: chat messages for a prompt with its images, and the text-only fallback;
* ``hf``: :class:`TransformersSampler`, ``model.generate`` in process;
* ``vllm_engine``: :class:`VLLMSampler`, an in-process vLLM engine.

Determinism: every request carries its own seed (``seed_for`` derives it from the run seed
and the prompt's key), and sampling for one prompt never depends on which other prompts
share its batch. Re-running, resuming half-way or changing the batch size gives the same K
samples for a prompt with the same engine. Greedy decoding (``temperature == 0``) is
batched across prompts.

Images: a request's ``images`` (paths, ``data:`` URLs, ``{"bytes"/"path"}`` dicts, PIL
images) go to the model when it accepts images. A text-only policy gets the text alone
(one warning per sampler), so a tiny text model can stand in for a VLM in tests.
"""

from trainer.generation.hf import TransformersSampler
from trainer.generation.messages import build_messages, load_image, text_only
from trainer.generation.policy import BACKENDS, PolicyArguments, make_sampler, open_sampler
from trainer.generation.sampling import (
    GenerationRequest,
    PolicySampler,
    SamplingConfig,
    generate_all,
    seed_for,
)
from trainer.generation.vllm_engine import VLLMSampler

__all__ = [
    "BACKENDS",
    "GenerationRequest",
    "PolicyArguments",
    "PolicySampler",
    "SamplingConfig",
    "TransformersSampler",
    "VLLMSampler",
    "build_messages",
    "generate_all",
    "load_image",
    "make_sampler",
    "open_sampler",
    "seed_for",
    "text_only",
]
