"""The OpenAI chat-completions wire format, as the judge backends write and read it.

Pure functions, no I/O: the ``openai`` backend sends these messages over HTTP and the
in-process ``vllm`` backend hands the same messages to ``LLM.chat``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import httpx

from reward_formats.images import data_url
from reward_server.judge.prompts import JudgeInput


def normalise_base_url(url: str) -> str:
    """``http://h:8000`` and ``http://h:8000/v1/`` both become ``http://h:8000/v1``.

    >>> normalise_base_url("http://judge:8000/")
    'http://judge:8000/v1'
    >>> normalise_base_url("http://judge:8000/v1")
    'http://judge:8000/v1'
    """
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def to_openai_messages(judge_input: JudgeInput) -> list[dict[str, Any]]:
    """Chat messages in OpenAI form: image parts as data URLs, text-only content as a string."""
    messages: list[dict[str, Any]] = []
    for message in judge_input.messages:
        parts = message["content"]
        if all(p["type"] == "text" for p in parts):
            content: Any = "".join(p["text"] for p in parts)
        else:
            content = [
                {"type": "text", "text": p["text"]}
                if p["type"] == "text"
                else {
                    "type": "image_url",
                    "image_url": {"url": data_url(p["image"].data, p["image"].mime)},
                }
                for p in parts
            ]
        messages.append({"role": message["role"], "content": content})
    if judge_input.assistant_prefix is not None:
        messages.append({"role": "assistant", "content": judge_input.assistant_prefix})
    return messages


def top_logprob_mass(choice: dict[str, Any], candidates: Sequence[str]) -> dict[str, float] | None:
    """Probability per candidate from a choice's first-token ``top_logprobs``."""
    try:
        first = choice["logprobs"]["content"][0]
    except (KeyError, IndexError, TypeError):
        return None
    entries = first.get("top_logprobs") or [first]
    wanted = set(candidates)
    mass = dict.fromkeys(candidates, 0.0)
    seen: set[str] = set()
    for entry in entries:
        token, logprob = entry.get("token"), entry.get("logprob")
        if not isinstance(token, str) or not isinstance(logprob, int | float):
            continue
        text = token.strip()
        if text in wanted and token not in seen:
            seen.add(token)
            mass[text] += math.exp(logprob)
    return mass


def error_message(response: httpx.Response) -> str:
    """The server's own words from an error reply (OpenAI ``error.message`` or the text)."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data))
        if isinstance(err, dict):
            err = err.get("message", err)
        return str(err)[:300]
    return str(data)[:300]
