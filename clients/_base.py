"""Everything the sync and async clients share, with no I/O on the network.

Payload building, sample normalisation (local image paths and PIL images become data URLs),
chunking, the retry policy and response parsing live here. ``sync.py`` and ``aio.py`` only
hold the short send loops (httpx's ``BaseClient`` / ``Client`` / ``AsyncClient`` split).
Reading a local image file is the one kind of I/O done here: it happens before any request.
"""

from __future__ import annotations

import base64
import email.utils
import json
import math
import mimetypes
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from clients.errors import InvalidSampleError, RewardClientError, RewardServiceError
from reward_server.images import sniff_mime

__all__ = [
    "DEFAULT_URL",
    "BaseRewardClient",
    "Result",
    "RetryPolicy",
    "encode_image",
    "normalise_labels",
    "normalise_prompt",
    "normalise_sample",
    "response_text",
]

DEFAULT_URL = "http://127.0.0.1:8000"
SAMPLE_KEYS = frozenset({"id", "prompt", "images", "response", "labels"})
LABEL_KEYS = ("image_tag", "text_tag", "combine_tag")
_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})


# --------------------------------------------------------------------------- results


@dataclass(slots=True)
class Result:
    """One scored sample, as in the contract's ``results[i]``.

    ``reward`` is ``None`` exactly when ``status`` is not ``"ok"``; ``error`` then says why.
    ``profile`` and ``rubric_version`` come from the response envelope, so a result kept on
    its own (e.g. one line of the CLI's output) still says how it was scored.

    >>> r = Result.from_json({"id": "a", "status": "ok", "reward": 0.875,
    ...                       "components": {"format": 1.0}}, profile="safegrpo")
    >>> r.ok, r.reward, r.components["format"]
    (True, 0.875, 1.0)
    """

    id: str | int | None
    status: Literal["ok", "invalid"]
    reward: float | None
    components: dict[str, float] = field(default_factory=dict)
    penalties: dict[str, float] = field(default_factory=dict)
    judge: dict[str, Any] | None = None
    cached: bool = False
    error: str | None = None
    profile: str | None = None
    rubric_version: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any], profile: str | None = None, rubric_version: str | None = None
    ) -> Result:
        reward = data.get("reward")
        return cls(
            id=data.get("id"),
            status=data.get("status", "invalid"),
            reward=None if reward is None else float(reward),
            components=dict(data.get("components") or {}),
            penalties=dict(data.get("penalties") or {}),
            judge=data.get("judge"),
            cached=bool(data.get("cached", False)),
            error=data.get("error"),
            profile=data.get("profile", profile),
            rubric_version=data.get("rubric_version", rubric_version),
        )

    @classmethod
    def invalid(cls, id: str | int | None, error: str) -> Result:
        """A result made on the client side for a sample that could not be sent."""
        return cls(id=id, status="invalid", reward=None, error=error)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- images


def _data_url(data: bytes, mime: str | None = None) -> str:
    # the server's own sniffer: what it accepts is exactly what we label as an image
    mime = sniff_mime(data) or mime or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _is_pil(obj: Any) -> bool:
    return all(hasattr(obj, a) for a in ("save", "mode", "size")) and not isinstance(obj, str)


