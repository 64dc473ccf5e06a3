"""The transformers judge's ``logprob`` prefills: each conversation once, its tails as a batch.

``logprob`` mode sends each sample's judge conversation a dozen times, each with another
short assistant prefix (``{"think_safety": ``). Prefilling the shared tokens once and the
short tails as one batch on copies of that KV cache gives the same next-token
distributions (each tail row sees exactly its own full sequence) for about a twelfth of the
compute, and a multimodal judge encodes the sample's pictures once instead of per prefill.

Positions are what a full forward pass of each prefill would use:

* a text-only judge (or a 1-D rope multimodal one): the tail continues at ``len(prefix)``;
* a judge with 3-D multimodal rope (Qwen2-VL / Qwen2.5-VL: the base model has
  ``get_rope_index``): the prefix gets the (temporal, height, width) ids of
  ``get_rope_index``, and since the tails are text after the last picture, a tail token at
  index ``i`` is at ``i + rope_delta`` on all three axes (``rope_delta`` being the position
  the pictures saved: ``max position + 1 - length``), exactly as in ``generate``'s decoding.

Prefills are grouped by their conversation (the rendered prompt without the assistant
prefix, plus the pictures' bytes: two samples with the same text and other pictures never
share a cache). A group that fails (a corrupt image, a picture the processor refuses, a
forward error) fails only its own prefills.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from reward_server.judge.backends.base import Failure
from reward_server.judge.prompts import JudgeInput

log = logging.getLogger(__name__)

#: Per-token processor outputs: sliced to the prefix, never repeated per tail.
PER_TOKEN = ("mm_token_type_ids", "token_type_ids")


@dataclass(slots=True)
class Conversation:
    """The prefills of one conversation: their positions in the call and full prompt texts."""

    indices: list[int]
    texts: list[str]
    first: JudgeInput


@dataclass(frozen=True, slots=True)
class Split:
    """A conversation tokenised for one shared prefill.

    Attributes:
        prefix: ``(1, P)`` ids shared by every prefill (pictures expanded), possibly empty.
        prefix_positions: their position ids, ``(1, P)`` or ``(3, 1, P)`` with 3-D rope.
        extra: what the prefix's forward pass also takes (``pixel_values``,
            ``image_grid_thw``, per-token modality ids sliced to the prefix).
        tails: each prefill's own ids after the prefix (at least one each).
        offset: position of a tail's first token (``P`` plus the 3-D rope delta).
        mrope: whether positions are 3-D.
    """

    prefix: Any
    prefix_positions: Any
    extra: dict[str, Any]
    tails: list[list[int]]
    offset: int
    mrope: bool


def common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """Length of the longest shared start that leaves every sequence at least one token.

    >>> common_prefix_length([[1, 2, 3], [1, 2, 4, 5]])
    2
    >>> common_prefix_length([[1, 2], [1, 2, 3]])
    1
    """
    first = sequences[0]
    common = min(len(s) for s in sequences) - 1
    for seq in sequences[1:]:
        n = 0
        while n < common and seq[n] == first[n]:
            n += 1
        common = n
    return max(common, 0)


class SharedPrefixPrefill:
    """Next-token logits of prefills that share a conversation, one prefix pass each.

    Args:
        model: the loaded causal LM or image-text-to-text model (eval mode).
        tokenizer: its tokenizer (``pad_token_id`` set).
        processor: its multimodal processor, or ``None`` for a text-only judge.
        device: where the tensors go.
    """

    def __init__(self, model: Any, tokenizer: Any, processor: Any, device: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.processor = processor
        self.device = device
        base = getattr(model, "model", None)
        self.rope_index: Callable[..., Any] | None = getattr(base, "get_rope_index", None)

    # --- grouping --------------------------------------------------------------------

    def group(
        self, inputs: Sequence[JudgeInput], prompt_text: Callable[[JudgeInput], str]
    ) -> tuple[list[Conversation], dict[int, Failure]]:
        """Prefills grouped by conversation; inputs that cannot be rendered fail alone."""
        groups: dict[tuple[str, tuple[bytes, ...]], Conversation] = {}
        failures: dict[int, Failure] = {}
        for i, item in enumerate(inputs):
            try:
                text = prompt_text(item)
            except Exception as exc:
                failures[i] = Failure(f"judge input error: {type(exc).__name__}: {exc}",
                                      "bad_input")
                continue
            base = text[: len(text) - len(item.assistant_prefix or "")]
            pictures = tuple(
                part["image"].data
                for message in item.messages
                for part in message["content"]
                if part["type"] == "image"
            ) if self.processor is not None else ()
            group = groups.setdefault((base, pictures), Conversation([], [], item))
            group.indices.append(i)
            group.texts.append(text)
        return list(groups.values()), failures

    # --- tokenising ------------------------------------------------------------------

    def split(self, texts: list[str], images: list[Any]) -> Split:
        """The shared prefix (with its pictures) and each prefill's tail, as token ids."""
        import torch

        if self.processor is None:
            ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
            common = common_prefix_length(ids)
            prefix = torch.tensor([ids[0][:common]], device=self.device)
            positions = torch.arange(common, device=self.device)[None]
            return Split(prefix, positions, {}, [s[common:] for s in ids], common, False)

        # the processor tokenises exactly as for a full pass: without images it leaves
        # one placeholder per picture, with them it expands each into its patch tokens
        plain = self.processor(text=texts)["input_ids"]
        common = common_prefix_length(plain)
        full = self.processor(text=texts[:1], images=images or None, return_tensors="pt")
        full_ids = full["input_ids"]
        start = common + full_ids.shape[1] - len(plain[0])  # the prefix, pictures expanded
        if full_ids[0, start:].tolist() != plain[0][common:]:
            raise ValueError("an image placeholder after the shared conversation")
        extra = {
            k: (v[:, :start] if k in PER_TOKEN else v)
            for k, v in full.items() if k not in ("input_ids", "attention_mask")
        }
        prefix = full_ids[:, :start]
        offset = start
        mrope = self.rope_index is not None
        if mrope and images:
            rope_args = {k: full[k] for k in ("mm_token_type_ids", "image_grid_thw") if k in full}
            positions, delta = self.rope_index(full_ids, **rope_args)
            positions = positions[:, :, :start]
            offset += int(delta.reshape(-1)[0])
        else:
            positions = torch.arange(start)[None]
            if mrope:
                positions = positions[None].expand(3, 1, -1)
        tails = [ids[common:] for ids in plain]
        return Split(
            prefix.to(self.device), positions.to(self.device),
            {k: v.to(self.device) for k, v in extra.items()}, tails, offset, mrope,
        )

    # --- forward ---------------------------------------------------------------------

    def last_logits(self, split: Split) -> Any:
        """``(len(tails), vocab)``: each prefill's next-token logits after its last token."""
        import torch

        rows, width = len(split.tails), max(len(t) for t in split.tails)
        common = split.prefix.shape[1]
        pad = self.tokenizer.pad_token_id
        tail_ids = torch.tensor(
            [t + [pad] * (width - len(t)) for t in split.tails], device=self.device
        )
        mask = torch.zeros((rows, common + width), dtype=torch.long, device=self.device)
        for row, t in enumerate(split.tails):
            mask[row, : common + len(t)] = 1
        positions = torch.arange(split.offset, split.offset + width, device=self.device)
        positions = positions.expand(rows, -1)
        if split.mrope:
            positions = positions[None].expand(3, -1, -1)
        with torch.inference_mode():
            cache = None
            if common > 0:
                cache = self.model(
                    input_ids=split.prefix, position_ids=split.prefix_positions,
                    use_cache=True, **split.extra,
                ).past_key_values
                cache.batch_repeat_interleave(rows)
            logits = self.model(
                input_ids=tail_ids,
                attention_mask=mask,
                position_ids=positions,
                past_key_values=cache,
                use_cache=cache is not None,
            ).logits
        last = torch.tensor([len(t) - 1 for t in split.tails], device=self.device)
        return logits[torch.arange(rows, device=self.device), last]

    def probs(
        self,
        inputs: Sequence[JudgeInput],
        prompt_text: Callable[[JudgeInput], str],
        images_of: Callable[[JudgeInput], list[Any]],
        masses_of: Callable[[Any], list[dict[str, float]]],
    ) -> list[dict[str, float] | Failure]:
        """Per input, ``masses_of`` its next-token logits; failures stay in their group."""
        out: list[Any] = [Failure("not run")] * len(inputs)
        groups, failures = self.group(inputs, prompt_text)
        for i, failure in failures.items():
            out[i] = failure
        for group in groups:
            try:
                images = images_of(group.first)
            except Exception as exc:
                for i in group.indices:
                    out[i] = Failure(f"judge input error: {type(exc).__name__}: {exc}",
                                     "bad_input")
                continue
            try:
                masses = masses_of(self.last_logits(self.split(group.texts, images)))
            except Exception as exc:
                log.exception("transformers judge shared-prefix prefill failed")
                masses = [Failure(f"judge model error: {type(exc).__name__}: {exc}")] * len(
                    group.indices
                )
            for i, mass in zip(group.indices, masses, strict=True):
                out[i] = mass
        return out
