"""Tests of the Qwen2.5-VL paths. They run in the VL environment, ``.venv-vl/`` (torch 2.14.1 +
torchvision 0.29.1; ``bash scripts/vl_env.sh`` builds it), because Qwen-VL processors need
torchvision and no torchvision imports beside the main environment's CPU torch 2.13.

Every test under this directory gets the ``vl`` marker (``-m vl`` / ``-m "not vl"`` select
them) and, where torchvision is missing or broken, a skip that says how to get the environment,
so the main suite collects this directory cleanly. The marker is registered here rather than in
pyproject so the VL tests stay self-contained.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def vl_env_problem() -> str | None:
    """Why this interpreter cannot run the VL tests, or None when it can (the same check the
    builder makes: a real ``torchvision.ops.nms`` call, which a mismatched build fails)."""
    from trainer.tiny_model import require_torchvision

    try:
        require_torchvision()
    except ImportError as exc:
        cause = exc.__cause__ or exc
        return (
            "needs the VL environment (bash scripts/vl_env.sh, then .venv-vl/bin/python -m "
            f"pytest tests/vl): {type(cause).__name__}: {str(cause).strip()[:100]}"
        )
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "vl: Qwen2.5-VL tests; need .venv-vl (torch + torchvision, bash scripts/vl_env.sh)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark (and, outside the VL environment, skip) the tests under this directory only: a
    conftest's collection hook sees the whole session's items."""
    mine = [item for item in items if item.path.is_relative_to(HERE)]
    if not mine:
        return
    problem = vl_env_problem()
    for item in mine:
        item.add_marker(pytest.mark.vl)
        if problem:
            item.add_marker(pytest.mark.skip(reason=problem))


@pytest.fixture(scope="session")
def tiny_qwen2_5_vl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a random tiny Qwen2.5-VL with its processor, built by the command line
    entry point (``python -m trainer.tiny_model --arch qwen2.5-vl DIR``)."""
    from trainer.tiny_model import main

    return main(["--arch", "qwen2.5-vl", str(tmp_path_factory.mktemp("tiny-qwen2.5-vl"))])
