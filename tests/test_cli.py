"""``python -m clients score``: a full run, a resume after a cut-off file, and a real process
killed mid-run and started again, all against real HTTP servers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from clients.__main__ import ScoreArguments, cli, main
from tests.fakes.http_server import FakeHTTPServer, Reply
from tests.fakes.score_replies import score_reply
from tests.fakes.servers import ROOT, RewardServer
from tests.test_clients import OK, PNG_1x1, Sleep, make_sample, scripted_service


def write_input(path: Path) -> list[object]:
    """Input rows covering each case; returns the ids the output must hold, in order."""
    (path.parent / "img").mkdir(exist_ok=True)
    (path.parent / "img" / "a.png").write_bytes(PNG_1x1)
    lines = []
    for i in range(6):
        lines.append(json.dumps(make_sample(i)))  # ids 0..5: 1.0, 0.0, invalid, ...
    no_id = make_sample(0)
    del no_id["id"]
    lines.append(json.dumps(no_id))  # line 7: id 7
    with_image = make_sample(3) | {"id": "img", "images": ["img/a.png"]}
    lines.append(json.dumps(with_image))  # relative path, read next to the input
    lines.append("")  # blank lines are skipped
    lines.append("{not json")  # line 10: invalid on the client side, id 10
    tags = make_sample(0)
    labels = tags.pop("labels")
    lines.append(json.dumps(tags | labels | {"id": "tags", "source": "x"}))  # top-level tags
    path.write_text("\n".join(lines) + "\n")
    return [0, 1, 2, 3, 4, 5, 7, "img", 10, "tags"]


EXPECTED = {0: 1.0, 1: 0.0, 2: None, 3: 1.0, 4: 0.0, 5: None, 7: 1.0, "img": 1.0, 10: None,
            "tags": 1.0}


def read_output(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class SentIds(httpx.AsyncBaseTransport):
    """Real HTTP, recording the ids of the samples sent (the ``transport=`` seam)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.ids: list[object] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.ids += [s["id"] for s in json.loads(request.content)["samples"]]
        response = await self.inner.handle_async_request(request)
        await response.aread()
        return response


def args(inp: Path, out: Path, url: str, **kw) -> ScoreArguments:
    base = {"profile": "safegrpo_plus", "api_key": None, "chunk_size": 2, "concurrency": 2,
            "no_progress": True}
    return ScoreArguments(input=str(inp), output=str(out), url=url, **(base | kw))


