"""The request limits (``REWARD_MAX_*``), checked right after parsing and before any work.

The rule for the whole service: per-request work on the event loop is linear in the
request's size and bounded by a limit checked *before* the work. Everything here reads
lengths only (no decoding, no splitting, no file access), so a request that breaks a limit
costs no more than its parse. A broken limit is a 413 naming the setting.
"""

from __future__ import annotations

from reward_server.errors import PayloadTooLarge, Unprocessable
from reward_server.protocol import OpenRLHFRequest, ScoreRequest
from reward_server.settings import Settings

_DATA_URL_HEADER_CHARS = 256  # "data:image/png;base64," and any parameters fit in this


def decoded_size(ref: str) -> int:
    """The decoded size of a ``data:`` URL's base64 payload, from its length alone.

    File paths count 0 here (their size needs the file system); the exact total, files
    included, is held while decoding (``protocol.ImageBudget``).

    >>> decoded_size("data:image/png;base64," + "A" * 400), decoded_size("cat.png")
    (300, 0)
    """
    if ref[:5].lower() != "data:":
        return 0
    comma = ref.find(",", 0, _DATA_URL_HEADER_CHARS)
    return (len(ref) - comma - 1) * 3 // 4


def check_score_request(body: ScoreRequest, settings: Settings) -> bool:
    """Check ``POST /score``'s limits; return whether any sample carries an image.

    Raises:
        PayloadTooLarge: too many samples (``REWARD_MAX_SAMPLES``), a response too long
            (``REWARD_MAX_RESPONSE_CHARS``), too many images in a sample
            (``REWARD_MAX_IMAGES_PER_SAMPLE``), or the request's base64 images would decode
            to more than ``REWARD_MAX_REQUEST_IMAGE_BYTES``.
    """
    if len(body.samples) > settings.max_samples:
        raise PayloadTooLarge(
            f"samples: {len(body.samples)} samples, more than "
            f"REWARD_MAX_SAMPLES={settings.max_samples}"
        )
    max_chars = settings.max_response_chars
    max_images = settings.max_images_per_sample
    image_bytes = 0
    has_images = False
    for i, sample in enumerate(body.samples):
        if len(sample.response) > max_chars:
            raise PayloadTooLarge(
                f"samples[{i}].response: {len(sample.response)} characters, more than "
                f"REWARD_MAX_RESPONSE_CHARS={max_chars}"
            )
        if not sample.images and isinstance(sample.prompt, str):
            continue  # the common case: no image anywhere in this sample
        refs = sample.image_refs()
        if len(refs) > max_images:
            raise PayloadTooLarge(
                f"samples[{i}]: {len(refs)} images, more than "
                f"REWARD_MAX_IMAGES_PER_SAMPLE={max_images}"
            )
        image_bytes += sum(decoded_size(ref) for ref in refs)
        if image_bytes > settings.max_request_image_bytes:
            raise PayloadTooLarge(
                f"samples[{i}]: the request's images decode to more than "
                f"REWARD_MAX_REQUEST_IMAGE_BYTES={settings.max_request_image_bytes} bytes"
            )
        has_images = has_images or bool(refs)
    return has_images


def check_openrlhf_request(body: OpenRLHFRequest, settings: Settings) -> None:
    """Check ``POST /get_reward``'s limits, before any query is split.

    A query (and its prompt, which it contains) is bounded by ``REWARD_MAX_QUERY_CHARS``,
    not ``REWARD_MAX_RESPONSE_CHARS``: a vision-language query repeats its image
    placeholder thousands of times. A response over ``REWARD_MAX_RESPONSE_CHARS`` only
    makes its sample unscorable (``OpenRLHFRequest.to_samples``).

    Raises:
        PayloadTooLarge: too many queries (``REWARD_MAX_SAMPLES``) or a query or prompt
            longer than ``REWARD_MAX_QUERY_CHARS``.
        Unprocessable: ``prompts`` or ``labels`` do not have one item per query.
    """
    n = len(body.query)
    if n > settings.max_samples:
        raise PayloadTooLarge(
            f"query: {n} items, more than REWARD_MAX_SAMPLES={settings.max_samples}"
        )
    for name, column in (("prompts", body.prompts), ("labels", body.labels)):
        if column is not None and len(column) != n:
            raise Unprocessable(f"{name}: {len(column)} items but query has {n}")
    max_chars = settings.max_query_chars
    for name, texts in (("query", body.query), ("prompts", body.prompts or ())):
        for i, text in enumerate(texts):
            if len(text) > max_chars:
                raise PayloadTooLarge(
                    f"{name}[{i}]: {len(text)} characters, more than "
                    f"REWARD_MAX_QUERY_CHARS={max_chars}"
                )
