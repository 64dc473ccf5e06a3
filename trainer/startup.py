"""What ``python -m trainer.grpo`` checks before it imports TRL and torch.

Importing TRL, transformers and torch takes tens of seconds on a loaded machine, and loading
a model that is not there makes the Hub client retry for minutes. The mistakes a newcomer
makes first — a reward service that is not running, a wrong API key or profile, a model
directory not built yet — must be reported before all that, in the time an HTTP request
takes. So the command reads the few arguments these checks need straight from the command
line and the ``--config`` YAML (``early_arguments``, same precedence as ``TrlParser``: flag,
then YAML, then default), checks them with httpx and the standard library only
(``check_before_loading``), and only then builds the full parser.

Also here: ``RewardArguments`` (the service's arguments, shared with the full parser),
``preflight`` (one labelled sample scored through ``clients.RewardClient``),
``check_model_path`` and ``trl_warnings_once``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = [
    "RewardArguments",
    "check_before_loading",
    "check_model_path",
    "early_arguments",
    "preflight",
    "trl_warnings_once",
]

#: TRL warns on every ``is_vllm_available()`` call (five per start) when vLLM is outside its
#: tested range; the first one says it all.
TRL_VLLM_WARNING = "TRL currently supports vLLM versions"
_vllm_warning_shown = False

#: A Hugging Face Hub id: ``name`` or ``org/name`` (letters, digits, ``-``, ``_``, ``.``).
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


@dataclass
class RewardArguments:
    """Where rewards come from: the reward service.

    Args:
        reward_url: the service's base URL.
        reward_profile: reward profile (``safegrpo``, ``safegrpo_plus``, ``safer_vlm``,
            ``hybrid`` or one from ``REWARD_PROFILES_FILE``); the service's default when unset.
        reward_api_key: bearer key; default ``$REWARD_API_KEY`` (keeps it out of config files).
        reward_timeout_s: seconds per HTTP attempt.
        reward_preflight: score one sample before anything heavy is imported or loaded, so a
            wrong URL, key or profile fails at once rather than after the first generation.
        extra_reward_funcs: more reward functions after the service's (see
            ``trainer.reward_funcs``).
        unscored_drops_row: a row the service cannot score is unscorable for GRPO whatever
            the extra functions return.
    """

    reward_url: str = field(
        default="http://127.0.0.1:8000", metadata={"help": "Base URL of the reward service."}
    )
    reward_profile: str | None = field(
        default=None,
        metadata={"help": "Reward profile: safegrpo, safegrpo_plus, safer_vlm, hybrid, or one "
                  "from the service's REWARD_PROFILES_FILE. Default: the service's default."},
    )
    reward_api_key: str | None = field(
        default=None,
        metadata={"help": "API key of the service (Authorization: Bearer). Default: the "
                  "REWARD_API_KEY environment variable."},
    )
    reward_timeout_s: float = field(
        default=120.0, metadata={"help": "Timeout in seconds of each request to the service."}
    )
    reward_preflight: bool = field(
        default=True,
        metadata={"help": "Score one sample at start-up to check the URL, key and profile."},
    )
    extra_reward_funcs: list[str] = field(
        default_factory=list,
        metadata={"help": "More TRL reward functions after the service's, as "
                  "'package.module:function' (weights: GRPOConfig's reward_weights, the "
                  "service's first)."},
    )
    unscored_drops_row: bool = field(
        default=True,
        metadata={"help": "A completion the service cannot score gets zero advantage, whatever "
                  "the extra reward functions return (TRL alone drops it only when every "
                  "function returns None)."},
    )

    @property
    def api_key(self) -> str | None:
        return self.reward_api_key or os.environ.get("REWARD_API_KEY") or None

    @property
    def target(self) -> tuple[str, str | None, str | None]:
        """What a preflight checks: URL, profile and key."""
        return self.reward_url, self.reward_profile, self.api_key


@contextmanager
def trl_warnings_once() -> Iterator[None]:
    """Around TRL's imports: its vLLM-version warning is shown once per process.

    TRL warns from each of the modules that check vLLM (five per start, from different
    lines), and the ``"once"`` filter cannot help: CPython keeps its "once" record in the
    warning module's registry, so it means once per module. Inside this block warnings are
    collected; afterwards every one is shown as usual, except repeats of that warning.
    """
    global _vllm_warning_shown
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            yield
    finally:  # shown even when the imports fail
        for w in caught:
            if str(w.message).startswith(TRL_VLLM_WARNING):
                if _vllm_warning_shown:
                    continue
                _vllm_warning_shown = True
            warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)


def preflight(reward_args: RewardArguments) -> None:
    """Score one labelled sample; exit with a clear message when the service cannot be used
    (unreachable, wrong key, unknown profile). A 503 (judge still loading) only warns: the
    reward function retries on 503 during training."""
    from clients import RewardClient, RewardServiceError

    url, profile = reward_args.reward_url, reward_args.reward_profile
    sample = {"prompt": "preflight", "response": "<answer>ok</answer>",
              "labels": {"image_tag": "safe", "text_tag": "safe", "combine_tag": "safe"}}
    try:
        with RewardClient(url, api_key=reward_args.api_key, max_retries=1,
                          timeout=min(reward_args.reward_timeout_s, 30.0)) as client:
            client.score([sample], profile=profile)
    except RewardServiceError as exc:
        if exc.status == 503:
            log.warning("reward service at %s is not ready yet (%s); training will retry",
                        url, exc.message)
            return
        raise SystemExit(f"reward service at {url} refused the preflight request: {exc}") from exc
    except Exception as exc:
        raise SystemExit(
            f"reward service at {url} cannot be used: {exc}. Start it with "
            "`python -m reward_server --host 127.0.0.1 --port 8000` or set --reward_url."
        ) from exc


# --------------------------------------------------------------------------- the model


def _looks_local(name: str) -> bool:
    """A path, not a hub id: starts with ``.``, ``/`` or ``~``, or has a path separator and
    is not of the hub's ``org/name`` form (``./x``, ``/abs/x``, ``x/y/z``)."""
    if name.startswith((".", "/", "~")):
        return True
    separators = {os.sep, os.altsep} - {None}
    return any(s in name for s in separators) and not _HUB_ID.fullmatch(name)


