"""Service configuration: every knob is a ``REWARD_*`` environment variable (or a ``.env`` line).

Names and defaults are the documented ones (docs/settings.md); this class is their single
home. Invalid combinations raise at start-up with the variable's name, so a misconfigured
deployment fails before it serves a single wrong reward. ``python -m reward_server`` also refuses a
``REWARD_*`` name that is no setting (``unknown_variables``: a typo would otherwise be
ignored) and prints errors one line each (``describe_errors``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

JudgeBackendName = Literal["none", "transformers", "vllm", "openai"]
JudgeMode = Literal["generate", "logprob"]


class Settings(BaseSettings):
    """All settings of the reward service (environment prefix ``REWARD_``)."""

    model_config = SettingsConfigDict(
        env_prefix="REWARD_", env_file=".env", extra="ignore", frozen=True
    )

    host: str = Field("127.0.0.1", description="Bind address.")
    port: int = Field(8000, ge=0, le=65535, description="Bind port.")
    profile: str | None = Field(
        None,
        description="Default profile; `hybrid` when a judge is configured, else `safegrpo_plus`.",
    )
    profiles_file: Path | None = Field(
        None, description="TOML file with extra or overriding profiles."
    )

    judge_backend: JudgeBackendName = Field("none", description="Judge backend.")
    judge_model: str | None = Field(None, description="Model path, hub id, or served name.")
    judge_base_url: str | None = Field(None, description="OpenAI-compatible base URL.")
    judge_api_key: str | None = Field(None, description="API key of the OpenAI-compatible judge.")
    judge_mode: JudgeMode = Field("generate", description="`generate` or `logprob`.")
    judge_max_batch: int = Field(64, ge=1, description="Largest judge micro-batch.")
    judge_max_wait_ms: float = Field(
        5, ge=0, description="How long a judge call waits for batch-mates."
    )
    judge_max_queue: int = Field(
        4096, ge=1, description="Bound on queued judge work; beyond it requests get 503."
    )
    judge_timeout_s: float = Field(120.0, gt=0, description="Per-call judge timeout.")
    judge_max_new_tokens: int = Field(384, ge=16, description="Judge answer length (generate).")
    judge_revision: str | None = Field(
        None,
        description="Your label of the judge's weights (a checkpoint step, a commit); part of "
        "the judge's identity: change it when the weights behind the same model name change.",
    )
    judge_device: str | None = Field(
        None, description="Device for in-process judges (`cpu`, `cuda`, `cuda:1`); auto if unset."
    )
    judge_boundary_secret: str | None = Field(
        None,
        repr=False,
        description="Secret for the injection boundary marker of the judge prompt (the same "
        "on every replica keeps one sample's prompt the same); random per process when unset.",
    )

    redis_url: str | None = Field(None, description="Redis URL; unset: in-process LRU.")
    cache_ttl_s: int = Field(604800, ge=1, description="Redis entry TTL in seconds.")
    cache_size: int = Field(100000, ge=0, description="In-process LRU entries (0 disables).")

    api_key: str | None = Field(None, description="Bearer key for /score and /get_reward.")
    max_samples: int = Field(1024, ge=1, description="Samples per request.")
    max_response_chars: int = Field(65536, ge=1, description="Characters per response.")
    max_image_bytes: int = Field(10485760, ge=1, description="Bytes per decoded image.")
    max_body_bytes: int | None = Field(
        None,
        ge=1024,
        description="Bytes per request body (413 beyond); unset: derived from the other "
        "limits (see body_limit).",
    )
    max_json_values: int | None = Field(
        None,
        ge=64,
        description="JSON objects, arrays, members and items outside strings per request body "
        "(413 beyond, counted before the body is decoded); unset: 256 per REWARD_MAX_SAMPLES "
        "plus 4096.",
    )
    image_root: Path | None = Field(
        None, description="When set, images may be file paths inside this directory."
    )
    max_images_per_sample: int = Field(16, ge=0, description="Images per sample.")
    max_request_image_bytes: int = Field(
        134217728, ge=1, description="Decoded image bytes per request, all samples together."
    )
    max_image_path_chars: int = Field(
        1024, ge=1, description="Characters per image file path (with REWARD_IMAGE_ROOT)."
    )
    max_query_chars: int = Field(
        1048576, ge=1, description="/get_reward: characters per query, checked before any work."
    )
    get_reward_invalid: float | None = Field(
        None,
        allow_inf_nan=False,
        description="/get_reward: the number given to unscorable samples (unset: null); "
        "OpenRLHF turns rewards into a tensor without a null check.",
    )
    get_reward_judge_retry_s: float = Field(
        150.0,
        ge=0,
        description="/get_reward: seconds a judge failure is retried inside the request "
        "before the 503 (OpenRLHF ignores Retry-After; 0: no retry).",
    )
    header_timeout_s: float = Field(
        10.0, gt=0, description="Seconds a client has to send a request's headers."
    )
    body_timeout_s: float = Field(
        60.0, gt=0, description="Seconds a client has to send a request's body after its headers."
    )
    idle_timeout_s: float = Field(
        5.0, gt=0, description="Seconds a connection may stay open without request bytes "
        "(before its first request, and between requests when kept alive); then it is closed."
    )
    max_connections: int = Field(
        1000, ge=1, description="Requests in flight; beyond it new requests get 503 at once "
        "(idle connections and /health, /ready are not counted or refused)."
    )
    log_level: str = Field("warning", description="Log level (JSON logs on stderr).")

    @field_validator("judge_model", "judge_base_url", "judge_api_key", "api_key", "redis_url",
                     "profile", "get_reward_invalid", "judge_boundary_secret", "max_body_bytes",
                     "judge_revision", "max_json_values", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # docker-compose passes `VAR=` for unset variables; treat that as "not configured".
        return None if isinstance(value, str) and value.strip() == "" else value

    @field_validator("profiles_file", "image_root", mode="before")
    @classmethod
    def _empty_path_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip() == "" else value

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        if self.judge_backend != "none" and not self.judge_model:
            raise ValueError(
                f"REWARD_JUDGE_MODEL must be set when REWARD_JUDGE_BACKEND={self.judge_backend}"
            )
        if self.judge_backend == "openai" and not self.judge_base_url:
            raise ValueError("REWARD_JUDGE_BASE_URL must be set when REWARD_JUDGE_BACKEND=openai")
        if self.profiles_file is not None and not self.profiles_file.is_file():
            raise ValueError(f"REWARD_PROFILES_FILE={self.profiles_file} is not a readable file")
        if self.image_root is not None and not self.image_root.is_dir():
            raise ValueError(f"REWARD_IMAGE_ROOT={self.image_root} is not a directory")
        return self

    @property
    def body_limit(self) -> int:
        """``REWARD_MAX_BODY_BYTES``, or what the other limits let a body carry: the request's
        images in base64, ``2 * REWARD_MAX_RESPONSE_CHARS`` bytes of text per sample (a prompt
        and a response as long, or a response of two-byte characters) and 1 MiB more.
        Lowering ``REWARD_MAX_SAMPLES`` lowers it too."""
        if self.max_body_bytes is not None:
            return self.max_body_bytes
        images = -(-self.max_request_image_bytes * 4 // 3)
        return images + self.max_samples * 2 * self.max_response_chars + 2**20

    @property
    def json_value_limit(self) -> int:
        """``REWARD_MAX_JSON_VALUES``, or 256 per sample plus 4096."""
        if self.max_json_values is not None:
            return self.max_json_values
        return 256 * self.max_samples + 4096

    @property
    def has_judge(self) -> bool:
        return self.judge_backend != "none"

    @property
    def default_profile(self) -> str:
        """The profile used when a request names none: hybrid with a judge, else safegrpo_plus."""
        if self.profile:
            return self.profile
        return "hybrid" if self.has_judge else "safegrpo_plus"


# --------------------------------------------------------------------------- start-up checks

#: The clients' and adapters' variables (``REWARD_SERVICE_URL``, ...): not settings of the
#: service, but often exported in the same shell.
CLIENT_PREFIX = "REWARD_SERVICE_"


def setting_names() -> list[str]:
    """Every setting's variable name (``REWARD_HOST``, ...), in declaration order."""
    return [f"REWARD_{name.upper()}" for name in Settings.model_fields]


