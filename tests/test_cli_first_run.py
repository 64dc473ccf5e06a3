"""``python -m clients score`` as a new user first meets it (issue 23): the README's command on a
fresh clone, a judge profile against a service without a judge, a second profile into the
same output, and ``--help``. Against the real service where it matters.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from clients import RewardClient, RewardServiceError
from clients.__main__ import ScoreArguments, cli, main
from tests.fakes.servers import ROOT
from tests.test_cli import SentIds, read_output
from tests.test_clients import make_sample


def args(inp: Path, out: Path, url: str, **kw) -> ScoreArguments:
    base = {"profile": "safegrpo_plus", "api_key": None, "chunk_size": 2, "concurrency": 1,
            "no_progress": True}
    return ScoreArguments(input=str(inp), output=str(out), url=url, **(base | kw))


def write_rows(path: Path, ids: range) -> None:
    path.write_text("".join(json.dumps(make_sample(i)) + "\n" for i in ids))


def test_output_folder_is_created(rules_server, tmp_path):
    # README: `python -m clients score examples/samples.jsonl -o runs/scored.jsonl`, and a
    # fresh clone has no runs/
    inp, out = tmp_path / "in.jsonl", tmp_path / "runs" / "first" / "scored.jsonl"
    write_rows(inp, range(3))
    assert main(args(inp, out, rules_server.url)) == 0
    assert [r["id"] for r in read_output(out)] == [0, 1, 2]


def test_a_judge_profile_without_a_judge_is_not_retried(rules_server, tmp_path, capsys):
    """The service answers 503 + Retry-After, as for a judge that is loading; but it has no
    judge at all, so one attempt is enough and the error says what to do instead."""
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_rows(inp, range(3))
    sent = SentIds()
    code = main(args(inp, out, rules_server.url, profile="safer_vlm", max_retries=5),
                transport=sent)
    err = capsys.readouterr().err
    assert code == 1
    assert sent.ids == [0, 1]  # the first request only, never sent again
    assert "HTTP 503" in err and "no judge configured" in err
    assert "gave up after" not in err
    assert "--profile safegrpo_plus" in err and "REWARD_JUDGE_BACKEND" in err
    assert "3 row(s) not scored; run the same command again once the service can score " \
           "this profile" in err


@pytest.mark.parametrize(
    ("message", "attempts"),
    [
        # what the service says without a judge: permanent, one attempt
        ("profile safer_vlm cannot score now: no judge configured (REWARD_JUDGE_BACKEND=none)",
         1),
        # a judge that is loading: retried (max_retries=2)
        ("profile safer_vlm cannot score now: judge grm: model loading", 3),
    ],
)
def test_the_library_client_retries_only_a_transient_503(message, attempts):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(503, json={"error": message}, headers={"Retry-After": "0"})

    client = RewardClient("http://service", max_retries=2, backoff=0.0,
                          transport=httpx.MockTransport(handler))
    with client, pytest.raises(RewardServiceError) as info:
        client.score([make_sample(0)])
    assert info.value.status == 503 and len(seen) == attempts


def test_another_profile_into_the_same_output_is_refused(rules_server, tmp_path, capsys):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_rows(inp, range(3))
    assert main(args(inp, out, rules_server.url, profile="safegrpo")) == 0
    before = out.read_text()
    capsys.readouterr()

    sent = SentIds()
    assert main(args(inp, out, rules_server.url, profile="safegrpo_plus"), transport=sent) == 2
    captured = capsys.readouterr()
    assert "holds results scored under profile safegrpo, and this run scores under " \
           "safegrpo_plus" in captured.err
    assert "safegrpo" not in captured.out  # no summary of the old profile's results
    assert sent.ids == [] and out.read_text() == before


def test_the_services_default_profile_is_checked_too(rules_server, tmp_path, capsys):
    # no --profile: the service's default (safegrpo_plus here) decides, seen in its answer
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_rows(inp, range(2))
    assert main(args(inp, out, rules_server.url, profile="safegrpo")) == 0
    before = out.read_text()
    write_rows(inp, range(4))  # two rows more to score
    capsys.readouterr()
    assert main(args(inp, out, rules_server.url, profile=None)) == 2
    assert "this run scores under safegrpo_plus" in capsys.readouterr().err
    assert out.read_text() == before  # nothing of the other profile was written

    # the same profile resumes as before
    assert main(args(inp, out, rules_server.url, profile="safegrpo")) == 0
    assert [r["id"] for r in read_output(out)] == [0, 1, 2, 3]


@pytest.mark.parametrize("argv", [["--help"], ["score", "--help"]])
def test_help_is_plain_text(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli(argv)
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "python -m clients score IN.jsonl -o OUT.jsonl" in text
    assert "``" not in text  # reStructuredText marks of the docstring


def test_the_readme_command_in_a_process(rules_server, tmp_path):
    """The README's command as a process, from a directory without runs/ (the examples file
    is read where it is: its image paths are relative to it)."""
    proc = subprocess.run(
        [sys.executable, "-m", "clients", "score", str(ROOT / "examples" / "samples.jsonl"),
         "-o", "runs/scored.jsonl", "--url", rules_server.url, "--no-progress"],
        cwd=tmp_path, env={"PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(read_output(tmp_path / "runs" / "scored.jsonl")) == len(
        (ROOT / "examples" / "samples.jsonl").read_text().splitlines())