def _build_hint(name: str, local: bool) -> str:
    build = f"`python -m trainer.tiny_model {name}`"
    if local:
        return (f"Build the tiny test model there with {build}, or set model_name_or_path to "
                "an existing directory or a Hugging Face Hub id.")
    return f"If it is meant to be a local directory (the tiny test model), build it: {build}."


def _in_hub_cache(name: str) -> bool:
    from huggingface_hub import constants

    return (Path(constants.HF_HUB_CACHE) / f"models--{name.replace('/', '--')}" / "snapshots"
            ).is_dir()


def check_model_path(name: str, hub_timeout_s: float = 10.0) -> None:
    """Exit at once, saying what to do, when ``name`` is neither a local directory nor a model
    the Hub can serve (instead of the Hub client retrying for minutes).

    - an existing path: fine;
    - a local-looking path (``./x``, ``/abs/x``, ``~/x``, ``x/y/z``) that does not exist:
      the directory is missing;
    - a hub id (``name`` or ``org/name``, which is also how ``runs/tiny-qwen2`` reads): fine
      when it is in the Hugging Face cache; otherwise one request asks the Hub whether the
      model exists. "Not found", no answer, or ``HF_HUB_OFFLINE`` exit; any other answer
      (it exists, it is gated, the Hub has a problem) is left to transformers.
    """
    if not name or Path(name).expanduser().exists():
        return
    if _looks_local(name) or not _HUB_ID.fullmatch(name):
        raise SystemExit(f"model_name_or_path: directory {name} does not exist. "
                         + _build_hint(name, local=True))
    if _in_hub_cache(name):
        return
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    where = f"model_name_or_path: {name} is not a local directory"
    if constants.HF_HUB_OFFLINE:
        raise SystemExit(f"{where}, and not in the Hugging Face cache (HF_HUB_OFFLINE is set). "
                         + _build_hint(name, local=False))
    try:
        HfApi().model_info(name, timeout=hub_timeout_s)
    except GatedRepoError:
        return
    except RepositoryNotFoundError:
        raise SystemExit(f"{where}, and the Hugging Face Hub has no model {name}. "
                         + _build_hint(name, local=False)) from None
    except HfHubHTTPError:
        return
    except Exception as exc:  # network errors: the download could not work either
        raise SystemExit(
            f"{where}, and the Hugging Face Hub ({constants.ENDPOINT}) cannot be reached to "
            f"download it: {exc}. " + _build_hint(name, local=False)
        ) from None