def _pil_to_png(image: Any) -> bytes:
    import io

    if image.mode not in ("1", "L", "LA", "I", "P", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.mode else "RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def encode_image(image: Any, base_dir: str | Path | None = None) -> str:
    """Turn one image reference into what the service accepts (a ``data:`` URL).

    Accepted: a ``data:`` URL (sent as is); a local file path (``str`` or ``Path``, relative
    ones resolved against ``base_dir``), read and inlined; raw ``bytes``; a PIL image (sent as
    PNG); a ``datasets`` image dict ``{"bytes": ..., "path": ...}``; an OpenAI-style
    ``{"url": ...}``. A string that is neither a data URL nor an existing file is sent
    unchanged: the service resolves it under ``REWARD_IMAGE_ROOT`` or marks only that sample
    invalid with the reason.

    Raises:
        InvalidSampleError: for a type that is none of the above, or an unreadable file.

    >>> encode_image(b"GIF89a...")[:22]
    'data:image/gif;base64,'
    """
    if isinstance(image, str):
        if image[:5].lower() == "data:" or "://" in image[:12]:
            return image
        path = Path(image)
    elif isinstance(image, Path):
        path = image
    elif isinstance(image, bytes | bytearray | memoryview):
        return _data_url(bytes(image))
    elif isinstance(image, Mapping):
        if image.get("bytes"):
            return _data_url(bytes(image["bytes"]))
        ref = image.get("path") or image.get("url") or (image.get("image_url") or {}).get("url")
        if not ref:
            raise InvalidSampleError(f"image dict without bytes, path or url: keys {sorted(image)}")
        return encode_image(ref, base_dir)
    elif _is_pil(image):
        return _data_url(_pil_to_png(image), "image/png")
    else:
        raise InvalidSampleError(
            f"cannot send an image of type {type(image).__name__}; expected a path, data URL, "
            "bytes or PIL image"
        )
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    if not path.is_file():
        return str(image)  # maybe a path under the server's REWARD_IMAGE_ROOT
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidSampleError(f"cannot read image {path}: {exc}") from exc
    return _data_url(data, mimetypes.guess_type(path.name)[0])


# --------------------------------------------------------------------------- prompts


def _part_image(part: Mapping[str, Any]) -> Any:
    """The inline payload of an ``{"type": "image", ...}`` part, or ``None`` for a placeholder."""
    for key in ("image", "url", "path", "image_url"):
        value = part.get(key)
        if value is not None:
            return value
    return None


def _normalise_part(part: Any, base_dir: str | Path | None) -> dict[str, Any]:
    if isinstance(part, str):
        return {"type": "text", "text": part}
    if not isinstance(part, Mapping):
        raise InvalidSampleError(f"content part must be an object, got {type(part).__name__}")
    kind = part.get("type")
    if kind == "text":
        return {"type": "text", "text": str(part.get("text", ""))}
    if kind == "image_url":
        ref = part.get("image_url")
        ref = ref.get("url") if isinstance(ref, Mapping) else ref
        return {"type": "image_url", "image_url": {"url": encode_image(ref, base_dir)}}
    if kind == "image":
        payload = _part_image(part)
        if payload is None:  # placeholder for the sample's next entry of ``images``
            return {"type": "image"}
        return {"type": "image_url", "image_url": {"url": encode_image(payload, base_dir)}}
    raise InvalidSampleError(
        f"content part type {kind!r} is not supported; expected one of "
        "['text', 'image_url', 'image']"
    )


def normalise_prompt(prompt: Any, base_dir: str | Path | None = None) -> str | list[dict]:
    """A prompt as the contract wants it: a string, or chat messages ``{role, content}``.

    Message content may be a string or parts; inline images (TRL's ``{"type": "image",
    "image": <PIL>}``, OpenAI ``image_url`` with a local path) become ``image_url`` parts
    with data URLs; bare ``{"type": "image"}`` placeholders stay and refer to ``images``.
    Keys other than ``role``/``content`` (``tool_calls``, ``name``) are dropped.
    """
    if isinstance(prompt, str):
        return prompt
    if prompt is None:
        return ""
    if not isinstance(prompt, Sequence):
        raise InvalidSampleError(f"prompt must be text or messages, got {type(prompt).__name__}")
    messages = []
    for i, msg in enumerate(prompt):
        if not isinstance(msg, Mapping) or "role" not in msg:
            raise InvalidSampleError(f"prompt[{i}] must be a message with role and content")
        if msg["role"] not in _ROLES:
            raise InvalidSampleError(
                f"prompt[{i}].role {msg['role']!r}; expected one of {sorted(_ROLES)}"
            )
        content = msg.get("content")
        if content is None:
            content = ""
        if not isinstance(content, str):
            try:
                content = [_normalise_part(p, base_dir) for p in content]
            except InvalidSampleError as exc:
                raise InvalidSampleError(f"prompt[{i}].content: {exc}") from exc
        messages.append({"role": msg["role"], "content": content})
    return messages


def response_text(completion: Any) -> str:
    """The text to score from a completion: a string, or chat messages (TRL conversational
    completions), in which case the assistant turns' text is joined."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        completion = [completion]
    texts = []
    for msg in completion or []:
        if not isinstance(msg, Mapping):
            raise InvalidSampleError(f"completion message must be an object, got {msg!r:.60}")
        if msg.get("role", "assistant") != "assistant":
            continue
        content = msg.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif content:
            texts.extend(
                p.get("text", "")
                for p in content
                if isinstance(p, Mapping) and p.get("type") == "text"
            )
    return "".join(texts)


def normalise_labels(labels: Any) -> dict[str, str] | None:
    """Labels as a dict of the non-empty SafeTag-VL tags, or ``None`` when there are none.

    Accepts a dict, a JSON string of one, or a bare ``"safe"``/``"unsafe"`` (taken as
    ``combine_tag``, as the service's ``/get_reward`` does).

    >>> normalise_labels('{"combine_tag": "unsafe", "text_tag": null}')
    {'combine_tag': 'unsafe'}
    >>> normalise_labels("SAFE")
    {'combine_tag': 'safe'}
    """
    if labels is None:
        return None
    if isinstance(labels, str):
        text = labels.strip()
        if not text:
            return None
        if text.lower() in ("safe", "unsafe"):
            return {"combine_tag": text.lower()}
        try:
            labels = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidSampleError(
                f"labels: not JSON and not safe/unsafe: {text[:60]!r}"
            ) from exc
    if not isinstance(labels, Mapping):
        raise InvalidSampleError(f"labels must be an object, got {type(labels).__name__}")
    out = {}
    for key in LABEL_KEYS:
        value = labels.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        out[key] = str(value)
    return out or None


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, str | bytes | Mapping) or _is_pil(value):
        return [value]
    if hasattr(value, "tolist") and not isinstance(value, list):  # numpy arrays from parquet
        value = value.tolist()
    return list(value)


def normalise_sample(sample: Mapping[str, Any], base_dir: str | Path | None = None) -> dict:
    """One contract sample, ready for JSON: images inlined, labels cleaned, no extra keys.

    Raises:
        InvalidSampleError: unknown keys (a misspelt ``respone`` must not go unnoticed), no
            ``response``, or an image that cannot be encoded.
    """
    if not isinstance(sample, Mapping):
        raise InvalidSampleError(f"a sample must be an object, got {type(sample).__name__}")
    extra = set(sample) - SAMPLE_KEYS
    if extra:
        raise InvalidSampleError(
            f"unknown field(s) {sorted(extra)}; expected a subset of {sorted(SAMPLE_KEYS)}"
        )
    if not isinstance(sample.get("response"), str):
        raise InvalidSampleError("response: a string is required")
    out: dict[str, Any] = {
        "prompt": normalise_prompt(sample.get("prompt"), base_dir),
        "response": sample["response"],
    }
    if sample.get("id") is not None:
        out["id"] = sample["id"]
    images = [encode_image(im, base_dir) for im in _as_list(sample.get("images"))]
    if images:
        out["images"] = images
    labels = normalise_labels(sample.get("labels"))
    if labels:
        out["labels"] = labels
    return out


# --------------------------------------------------------------------------- retries


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long to wait before sending a request again.

    Retried: connection errors, timeouts and 503 (the contract's "scorer unavailable"),
    never a 4xx. The wait is exponential backoff with jitter, ``backoff * 2**attempt`` capped
    at ``max_backoff`` and scaled by a random factor in [0.5, 1]; a ``Retry-After`` from the
    service replaces it (plus up to 10% jitter, so clients told the same number do not come
    back in lockstep), capped at ``max_retry_after``.

    Args:
        max_retries: retries after the first attempt (0 = one attempt only).
        backoff: first wait in seconds.
        max_backoff: cap of the exponential wait.
        max_retry_after: cap of a ``Retry-After`` wait.

    >>> p = RetryPolicy(max_retries=2, backoff=1.0)
    >>> from clients.errors import RewardServiceError
    >>> p.delay(0, RewardServiceError(422, "bad")) is None   # never retry a 4xx
    True
    >>> p.delay(0, RewardServiceError(503, "loading", retry_after=3)) >= 3
    True
    >>> p.delay(2, RewardServiceError(503, "loading")) is None  # retries used up
    True
    """

    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 120.0

    def delay(
        self, attempt: int, error: BaseException, rng: random.Random | None = None
    ) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``, or ``None`` to give up."""
        if attempt >= self.max_retries or not getattr(error, "retryable", False):
            return None
        rng = rng or random
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            wait = min(float(retry_after), self.max_retry_after)
            return wait + rng.uniform(0, 0.1 * wait)
        wait = min(self.max_backoff, self.backoff * 2**attempt)
        return wait * rng.uniform(0.5, 1.0)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; ``None`` if absent/garbled.

    >>> parse_retry_after("7")
    7.0
    >>> parse_retry_after("soon") is None
    True
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


# --------------------------------------------------------------------------- the client base


@dataclass(frozen=True, slots=True)
class Chunk:
    """One request's worth of samples: where they sit in the caller's list, and the body."""

    start: int
    payload: dict[str, Any]

    @property
    def size(self) -> int:
        return len(self.payload["samples"])


class BaseRewardClient:
    """Configuration and the pure parts of a client (no network I/O).

    Args:
        url: the service's base URL (``/score`` is appended), e.g. ``http://127.0.0.1:8000``.
        api_key: sent as ``Authorization: Bearer <key>`` (the service's ``REWARD_API_KEY``).
        timeout: seconds for each HTTP attempt (connect, read, write, pool).
        max_retries: retries on connection errors, timeouts and 503; never on 4xx.
        chunk_size: samples per request; a larger batch is split (keep it at or below the
            service's ``REWARD_MAX_SAMPLES``, 1024 by default).
        max_concurrency: chunks in flight at once for one ``score`` call.
        profile: default profile for ``score`` (the service's default when ``None``).
        backoff / max_backoff: exponential backoff parameters, see ``RetryPolicy``.
        transport: an httpx transport (the test seam; e.g. ``httpx.MockTransport``).
        headers: extra HTTP headers.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        chunk_size: int = 256,
        max_concurrency: int = 4,
        profile: str | None = None,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        transport: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.chunk_size = chunk_size
        self.max_concurrency = max_concurrency
        self.profile = profile
        self.retry = RetryPolicy(max_retries=max_retries, backoff=backoff, max_backoff=max_backoff)
        self.transport = transport
        self.headers = {"Accept": "application/json", **(headers or {})}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self._rng = random.Random()

    @property
    def score_url(self) -> str:
        return f"{self.url}/score"

    def _limits(self) -> httpx.Limits:
        return httpx.Limits(
            max_connections=max(self.max_concurrency, 4),
            max_keepalive_connections=max(self.max_concurrency, 4),
        )

    def _client_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "timeout": httpx.Timeout(self.timeout),
            "headers": self.headers,
            "limits": self._limits(),
        }
        if self.transport is not None:
            kwargs["transport"] = self.transport
        return kwargs

    def _build_chunks(
        self, samples: Iterable[Mapping[str, Any]], profile: str | None, base_dir: Any = None
    ) -> tuple[int, list[Chunk]]:
        """Normalise every sample (errors name the sample's index) and cut into chunks."""
        wire = []
        for i, sample in enumerate(samples):
            try:
                wire.append(normalise_sample(sample, base_dir))
            except InvalidSampleError as exc:
                raise InvalidSampleError(f"samples[{i}]: {exc}") from exc
        profile = profile if profile is not None else self.profile
        chunks = []
        for start in range(0, len(wire), self.chunk_size):
            payload: dict[str, Any] = {"samples": wire[start : start + self.chunk_size]}
            if profile is not None:
                payload["profile"] = profile
            chunks.append(Chunk(start, payload))
        return len(wire), chunks

    def _parse(self, response: httpx.Response, chunk: Chunk) -> list[Result]:
        """Results of one chunk, or the service's error raised as ``RewardServiceError``."""
        if response.status_code != 200:
            raise self._service_error(response)
        try:
            body = response.json()
            profile, version = body.get("profile"), body.get("rubric_version")
            results = [Result.from_json(r, profile, version) for r in body["results"]]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RewardServiceError(
                200, f"response does not follow the contract: {exc}", self.score_url
            ) from exc
        if len(results) != chunk.size:
            raise RewardServiceError(
                200, f"sent {chunk.size} samples, got {len(results)} results", self.score_url
            )
        return results

    def _service_error(self, response: httpx.Response) -> RewardServiceError:
        try:
            body = response.json()
            message = body.get("error") if isinstance(body, dict) else None
            message = message or response.text[:500]
        except ValueError:
            message = response.text[:500] or response.reason_phrase
        return RewardServiceError(
            response.status_code,
            str(message),
            str(response.request.url) if response.request else self.score_url,
            parse_retry_after(response.headers.get("retry-after")),
        )

    def _retry_delay(self, attempt: int, error: RewardClientError) -> float | None:
        return self.retry.delay(attempt, error, self._rng)

    @staticmethod
    def _assemble(n: int, chunks: list[Chunk], parts: list[list[Result]]) -> list[Result]:
        out: list[Result | None] = [None] * n
        for chunk, results in zip(chunks, parts, strict=True):
            out[chunk.start : chunk.start + chunk.size] = results
        assert all(r is not None for r in out)
        return out  # type: ignore[return-value]


def mean(values: Iterable[float]) -> float:
    """Mean of the finite values, NaN when there are none."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return sum(vals) / len(vals) if vals else math.nan


def component_means(results: Iterable[Result]) -> dict[str, float]:
    """Each component's mean over the ``ok`` results (components are absent otherwise)."""
    sums: dict[str, list[float]] = {}
    for r in results:
        if r.ok:
            for name, value in r.components.items():
                sums.setdefault(name, []).append(value)
    return {name: mean(vals) for name, vals in sorted(sums.items())}
