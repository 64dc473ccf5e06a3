from __future__ import annotations

import pytest

from tests.fakes.servers import RewardServer
from tests.wire_check import record_scoring_answers, scoring_answers_match_openapi  # noqa: F401


@pytest.fixture(scope="session")
def rules_server():
    """The service on embedded defaults (rules profiles, in-process cache)."""
    with RewardServer() as server:
        yield server


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory):
    """Directory of a random tiny Qwen2 + trained BPE tokenizer + chat template."""
    pytest.importorskip("torch")
    from trainer.tiny_model import build_tiny_qwen2

    return build_tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture(scope="session")
def redis_server():
    """A real redis-server on a free loopback port for the session."""
    from tests.fakes.servers import RedisServer

    server = RedisServer()
    yield server
    server.stop()