# --------------------------------------------------------------------------- before TRL


def _flags(name: str) -> list[str]:
    """The spellings ``TrlParser`` accepts for a field: ``--reward_url``, ``--reward-url``."""
    return sorted({f"--{name}", f"--{name.replace('_', '-')}"})


def _to_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"yes", "true", "t", "y", "1"}:
        return True
    if text in {"no", "false", "f", "n", "0"}:
        return False
    return None


def early_arguments(argv: Sequence[str]) -> tuple[RewardArguments, str | None]:
    """``RewardArguments`` and ``model_name_or_path`` from ``argv`` and its ``--config`` YAML,
    without TRL: a flag wins over the YAML, the YAML over the default (``TrlParser``'s order),
    and the YAML's ``env`` block supplies ``REWARD_API_KEY`` as ``TrlParser`` would set it.
    Values that do not parse are left at their default; the full parser reports them.
    """
    import yaml

    names = [f.name for f in dataclasses.fields(RewardArguments)]
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--config")
    for name in [*names, "model_name_or_path"]:
        parser.add_argument(*_flags(name), dest=name, nargs="?", const="true")
    given = vars(parser.parse_known_args(list(argv))[0])
    config: dict[str, Any] = {}
    if given["config"]:
        try:
            config = yaml.safe_load(Path(given["config"]).read_text()) or {}
        except (OSError, yaml.YAMLError):
            config = {}  # the full parser reports it
    values: dict[str, Any] = {}
    for f in dataclasses.fields(RewardArguments):
        raw = given[f.name] if given[f.name] is not None else config.get(f.name)
        if raw is None:
            continue
        if f.name == "reward_preflight":
            raw = _to_bool(raw)
        elif f.name == "reward_timeout_s":
            try:
                raw = float(raw)
            except (TypeError, ValueError):
                raw = None
        if raw is not None:
            values[f.name] = raw if f.name != "reward_url" else str(raw)
    env = config.get("env") if isinstance(config.get("env"), dict) else {}
    if not values.get("reward_api_key") and env.get("REWARD_API_KEY"):
        values["reward_api_key"] = str(env["REWARD_API_KEY"])
    model = given["model_name_or_path"] or config.get("model_name_or_path")
    return RewardArguments(**values), None if model is None else str(model)


def check_before_loading(argv: Sequence[str]) -> RewardArguments | None:
    """The start-up checks of ``python -m trainer.grpo``, before TRL and torch are imported:
    the model path, then the reward service (``preflight``). Exits with a clear message on
    the first problem.

    Returns:
        The ``RewardArguments`` whose preflight passed (``None`` when none was run), so the
        trainer need not ask again for the same URL, profile and key.
    """
    if "-h" in argv or "--help" in argv:
        return None
    reward_args, model = early_arguments(argv)
    if model:
        check_model_path(model)
    if not reward_args.reward_preflight:
        return None
    preflight(reward_args)
    return reward_args
