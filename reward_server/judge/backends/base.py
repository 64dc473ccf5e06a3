"""The small interface every judge backend implements, and helpers the in-process ones share.

A backend runs a model; it knows nothing of verdicts or rewards. It offers two calls, both
on whole batches (the ``MicroBatcher`` in front of it has already formed them):

* ``generate(inputs, max_new_tokens)``: greedy (temperature 0) completions;
* ``next_token_probs(inputs, candidates)``: one prefill per input, no decoding; for each
  input the next-token probability mass on each candidate string (a token counts for a
  candidate when its text, stripped of whitespace, equals it: ``"7"`` and ``" 7"`` both
  count for ``"7"``).

Per-input outcomes that are not outputs come back in that input's slot, as one of two
kinds, because they mean opposite things for the sample:

* ``Failure``: the judge answered and the answer cannot be used, or it rejected this one
  input (a 4xx: a prompt over its context). The sample is ``invalid``.
* ``NoAnswer``: the judge did not answer this call (it timed out, the connection failed,
  it kept answering 5xx). That is the judge failing, not the sample: the request is a
  503 and the trainer retries it.

A backend that cannot serve at all raises ``ScorerUnavailable``. ``state`` says
``loading`` / ``loaded`` / ``unreachable`` / ``failed`` with a detail, for ``/ready``.
A backend reads only its ``JudgeConfig``, never the service's settings.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import io
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from reward_server.domain import Image
from reward_server.judge.config import JudgeConfig
from reward_server.judge.prompts import JudgeInput
from reward_server.redact import scrub

T = TypeVar("T")

LOADING, LOADED, UNREACHABLE, FAILED = "loading", "loaded", "unreachable", "failed"


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one input's answer is unusable; ``kind`` is the ``reward_judge_failures`` label."""

    reason: str
    kind: str = "backend_error"


@dataclass(frozen=True, slots=True)
class NoAnswer:
    """Why the judge gave no answer to one input (a judge failure: the request gets 503).

    ``kind`` is the ``reward_judge_failures`` label (``timeout``, ``connect``, ...).
    """

    reason: str
    kind: str = "timeout"


def local_fingerprint(model: str) -> dict[str, str]:
    """``{"weights": hash}`` of a local model directory's file names, sizes and modification
    times (no file is read); ``{}`` when ``model`` is not a directory."""
    root = Path(model)
    if not root.is_dir():
        return {}
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        stat = path.stat()
        h.update(f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return {"weights": h.hexdigest()[:16]}


def stall_bounds(timeout_s: float) -> tuple[float, float]:
    """The least and the most time a judge call or batch runs before it counts as stalled:
    1 s, and a quarter of the timeout (at most 30 s), so a healthy sample waits for hung
    calls a fraction of the time they take to time out."""
    ceiling = min(30.0, timeout_s / 4)
    return min(1.0, ceiling), ceiling


class JudgeBackend(ABC):
    """One way of running the judge model (``REWARD_JUDGE_BACKEND``).

    Attributes:
        name: the ``REWARD_JUDGE_BACKEND`` value.
        concurrency: batches the batcher may run at once against this backend.
        max_stalled_batches: batches that may give their slot back when they run far
            longer than usual (a remote judge's hung calls; ``reward_server.elastic``); 0
            for an in-process model, where another batch would only queue behind it.
        sees_images: whether the model takes images (known once loaded).
        score_prefix_space: whether a ``logprob`` prefix ends with a space before the
            number (``False`` when the tokenizer fuses a space into the digit token).
    """

    name: ClassVar[str] = "base"
    concurrency: int = 1
    max_stalled_batches: int = 0
    #: Strings never shown in a state's detail (an API key, a password).
    secrets: tuple[str, ...] = ()

    def __init__(self, config: JudgeConfig) -> None:
        self.config = config
        self.model = config.model
        self.sees_images = False
        self.score_prefix_space = True
        self.state = LOADING
        self.detail = "starting"
        self._fingerprint: dict[str, str] | None = None

    def set_state(self, state: str, detail: str) -> None:
        self.state, self.detail = state, scrub(detail, self.secrets)

    def served_identity(self) -> dict[str, str]:
        """What tells this judge's weights apart beyond the model's name (the engine's
        ``identity`` holds it): for a local directory, the names, sizes and modification
        times of its files, so a checkpoint written over the same path is a new judge; for
        a hub id, nothing (pin one with ``REWARD_JUDGE_REVISION``). Taken once: an
        in-process model is loaded once."""
        if self._fingerprint is None:
            self._fingerprint = local_fingerprint(self.model)
        return self._fingerprint

    @abstractmethod
    async def load(self) -> None:
        """Make the model servable (may take minutes); set ``state`` as it goes.

        Runs as a background task: the app serves while this loads. Raise on a load
        that cannot succeed (the engine records it as ``failed``).
        """

    @abstractmethod
    async def generate(
        self, inputs: Sequence[JudgeInput], max_new_tokens: int
    ) -> list[str | Failure | NoAnswer]:
        """Greedy completions, one per input (``Failure``/``NoAnswer`` where there is none)."""

    @abstractmethod
    async def next_token_probs(
        self, inputs: Sequence[JudgeInput], candidates: Sequence[str]
    ) -> list[dict[str, float] | Failure | NoAnswer]:
        """Per input (each ends in an ``assistant_prefix``), the probability of each candidate.

        The probabilities are of the full next-token distribution (not renormalised);
        the engine restricts and renormalises.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Free the model, connections and threads."""


class ThreadRunner:
    """One dedicated thread for a model: torch and vLLM calls never block the event loop.

    A single thread serialises the model's work (one GPU, one batch at a time) and keeps
    thread-affine state (CUDA contexts, vLLM's engine client) on one thread.
    """

    def __init__(self, name: str) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=name)

    async def run(self, fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        """Run ``fn(*args)`` on the model thread; ``TimeoutError`` after ``timeout`` s.

        A timed-out call keeps running on its thread (Python threads cannot be killed);
        later calls queue behind it.
        """
        future = asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        if timeout is None:
            return await future
        return await asyncio.wait_for(asyncio.shield(future), timeout)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def pil_image(image: Image) -> Any:
    """Decode an image to an RGB ``PIL.Image`` (pillow is imported here, lazily)."""
    from PIL import Image as PILImage

    with PILImage.open(io.BytesIO(image.data)) as img:
        return img.convert("RGB")


def fuses_space_with_digits(tokenizer: Any) -> bool:
    """Whether ``": 7"`` ends in a single ``" 7"`` token (GPT-2 style) rather than ``"7"``."""
    ids = tokenizer.encode('": 7', add_special_tokens=False)
    return tokenizer.decode(ids[-1:]) == " 7"


def candidate_token_ids(tokenizer: Any, candidates: Sequence[str]) -> dict[int, str]:
    """Every vocabulary id whose text, stripped of whitespace, is one of ``candidates``.

    Only pieces containing a digit are decoded, so a 150k vocabulary scans in well under
    a second.
    """
    wanted = set(candidates)
    digits = set("0123456789")
    size = len(tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(list(range(size)))
    found: dict[int, str] = {}
    for token_id, piece in enumerate(pieces):
        if piece is None or not digits.intersection(piece):
            continue
        text = tokenizer.decode([token_id]).strip()
        if text in wanted:
            found[token_id] = text
    return found