def _env_files() -> list[Path]:
    files = Settings.model_config.get("env_file")
    if files is None:
        return []
    return [Path(f) for f in ([files] if isinstance(files, str | Path) else files)]


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One message per ``REWARD_*`` name in ``environ`` or the ``.env`` file that is no
    setting, with the closest valid name: pydantic-settings ignores such a name, so a typo
    (``REWARD_PROFLE``) would silently leave the default in place. ``REWARD_SERVICE_*`` (the
    clients' variables) are allowed.
    """
    from dotenv import dotenv_values

    valid = setting_names()
    sources = [("environment", sorted(environ))]
    sources += [(str(f), list(dotenv_values(f))) for f in _env_files() if f.is_file()]
    problems = []
    for where, names in sources:
        for name in names:
            upper = name.upper()
            if not upper.startswith("REWARD_") or upper in valid or upper.startswith(CLIENT_PREFIX):
                continue
            # compared without the common prefix, which would make any two names look alike
            close = difflib.get_close_matches(upper.removeprefix("REWARD_"),
                                              [v.removeprefix("REWARD_") for v in valid], n=1)
            hint = (f"did you mean REWARD_{close[0]}?" if close
                    else "`python -m reward_server --help` lists the settings")
            problems.append(f"unknown setting {name} (in the {where}); {hint}")
    return problems


def describe_errors(exc: ValidationError) -> list[str]:
    """One line per problem, without pydantic's boilerplate:
    ``REWARD_PORT: input should be a valid integer, got 'abc'``."""
    lines = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        if not error.get("loc"):  # a check across settings: its message names them
            lines.append(message)
            continue
        message = message[:1].lower() + message[1:]
        message = message.split(", unable to parse")[0]
        lines.append(f"REWARD_{str(error['loc'][0]).upper()}: {message}, "
                     f"got {error.get('input')!r}")
    return lines