def test_round_trip_and_resume_sends_only_missing_ids(rules_server, tmp_path, capsys):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = write_input(inp)
    sent = SentIds()
    assert main(args(inp, out, rules_server.url), transport=sent) == 0
    first = read_output(out)
    assert [r["id"] for r in first] == ids
    assert {r["id"]: r["reward"] for r in first} == EXPECTED
    assert sent.ids == [i for i in ids if i != 10]  # the non-JSON line is never sent
    by_id = {r["id"]: r for r in first}
    assert by_id[10]["status"] == "invalid" and by_id[10]["error"].startswith("client: line 10")
    assert by_id[2]["status"] == "invalid" and "combine_tag" in by_id[2]["error"]
    assert by_id[0]["profile"] == "safegrpo_plus" and by_id[0]["rubric_version"]
    table = capsys.readouterr()
    assert "ignored field(s) not in the contract: ['source']" in table.err
    summary = dict(line.rsplit(None, 1) for line in table.out.splitlines()[1:4])
    assert summary == {"count": "10", "ok": "7", "invalid": "3"}
    assert re.search(r"reward mean\s+0\.7143", table.out)  # 5 of the 7 ok rows score 1.0
    assert "format mean" in table.out and "behavior mean" in table.out

    # a kill mid-write: four whole lines, then half of the fifth
    text = out.read_text().splitlines(keepends=True)
    out.write_text("".join(text[:4]) + text[4][: len(text[4]) // 2])
    sent = SentIds()
    assert main(args(inp, out, rules_server.url), transport=sent) == 0
    assert sent.ids == [i for i in ids[4:] if i != 10]  # only the missing ones
    again = read_output(out)
    assert [r["id"] for r in again] == ids
    assert {r["id"]: r["reward"] for r in again} == EXPECTED

    # nothing left to do: nothing sent, the summary still covers the whole file
    sent = SentIds()
    assert main(args(inp, out, rules_server.url), transport=sent) == 0
    assert sent.ids == [] and len(read_output(out)) == len(ids)


def test_service_error_exits_1_and_keeps_partial_output(rules_server, tmp_path, capsys):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp)
    assert main(args(inp, out, rules_server.url, profile="nope")) == 1
    assert "unknown profile 'nope'" in capsys.readouterr().err
    assert main(args(tmp_path / "missing.jsonl", out, rules_server.url)) == 2


def _run_cli(inp: Path, out: Path, url: str, **popen) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REWARD_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen(
        [sys.executable, "-m", "clients", "score", str(inp), "-o", str(out), "--url", url,
         "--profile", "safegrpo_plus", "--chunk-size", "2", "--concurrency", "1",
         "--max-retries", "0"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen,
    )


def test_killed_process_resumes(rules_server, tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = write_input(inp)
    # the first request is answered (every reward 0.5), the second hangs: kill -9 the CLI then
    with scripted_service([OK, Sleep(30)]) as stuck:
        proc = _run_cli(inp, out, stuck.url, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(stuck.requests) < 2:
            time.sleep(0.05)
        assert len(stuck.requests) == 2, proc.communicate(timeout=5)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    partial = read_output(out)
    assert [r["id"] for r in partial] == ids[:2] and {r["reward"] for r in partial} == {0.5}

    proc = _run_cli(inp, out, rules_server.url)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    final = read_output(out)
    assert [r["id"] for r in final] == ids  # every id once, in input order
    # the first two kept the killed run's scores (not sent again); the rest are real
    assert [r["reward"] for r in final[:2]] == [0.5, 0.5]
    assert {r["id"]: r["reward"] for r in final[2:]} == {k: EXPECTED[k] for k in ids[2:]}
    assert "count" in stdout and "reward mean" in stdout and "tag mean" in stdout


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as info:
        cli(["score", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("-o", "--url", "--profile", "--concurrency", "--api-key", "--chunk-size"):
        assert flag in text


def test_a_row_the_service_refuses_is_named_by_its_input_line(tmp_path, capsys):
    # the service refuses a request naming its k-th sample; the error names the file's line
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    rows = [make_sample(i) for i in range(4)]
    rows[2]["response"] = "x" * 500  # over REWARD_MAX_RESPONSE_CHARS below
    inp.write_text("\n" + "".join(json.dumps(row) + "\n" for row in rows))  # line 1 blank
    with RewardServer({"REWARD_MAX_RESPONSE_CHARS": "400"}) as server:
        assert main(args(inp, out, server.url, concurrency=1)) == 1
    err = capsys.readouterr().err
    assert "HTTP 413" in err and "line 4: response: 500 characters" in err, err
    assert "samples[" not in err
    assert [r["id"] for r in read_output(out)] == [0, 1]  # the chunk before it is kept


def test_missing_image_file_is_reported_by_the_client(rules_server, tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    rows = [make_sample(0) | {"images": ["img/kitchen.png"]}, make_sample(3)]
    inp.write_text("".join(json.dumps(row) + "\n" for row in rows))
    sent = SentIds()
    assert main(args(inp, out, rules_server.url), transport=sent) == 0
    assert sent.ids == [3]  # never sent
    missing, scored = read_output(out)
    assert missing["status"] == "invalid" and missing["error"] == (
        f"client: line 1: images[0]: file not found: img/kitchen.png (relative to {tmp_path})")
    assert scored["reward"] == 1.0


def test_dead_url_fails_after_retries_with_a_clear_error(tmp_path, capsys):
    from tests.fakes.servers import free_port

    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp)
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert main(args(inp, out, url, max_retries=1)) == 1
    captured = capsys.readouterr()
    assert f"error: cannot reach {url}/score" in captured.err
    assert "gave up after 2 attempts" in captured.err
    assert "10 row(s) not scored; run the same command again to resume" in captured.err
    assert "nan" not in captured.out  # no summary of nothing


def test_rewards_are_written_without_float_noise(tmp_path):
    def handle(request):
        body = request.json()
        scores = [(0.9249999999999999, {"format": 0.30000000000000004})] * len(body["samples"])
        return Reply(200, score_reply(body, scores))

    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text(json.dumps(make_sample(0)) + "\n")
    with FakeHTTPServer(handle) as server:
        assert main(args(inp, out, server.url)) == 0
    [result] = read_output(out)
    assert result["reward"] == 0.925 and result["components"] == {"format": 0.3}
    assert '"reward": 0.925,' in out.read_text()
