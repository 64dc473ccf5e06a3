"""The README and the docs site stay true: they build, they link, and their commands run.

* the MkDocs site builds with ``--strict`` (a broken link or anchor fails) and embeds the
  benchmark chart;
* every setting of ``reward_server.settings.Settings`` is in the settings page with its
  default, and every limit and timeout is in the operations page's limits table;
* README.md stays a short front door (at most 200 lines), never points at files users do
  not have, and every relative link in it resolves;
* the README's commands that can run on CI are run as written, against a real service on a
  free port: the curl example (its printed reply is checked too), the CLI scoring a JSONL
  file, and (slow) the tiny GRPO run; every Python block in README and docs compiles, and
  the Python client example of the docs runs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib

import pytest

from tests.fakes.servers import ROOT, RewardServer

README = ROOT / "README.md"
DOCS = ROOT / "docs"
# What `make serve` and the docs' examples assume; tests substitute the test server's URL.
DEFAULT_URL = "http://127.0.0.1:8000"


def fenced_blocks(text: str, lang: str) -> list[str]:
    """The bodies of the fenced code blocks of ``text`` tagged ``lang``, in order."""
    return re.findall(rf"^```{lang}\n(.*?)^```$", text, flags=re.M | re.S)


def block_with(text: str, lang: str, needle: str) -> str:
    """The one ``lang`` block containing ``needle``."""
    found = [b for b in fenced_blocks(text, lang) if needle in b]
    assert len(found) == 1, f"expected one {lang} block with {needle!r}, found {len(found)}"
    return found[0]


def commands(block: str) -> list[str]:
    """A shell block's commands: comments dropped, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", block)
    lines = [line.split("  #", 1)[0].strip() for line in joined.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def run_shell(command: str, env: dict[str, str] | None = None, timeout: float = 120):
    """Run one README command with bash in the repository, the way a user would."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("REWARD_")}
    full_env.update(env or {})
    return subprocess.run(
        ["bash", "-c", command], cwd=ROOT, env=full_env, capture_output=True, text=True,
        timeout=timeout,
    )


def with_test_python(command: str) -> str:
    """The README says `.venv/bin/python`; the tests run with the interpreter running them."""
    return command.replace(".venv/bin/python", shlex.quote(sys.executable))


@pytest.fixture(scope="module")
def server():
    """The service as `make serve` runs it: embedded defaults, on a free port."""
    with RewardServer() as srv:
        yield srv


# --------------------------------------------------------------------------- the site


def test_site_builds_strictly_and_embeds_the_benchmark_chart(tmp_path):
    pytest.importorskip("mkdocs", reason="the dev extra installs mkdocs")
    pytest.importorskip("material", reason="the dev extra installs mkdocs-material")
    pytest.importorskip("mkdocstrings", reason="the dev extra installs mkdocstrings")
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    chart = site / "img" / "report.png"
    assert chart.read_bytes() == (ROOT / "bench" / "results" / "report.png").read_bytes()
    assert 'src="../img/report.png"' in (site / "benchmarks" / "index.html").read_text()
    # The Python reference is rendered from the docstrings, not left as a directive.
    reference = (site / "reference" / "index.html").read_text()
    assert "RewardClient" in reference and ":::" not in reference


def _settings_table(page: str, heading: str) -> dict[str, list[str]]:
    """Rows of the first table after ``heading``: first cell (backticks stripped) -> cells."""
    section = page.split(heading, 1)[1]
    rows: dict[str, list[str]] = {}
    started = False
    for line in section.splitlines():
        if line.startswith("|"):
            started = True
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0].strip("`").split(" (")[0].strip("`")] = cells
        elif started:
            break
    return rows


def _default_cell(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def test_every_setting_is_documented_with_its_default():
    from reward_server.settings import Settings

    rows = _settings_table((DOCS / "settings.md").read_text(), "## Every setting")
    fields = {f"REWARD_{name.upper()}": field for name, field in Settings.model_fields.items()}
    missing = sorted(set(fields) - set(rows))
    assert not missing, f"settings missing from docs/settings.md: {missing}"
    stale = sorted(name for name in rows if name.startswith("REWARD_") and name not in fields)
    assert not stale, f"docs/settings.md documents settings that do not exist: {stale}"
    for env, field in fields.items():
        documented = rows[env][1]
        assert documented == _default_cell(field.default), (env, documented, field.default)
        assert rows[env][2], f"{env} has no meaning in docs/settings.md"


def test_every_limit_and_timeout_is_in_the_operations_table():
    from reward_server.settings import Settings

    rows = _settings_table(
        (DOCS / "operations.md").read_text(), "## Limits, timeouts and failure semantics"
    )
    limits = [
        f"REWARD_{name.upper()}" for name in Settings.model_fields
        if name.startswith("max_") or name.endswith("timeout_s")
    ]
    assert "REWARD_MAX_QUERY_CHARS" in limits and "REWARD_JUDGE_TIMEOUT_S" in limits
    missing = [env for env in limits if env not in rows]
    assert not missing, f"limits missing from the operations table: {missing}"
    for env in limits:
        assert re.search(r"\b(408|413|503|invalid|unscorable)\b", rows[env][-1]), (env, rows[env])


# --------------------------------------------------------------------------- README shape


def test_readme_is_a_short_front_door():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    for must in ("make serve", "make test", "make docs", "curl ", "python -m clients score",
                 "trainer.grpo", "TRL", "verl", "OpenRLHF", "docker compose"):
        assert must in text, must


def test_readme_and_docs_never_point_at_the_teams_private_files():
    for path in [README, *DOCS.rglob("*.md")]:
        text = path.read_text()
        assert "../shared" not in text and "DESIGN.md" not in text, path


def test_every_relative_link_in_the_readme_resolves():
    text = README.read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    relative = [t for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]
    assert len(relative) >= 10  # the docs links are there
    for target in relative:
        path = (ROOT / target.split("#", 1)[0]).resolve()
        assert path.exists(), f"README links to {target}, which does not exist"
        assert path.is_relative_to(ROOT), target


def test_extras_and_make_targets_named_in_the_docs_exist():
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"])
    targets = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.M))
    for path in [README, *DOCS.rglob("*.md")]:
        text = path.read_text()
        for group in re.findall(r"\.\[([a-z,-]+)\]", text):
            for extra in group.split(","):
                assert extra in extras, f"{path.name} names the extra [{extra}]"
        for target in re.findall(r"(?:`|^)make ([a-z][\w-]*)", text, flags=re.M):
            assert target in targets, f"{path.name} names `make {target}`"


def test_every_python_block_compiles():
    for path in [README, *DOCS.rglob("*.md")]:
        for i, block in enumerate(fenced_blocks(path.read_text(), "python")):
            compile(block, f"{path.name}[python block {i}]", "exec")


# --------------------------------------------------------------------------- commands run


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_curl_example_answers_what_the_readme_shows(server):
    text = README.read_text()
    [command] = commands(block_with(text, "bash", "curl -s localhost:8000/score"))
    proc = run_shell(command.replace("localhost:8000", f"127.0.0.1:{server.port}"))
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    shown = json.loads(block_with(text, "json", '"rewards"'))
    # The rubric version is a hash of the profile's rules; it is shown, not promised.
    assert re.fullmatch(r"[0-9a-f]{16}", got.pop("rubric_version"))
    shown.pop("rubric_version")
    assert got == shown


def test_readme_cli_scores_the_example_jsonl(server, tmp_path):
    [command] = commands(block_with(README.read_text(), "bash", "-m clients score"))
    out = tmp_path / "scored.jsonl"
    assert "runs/scored.jsonl" in command
    command = with_test_python(command).replace("runs/scored.jsonl", shlex.quote(str(out)))
    proc = run_shell(command, env={"REWARD_SERVICE_URL": server.url})
    assert proc.returncode == 0, proc.stderr[-3000:]
    inputs = [json.loads(line) for line in (ROOT / "examples" / "samples.jsonl").open()]
    results = [json.loads(line) for line in out.open()]
    assert [r["id"] for r in results] == [row["id"] for row in inputs]
    assert [r["reward"] for r in results] == [1.0, 1.0, 0.5, None]
    assert results[-1]["status"] == "invalid" and "combine_tag" in results[-1]["error"]
    # The summary the integrations page shows is what the CLI prints (bar the hash).
    shown = block_with((DOCS / "integrations.md").read_text(), "text", "reward mean")
    printed = [line.split()[:2] for line in proc.stdout.splitlines() if line.strip()]
    expected = [line.split()[:2] for line in shown.splitlines() if line.strip()]
    assert printed == expected


def test_docs_python_client_example_runs(server, tmp_path):
    block = block_with((DOCS / "integrations.md").read_text(), "python", "RewardClient(")
    script = tmp_path / "client_example.py"
    script.write_text(block.replace(DEFAULT_URL, server.url))
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines() == [
        "knife ok 1.0 {'format': 1.0, 'tag': 1.0, 'behavior': 1.0, 'refused': 1.0} None",
        "[1.0]",
    ]


@pytest.mark.slow
def test_readme_tiny_grpo_run_finishes(server, tmp_path):
    pytest.importorskip("trl", reason="the train extra installs TRL")
    block = block_with(README.read_text(), "bash", "configs/tiny-cpu.yaml")
    steps = commands(block)
    # The install step is what the test environment already did (`make test` includes train).
    assert steps[0] == ".venv/bin/python -m pip install -e '.[train]'"
    model, out = tmp_path / "tiny-qwen2", tmp_path / "tiny-grpo"
    build, train = (with_test_python(c).replace("runs/tiny-qwen2", str(model)) for c in steps[1:])
    assert "configs/tiny-cpu.yaml" in train
    # The config's service is `make serve`'s port 8000: point it at the test server instead.
    train += f" --reward_url {server.url} --model_name_or_path {model} --output_dir {out}"
    for command in (build, train):
        proc = run_shell(command, timeout=900)
        assert proc.returncode == 0, (command, proc.stderr[-4000:])
    assert (out / "model.safetensors").is_file()


def test_detectors_page_shows_the_published_figures():
    """The tables and chart on the Detectors page are the published fidelity report's
    (``python -m bench.fidelity.report`` puts them there)."""
    from bench.fidelity.report import DOC, PUBLISHED, docs_with_tables

    case = json.loads((PUBLISHED / "report.json").read_text())["cases"]["fidelity"]
    doc = DOC.read_text()
    assert docs_with_tables(doc, case) == doc
    assert (ROOT / "docs" / "img" / "fidelity.png").read_bytes() == (
        PUBLISHED / "report.png"
    ).read_bytes()


def test_every_data_source_is_on_the_data_sources_page():
    from bench.fidelity.sources import SOURCES

    page = (ROOT / "docs" / "data-sources.md").read_text()
    for source in SOURCES:
        assert f"`{source.name}`" in page and source.licence in page, source.name
