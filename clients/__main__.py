"""``python -m clients score IN.jsonl -o OUT.jsonl``: score a JSONL file of samples, resumably.

Each input line is a contract sample (``id``, ``prompt``, ``images``, ``response``, ``labels``;
SafeTag-VL's top-level ``image_tag``/``text_tag``/``combine_tag`` columns, and any other
top-level ``*_tag`` key, are folded into ``labels``; other fields are ignored with a warning).
Image paths are local files, read relative to the input file's directory and sent as data
URLs. A row without ``id`` gets its line number (1-based) as id.

Each output line is one result (``Result.to_json()``: id, status, reward, components,
penalties, judge, cached, error, profile, rubric_version), in input order. Output is flushed
after every window of ``chunk_size * concurrency`` rows, into a file whose folder is created
if needed; re-running with the same ``-o`` skips the ids already there (a line cut short by a
kill is dropped first), so an interrupted run picks up where it stopped. A row that cannot
be sent (not JSON, bad labels, an image file that is not there) is written as ``invalid``
with a ``client:`` reason. Rewards, components and penalties are written rounded to 6
decimals. A summary table goes to stdout at the end.

One file holds one profile's results: a run under another profile than the file's results
(``--profile``, or the service's default when it is not given) stops with exit code 2 and
writes nothing; give each profile its own ``-o``.

When the service refuses a request (a row over its limits), the run stops with exit code 1
and the error names the row by its input line; fix it and run the same command again. A 503
is retried (``--max-retries``), except the one a service without a judge gives for a judge
profile: waiting cannot fix that, so the run stops at once and says what can.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from clients._base import DEFAULT_URL
from clients.errors import InvalidSampleError, RewardClientError, RewardServiceError, rename_samples
from clients.models import Result, component_means, mean
from clients.samples import SAMPLE_KEYS, normalise_sample
from reward_formats import is_tag_key

#: decimals of the rewards, components and penalties written to the output
DECIMALS = 6

#: What to do when the service has no judge and the profile needs one (a permanent 503).
NO_JUDGE_HINT = (
    "the service runs without a judge (REWARD_JUDGE_BACKEND=none), so judge profiles "
    "(safer_vlm, safer_vlm_process, hybrid) cannot be scored there: score with a rule "
    "profile (--profile safegrpo_plus or safegrpo), or restart the service with a judge "
    "(REWARD_JUDGE_BACKEND and REWARD_JUDGE_MODEL; docs/judge.md)"
)


@dataclass
class ScoreArguments:
    """Arguments of ``python -m clients score``."""

    input: str = field(metadata={"help": "JSONL file of samples to score."})
    output: str = field(
        metadata={"help": "JSONL file of results; appended to, ids already there are skipped.",
                  "flags": ["-o", "--output"]}
    )
    url: str = field(
        default_factory=lambda: os.environ.get("REWARD_SERVICE_URL", DEFAULT_URL),
        metadata={"help": "Base URL of the reward service (env REWARD_SERVICE_URL)."},
    )
    profile: str | None = field(
        default_factory=lambda: os.environ.get("REWARD_SERVICE_PROFILE") or None,
        metadata={"help": "Reward profile (env REWARD_SERVICE_PROFILE); the server default "
                  "if unset."},
    )
    api_key: str | None = field(
        default_factory=lambda: os.environ.get("REWARD_SERVICE_API_KEY") or None,
        metadata={"help": "Bearer token, if the service has REWARD_API_KEY set "
                  "(env REWARD_SERVICE_API_KEY).", "secret": True},
    )
    concurrency: int = field(default=4, metadata={"help": "Requests in flight at once."})
    chunk_size: int = field(
        default=256, metadata={"help": "Samples per request (at most the server's "
                               "REWARD_MAX_SAMPLES)."}
    )
    timeout: float = field(default=120.0, metadata={"help": "Seconds per HTTP attempt."})
    max_retries: int = field(
        default=5, metadata={"help": "Retries on 503, timeouts and connection errors."}
    )
    no_progress: bool = field(default=False, metadata={"help": "Do not show a progress bar."})


def _add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    for f in dataclasses.fields(cls):
        help_ = f.metadata.get("help")
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if f.type in ("bool", bool):
            parser.add_argument(f"--{f.name.replace('_', '-')}", action="store_true", help=help_)
            continue
        kind = {"int": int, "float": float}.get(str(f.type), str)
        if required and "flags" not in f.metadata:
            parser.add_argument(f.name, type=kind, help=help_)
            continue
        flags = f.metadata.get("flags") or [f"--{f.name.replace('_', '-')}"]
        if f.name != f.name.replace("_", "-"):
            flags = [*flags, f"--{f.name}"]
        default = None if required else (
            f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        )
        shown = "" if required or f.metadata.get("secret") else f" (default: {default})"
        parser.add_argument(*flags, dest=f.name, type=kind, required=required, default=default,
                            help=f"{help_}{shown}")


def _plain(text: str) -> str:
    """A docstring as help text: without the reStructuredText ````literal```` marks.

    >>> _plain("``python -m clients score``: score a file")
    'python -m clients score: score a file'
    """
    return text.replace("``", "")


def make_parser() -> argparse.ArgumentParser:
    doc = _plain(__doc__ or "")
    parser = argparse.ArgumentParser(prog="python -m clients", description=doc.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    score = commands.add_parser("score", help="Score a JSONL file of samples (resumable).",
                                description=doc, formatter_class=argparse.RawTextHelpFormatter)
    _add_dataclass_arguments(score, ScoreArguments)
    return parser


# --------------------------------------------------------------------------- resume


def _key(id_: Any) -> str:
    return json.dumps(id_, sort_keys=True)


class Done(NamedTuple):
    """What an output file already holds: the ids scored (as ``_key``s), and the profiles
    the service scored them under."""

    ids: set[str]
    profiles: set[str]


def load_done(path: Path) -> Done:
    """What ``path`` already holds; a last line cut short (no newline, not JSON) is truncated
    away first."""
    if not path.exists():
        return Done(set(), set())
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        tail = data[end:]
        try:
            json.loads(tail)
            with path.open("ab") as f:  # a complete last line missing only its newline
                f.write(b"\n")
        except ValueError:
            with path.open("r+b") as f:
                f.truncate(end)
            print(f"dropped a partial last line of {path} ({len(tail)} bytes)", file=sys.stderr)
    done = Done(set(), set())
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                row = json.loads(line)
                done.ids.add(_key(row["id"]))
            except (ValueError, KeyError, TypeError):
                continue
            if isinstance(row.get("profile"), str):  # None: made here, never sent
                done.profiles.add(row["profile"])
    return done


@dataclass(frozen=True, slots=True)
class Row:
    """One input row: its line number, id, and the sample to send or the result made here."""

    line: int
    id: Any
    sample: dict | None
    local: Result | None


class _Rows:
    """Input ``Row``s in file order, skipping done ids."""

    def __init__(self, path: Path, done: set[str]) -> None:
        self.path = path
        self.done = done
        self.ignored: set[str] = set()
        self.duplicates = 0

    def __iter__(self) -> Iterator[Row]:
        base_dir = self.path.parent
        seen: set[str] = set()
        with self.path.open(encoding="utf-8") as f:
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    if not isinstance(row, dict):
                        raise ValueError("not a JSON object")
                except ValueError as exc:
                    id_, sample, local = line_no, None, Result.invalid(
                        line_no, f"client: line {line_no} is not a JSON object: {exc}")
                else:
                    id_ = row.get("id", line_no)
                    sample, local = self._sample(row, id_, line_no, base_dir)
                key = _key(id_)
                if key in self.done or key in seen:
                    self.duplicates += key in seen
                    continue
                seen.add(key)
                yield Row(line_no, id_, sample, local)

    def _sample(
        self, row: dict, id_: Any, line_no: int, base_dir: Path
    ) -> tuple[dict | None, Result | None]:
        row = dict(row)
        tags = {k: row.pop(k) for k in list(row) if is_tag_key(k)}  # a typo is an error too
        if tags and row.get("labels") is None:
            row["labels"] = tags
        extra = set(row) - SAMPLE_KEYS
        self.ignored |= extra
        sample = {k: v for k, v in row.items() if k in SAMPLE_KEYS}
        sample["id"] = id_
        try:
            return normalise_sample(sample, base_dir), None
        except InvalidSampleError as exc:
            return None, Result.invalid(id_, f"client: line {line_no}: {exc}")


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


# --------------------------------------------------------------------------- run


class ProfileMismatch(Exception):
    """The output file holds results of other profiles than this run scores under."""

    def __init__(self, path: Path, held: set[str], wanted: str) -> None:
        super().__init__(
            f"{path} holds results scored under profile {', '.join(sorted(held))}, and this "
            f"run scores under {wanted}: resuming would mix the two. Write to another -o file "
            f"(or delete {path} to score it again)."
        )


async def _run(
    args: ScoreArguments, rows: _Rows, out, bar, transport=None, held: set[str] | None = None
) -> int:
    """Score ``rows`` into ``out``; the results' profile must be one of ``held`` (the
    profiles already in the file) when that is not empty."""
    from clients.aio import AsyncRewardClient

    window = args.chunk_size * args.concurrency
    written = 0
    async with AsyncRewardClient(
        args.url, api_key=args.api_key, timeout=args.timeout, max_retries=args.max_retries,
        chunk_size=args.chunk_size, max_concurrency=args.concurrency, profile=args.profile,
        transport=transport,
    ) as client:
        batch: list[Row] = []

        async def flush() -> None:
            nonlocal written
            to_send = [row for row in batch if row.sample is not None]
            try:
                scored = iter(await client.score([r.sample for r in to_send]) if to_send else [])
            except RewardServiceError as exc:
                raise _by_line(exc, to_send) from exc
            if held:  # no --profile: the service's default decides, seen in its answer
                scored = list(scored)
                other = {r.profile for r in scored if r.profile and r.profile not in held}
                if other:
                    raise ProfileMismatch(Path(args.output), held, ", ".join(sorted(other)))
                scored = iter(scored)
            for row in batch:
                result = row.local if row.sample is None else next(scored)
                out.write(json.dumps(_rounded(result.to_json()), ensure_ascii=False) + "\n")
            out.flush()
            written += len(batch)
            bar.update(len(batch))
            batch.clear()

        for row in rows:
            batch.append(row)
            if len(batch) >= window:
                await flush()
        if batch:
            await flush()
    return written


def _by_line(exc: RewardServiceError, sent: list[Row]) -> RewardServiceError:
    """``exc`` with each ``samples[k]`` of its message (the k-th row sent) named by its line."""

    def line(k: int, dotted: bool) -> str | None:
        return f"line {sent[k].line}" + (": " if dotted else "") if k < len(sent) else None

    return RewardServiceError(exc.status, rename_samples(exc.message, line), exc.url,
                              exc.retry_after)


def _rounded(result: dict[str, Any]) -> dict[str, Any]:
    """The reward, components and penalties to ``DECIMALS`` places: ``0.925``, not float
    noise such as ``0.9249999999999999``."""

    def r(value: Any) -> Any:
        finite = isinstance(value, float) and math.isfinite(value)
        return round(value, DECIMALS) if finite else value

    out = dict(result)
    out["reward"] = r(out.get("reward"))
    for key in ("components", "penalties"):
        if isinstance(out.get(key), dict):
            out[key] = {name: r(value) for name, value in out[key].items()}
    return out


def summarize(path: Path) -> dict[str, Any]:
    """Counts and means over every result in ``path``."""
    results = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                results.append(Result.from_json(json.loads(line)))
    ok = [r for r in results if r.ok]
    return {
        "count": len(results),
        "ok": len(ok),
        "invalid": len(results) - len(ok),
        "reward_mean": mean(r.reward for r in ok),  # type: ignore[misc]
        "components": component_means(results),
        "profiles": sorted({f"{r.profile} ({r.rubric_version})" for r in ok if r.profile}),
    }


def format_summary(summary: dict[str, Any], new: int) -> str:
    rows = [
        ("count", f"{summary['count']}" + (f"  ({new} this run)" if new != summary["count"]
                                             else "")),
        ("ok", str(summary["ok"])),
        ("invalid", str(summary["invalid"])),
        ("reward mean", _number(summary["reward_mean"])),
    ]
    rows += [(f"{name} mean", _number(value)) for name, value in summary["components"].items()]
    if summary["profiles"]:
        rows.append(("profile", ", ".join(summary["profiles"])))
    width = max(len(k) for k, _ in rows)
    line = "-" * (width + 2 + max(len(v) for _, v in rows))
    return "\n".join([line, *(f"{k:<{width}}  {v}" for k, v in rows), line])


def _number(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4f}"


def main(args: ScoreArguments, transport: Any = None) -> int:
    """Run ``score``; returns the exit code (0 done, 1 service/client error, 2 usage,
    130 interrupted). ``transport`` is the httpx test seam."""
    from tqdm import tqdm

    in_path, out_path = Path(args.input), Path(args.output)
    if not in_path.is_file():
        print(f"error: input file {in_path} does not exist", file=sys.stderr)
        return 2
    if args.concurrency < 1 or args.chunk_size < 1:
        print("error: --concurrency and --chunk-size must be >= 1", file=sys.stderr)
        return 2
    done = load_done(out_path)
    if args.profile is not None and done.profiles - {args.profile}:
        print(f"error: {ProfileMismatch(out_path, done.profiles, args.profile)}",
              file=sys.stderr)
        return 2
    out_path.parent.mkdir(parents=True, exist_ok=True)
    rows = _Rows(in_path, done.ids)
    total = _count_lines(in_path)
    code = 0
    permanent = False
    with out_path.open("a", encoding="utf-8") as out, tqdm(
        total=total, initial=min(len(done.ids), total), unit="sample",
        disable=True if args.no_progress else None, file=sys.stderr,
    ) as bar:
        try:
            new = asyncio.run(_run(args, rows, out, bar, transport, done.profiles))
        except RewardClientError as exc:
            tries = args.max_retries + 1
            gave_up = f" (gave up after {tries} attempts)" if exc.retryable and tries > 1 else ""
            print(f"error: {exc}{gave_up}", file=sys.stderr)
            permanent = bool(getattr(exc, "permanent", False))
            if permanent:
                print(NO_JUDGE_HINT, file=sys.stderr)
            new, code = bar.n - min(len(done.ids), total), 1
        except ProfileMismatch as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted; run the same command again to resume", file=sys.stderr)
            new, code = bar.n - min(len(done.ids), total), 130
    if rows.ignored:
        print(f"ignored field(s) not in the contract: {sorted(rows.ignored)}", file=sys.stderr)
    if rows.duplicates:
        print(f"skipped {rows.duplicates} row(s) with a repeated id", file=sys.stderr)
    summary = summarize(out_path)
    if code == 0 or summary["count"]:
        print(format_summary(summary, new))
    if code == 1 and total > summary["count"]:
        when = "once the service can score this profile" if permanent else "to resume"
        print(f"{total - summary['count']} row(s) not scored; run the same command again "
              f"{when}", file=sys.stderr)
    return code


def cli(argv: list[str] | None = None) -> int:
    ns = make_parser().parse_args(argv)
    values = {f.name: getattr(ns, f.name) for f in dataclasses.fields(ScoreArguments)}
    return main(ScoreArguments(**values))


if __name__ == "__main__":
    sys.exit(cli())
