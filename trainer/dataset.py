"""Training data for ``trainer.grpo``: SafeTag-VL-3K style rows turned into what TRL's
``GRPOTrainer`` expects.

A row has ``prompt`` (text, or chat messages), optional ``images`` (paths, relative to
``image_root``; or images already decoded by ``datasets``), and optional labels ``image_tag``,
``text_tag``, ``combine_tag`` (``safe``/``unsafe``). The output rows have:

- ``prompt``: conversational (``[{"role": "user", "content": ...}]``), with the thinking
  instruction appended to the last user turn;
- ``images``: a list of PIL images per row (``datasets.Image`` decodes them lazily), which TRL
  places in the prompt for a vision-language policy; dropped for a text-only policy;
- the label columns, lower-cased, which TRL passes to the reward function as keyword arguments.

Every problem is reported before the model is loaded, naming the row and column
(``DatasetError``): a missing ``prompt`` column, an empty dataset, an image that does not exist
or cannot be decoded, or, for the rule profiles, no ``combine_tag`` column at all. A label
that is not ``safe``/``unsafe`` only makes its row unscorable (one warning names the first),
as it does in the service and the clients: one bad cell must not stop a training run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reward_formats import TAG_KEYS, TAG_VALUES, LabelError, as_list, normalise_tag
from trainer.prompts import SAFETY_THINKING_INSTRUCTION, SAFETY_THINKING_INSTRUCTION_NO_IMAGE

log = logging.getLogger(__name__)

#: Profiles that cannot score a sample without ``labels.combine_tag``.
PROFILES_NEEDING_LABELS = frozenset({"safegrpo", "safegrpo_plus"})
LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
_IMAGE_PLACEHOLDER = re.compile(r"<image>\s*")


class DatasetError(ValueError):
    """The training data cannot be used as given; the message says where and why."""


@dataclass
class DataArguments:
    """Where the training data comes from and how prompts are built.

    Args:
        dataset_name: a local JSONL/JSON/Parquet/CSV file, a local directory ``datasets`` can
            load, or a Hugging Face hub id.
        dataset_config: hub dataset configuration name.
        dataset_split: split to train on (ignored for a single local file).
        image_root: directory relative image paths are resolved against (default: the
            dataset file's directory, or the directory itself).
        thinking_instruction: ``auto``, ``safegrpo``, ``think_answer`` or ``none``
            (see ``trainer.prompts.instruction_for``).
        max_samples: use only the first N rows (quick runs).
    """

    dataset_name: str | None = field(
        default=None,
        metadata={"help": "Training data: a local JSONL/JSON/Parquet/CSV file or directory, or a "
                  "Hugging Face hub dataset id. Columns: prompt, optional images (paths), "
                  "image_tag, text_tag, combine_tag."},
    )
    dataset_config: str | None = field(
        default=None, metadata={"help": "Hub dataset configuration name."}
    )
    dataset_split: str = field(
        default="train", metadata={"help": "Split to train on (ignored for a single file)."}
    )
    image_root: str | None = field(
        default=None,
        metadata={"help": "Directory that relative image paths are resolved against (default: "
                  "the dataset file's directory)."},
    )
    thinking_instruction: str = field(
        default="auto",
        metadata={
            "help": "Instruction appended to each prompt: 'safegrpo' (step-guided safety "
            "thinking with the three tags, what the rule profiles score), 'think_answer' "
            "(<think>/<answer> only), 'none', or 'auto' (think_answer for the safer_vlm "
            "profile, safegrpo otherwise).",
            "choices": ["auto", "safegrpo", "think_answer", "none"],
        },
    )
    max_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N rows (for quick runs)."}
    )


def load_raw(args: DataArguments):
    """Load the rows as a ``datasets.Dataset`` (no checks yet)."""
    import datasets

    if not args.dataset_name:
        raise DatasetError(
            "no training data: set dataset_name (a JSONL/Parquet file, a directory or a hub id), "
            "e.g. --dataset_name trainer/data/sample/train.jsonl"
        )
    path = Path(args.dataset_name).expanduser()
    if path.is_file():
        builder = LOCAL_FORMATS.get(path.suffix.lower())
        if builder is None:
            raise DatasetError(
                f"{path}: unknown file type {path.suffix!r}; expected one of {list(LOCAL_FORMATS)}"
            )
        return datasets.load_dataset(builder, data_files=str(path), split="train")
    if path.is_dir():
        return datasets.load_dataset(str(path), split=args.dataset_split)
    if path.suffix.lower() in LOCAL_FORMATS or path.is_absolute() or args.dataset_name[0] == ".":
        raise DatasetError(f"dataset file {path} does not exist")
    return datasets.load_dataset(
        args.dataset_name, name=args.dataset_config, split=args.dataset_split
    )


def default_image_root(args: DataArguments) -> Path | None:
    if args.image_root:
        return Path(args.image_root).expanduser().resolve()
    path = Path(args.dataset_name or "").expanduser()
    if path.is_file():
        return path.resolve().parent
    if path.is_dir():
        return path.resolve()
    return None


def resolve_image(ref: Any, root: Path | None, where: str) -> Any:
    """An absolute path (checked: exists and decodes) or an already decoded image."""
    if hasattr(ref, "save"):  # PIL image from a datasets.Image column
        return ref
    if isinstance(ref, Mapping) and (ref.get("bytes") or ref.get("path")):
        return ref  # datasets' undecoded {"bytes", "path"}
    if not isinstance(ref, str) or not ref.strip():
        raise DatasetError(f"{where}: expected an image path, got {ref!r:.80}")
    if ref.startswith(("http://", "https://", "data:")):
        raise DatasetError(
            f"{where}: {ref[:60]!r} is a URL; download the images and give local paths"
        )
    path = Path(ref).expanduser()
    if not path.is_absolute():
        if root is None:
            raise DatasetError(f"{where}: relative image path {ref!r} needs image_root")
        path = root / path
    if not path.is_file():
        raise DatasetError(f"{where}: image {ref!r} not found (looked at {path})")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.verify()
    except (OSError, UnidentifiedImageError) as exc:
        raise DatasetError(f"{where}: image {path} cannot be read: {exc}") from exc
    return str(path)


def _label(value: Any, key: str, where: str, bad: list[str]) -> str | None:
    """A label cell per the contract (``reward_formats.normalise_tag``): safe, unsafe, or
    ``None`` for an empty cell.

    A value that is neither (``"harmful"``) makes only its row unscorable, as the service
    and the clients treat it: the value is kept as given (so the reward function sees it,
    and the service's client reports that sample ``invalid`` with a null reward, which TRL
    leaves out) and noted in ``bad`` for one warning, rather than stopping the run.
    """
    try:
        return normalise_tag(value, key)
    except LabelError:
        bad.append(f"{where}: expected one of {list(TAG_VALUES)} (or empty), got {value!r}")
        return str(value)


def with_instruction(prompt: Any, instruction: str | None, where: str) -> list[dict[str, Any]]:
    """The prompt as chat messages, ``instruction`` appended to the last user turn's text.

    A ``<image>`` placeholder in the text is removed: TRL inserts the image parts itself.

    >>> with_instruction("<image>\\nWhat is this?", "Think first.", "row 0")
    [{'role': 'user', 'content': 'What is this?\\n\\nThink first.'}]
    """
    if isinstance(prompt, str):
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    elif isinstance(prompt, Sequence) and prompt and all(isinstance(m, Mapping) for m in prompt):
        messages = [dict(m) for m in prompt]
    else:
        raise DatasetError(f"{where}: prompt must be text or chat messages, got {prompt!r:.80}")
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    if not users:
        raise DatasetError(f"{where}: prompt has no user message")
    last = messages[users[-1]]
    content = last.get("content")
    if isinstance(content, str):
        text = _IMAGE_PLACEHOLDER.sub("", content).strip()
        if not text:
            raise DatasetError(f"{where}: prompt text is empty")
        last["content"] = f"{text}\n\n{instruction}" if instruction else text
    elif isinstance(content, list):
        parts = [dict(p) for p in content]
        if instruction:
            parts.append({"type": "text", "text": f"\n\n{instruction}"})
        last["content"] = parts
    else:
        raise DatasetError(f"{where}: user message content must be text or a list of parts")
    return messages


def prepare_dataset(
    ds,
    *,
    instruction: str | None,
    vision: bool,
    image_root: Path | None = None,
    profile: str | None = None,
    max_samples: int | None = None,
    name: str = "dataset",
):
    """Check the rows and shape them for ``GRPOTrainer`` (see the module docstring).

    Args:
        ds: a ``datasets.Dataset``.
        instruction: the thinking instruction, or ``None``. For SafeGRPO's, rows without an
            image (or a text-only policy) get the variant that says no image is given.
        vision: whether the policy sees images (a vision-language processor). If not, the
            ``images`` column is dropped with a warning.
        image_root: base of relative image paths.
        profile: the reward profile; the rule profiles require a ``combine_tag`` column.
        max_samples: keep only the first N rows.
        name: how to call the data in error messages.

    Returns:
        The prepared ``datasets.Dataset``.
    """
    import datasets

    if max_samples is not None:
        ds = ds.select(range(min(max_samples, len(ds))))
    if len(ds) == 0:
        raise DatasetError(f"{name} has no rows")
    columns = list(ds.column_names)
    if "prompt" not in columns:
        raise DatasetError(f"{name} has no 'prompt' column; columns: {columns}")
    if profile in PROFILES_NEEDING_LABELS and "combine_tag" not in columns:
        raise DatasetError(
            f"reward profile {profile!r} needs labels.combine_tag, but {name} has no "
            f"'combine_tag' column; columns: {columns}"
        )
    has_images = "images" in columns
    if not has_images and "image" in columns:  # single-image datasets
        ds = ds.rename_column("image", "images")
        has_images = True
    if has_images and not vision:
        log.warning("the policy is text-only: dropping the 'images' column (the policy and the "
                    "reward service see the text alone)")
        ds = ds.remove_columns("images")
        has_images = False

    bad_labels: list[str] = []

    def shape(row: dict[str, Any], idx: int) -> dict[str, Any]:
        where = f"{name} row {idx}"
        out: dict[str, Any] = {}
        images: list[Any] = []
        if has_images:
            refs = as_list(row.get("images"))
            images = [resolve_image(r, image_root, f"{where} images[{j}]")
                      for j, r in enumerate(refs)]
            out["images"] = images
        text = instruction
        if instruction == SAFETY_THINKING_INSTRUCTION and not images:
            text = SAFETY_THINKING_INSTRUCTION_NO_IMAGE
        out["prompt"] = with_instruction(row["prompt"], text, where)
        for col in TAG_KEYS:
            if col in row:
                out[col] = _label(row[col], col, f"{where} {col}", bad_labels)
        return out

    # No cache: the checks (images exist and decode) must run on every start.
    ds = ds.map(shape, with_indices=True, desc="checking rows", load_from_cache_file=False)
    if bad_labels:
        log.warning("%d label cells are neither safe nor unsafe: their rows are unscorable "
                    "(null rewards, left out by TRL); first: %s", len(bad_labels), bad_labels[0])
    missing_labels = sum(v is None for v in ds["combine_tag"]) if "combine_tag" in columns else 0
    if profile in PROFILES_NEEDING_LABELS and missing_labels:
        log.warning("%d of %d rows have no combine_tag: profile %s cannot score them, their "
                    "rewards are null and TRL leaves them out", missing_labels, len(ds), profile)
    if has_images:
        ds = ds.cast_column("images", datasets.List(datasets.Image()))
    return ds
