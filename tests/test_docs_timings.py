"""How long the tiny runs take is said once, with what it was measured on. The figures live in
docs/training.md's "How long it takes"; the README, the configs and the env script link to it.
"""

from __future__ import annotations

import re

from tests.fakes.servers import ROOT

#: A duration: "11 s", "20 s", "70–140 s", "about a minute", "3 minutes".
DURATION = re.compile(r"\b\d+(?:[–-]\d+)? ?s\b|\bminutes?\b")
TRAINING = ROOT / "docs" / "training.md"


def section(text: str, heading: str) -> str:
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def test_the_figures_have_one_home():
    page = TRAINING.read_text()
    assert page.count("## How long it takes") == 1
    home = section(page, "## How long it takes")
    assert "load average" in home and "2 CPU cores" in home  # what it was measured on
    for command in ("make vl-env", "configs/tiny-cpu.yaml", "configs/tiny-vl-cpu.yaml"):
        assert command in home, command
    # before it, the tiny runs' sections carry no figure of their own
    before = page.split("## How long it takes", 1)[0]
    assert not DURATION.findall(before), DURATION.findall(before)


def test_the_readme_configs_and_env_script_link_to_it():
    readme = section((ROOT / "README.md").read_text(), "## A tiny GRPO run on a CPU")
    assert not DURATION.findall(readme), DURATION.findall(readme)
    assert readme.count("docs/training.md#how-long-it-takes") == 2  # the CPU and the VL run
    for path in ("configs/tiny-cpu.yaml", "configs/tiny-vl-cpu.yaml", "scripts/vl_env.sh"):
        text = (ROOT / path).read_text()
        comments = "\n".join(line for line in text.splitlines() if line.startswith("#"))
        assert not DURATION.findall(comments), (path, DURATION.findall(comments))
        assert 'docs/training.md, "How long it takes"' in comments, path


def test_the_tests_page_links_to_it_for_the_vl_environment():
    page = (ROOT / "docs" / "tests.md").read_text()
    row = next(line for line in page.splitlines() if line.startswith("| `.venv-vl` |"))
    assert not DURATION.findall(row), row
    assert "training.md#how-long-it-takes" in row


def test_the_readme_names_the_vl_runs_folders_and_size():
    readme = section((ROOT / "README.md").read_text(), "## A tiny GRPO run on a CPU")
    for text in ("runs/tiny-qwen2.5-vl", "runs/tiny-vl-grpo", "GB"):
        assert text in readme.split("Qwen2.5-VL", 1)[1], text
