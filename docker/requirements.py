"""Print the third-party requirements of pyproject.toml for some extras, one per line.

The images install their dependencies in a layer of their own, before the source is copied,
so that a code change does not reinstall torch. pip cannot resolve ``.[server,gpu]`` without
the source, so this reads the lists from pyproject.toml instead, and expands an extra that
names this project itself (``safety-reward-service[server]``) into the lists it refers to.
Standard library only: it runs in the bare build stage.

    python requirements.py pyproject.toml server gpu > /tmp/requirements.txt
"""

from __future__ import annotations

import re
import sys
import tomllib


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(pyproject: dict, extras: list[str]) -> list[str]:
    """The base dependencies plus those of ``extras``, self-references expanded, in order,
    without repeats."""
    project = pyproject["project"]
    own = _canonical(project["name"])
    optional = project.get("optional-dependencies", {})
    out: list[str] = []
    seen_extras: set[str] = set()

    def add(requirement: str) -> None:
        self_ref = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*\[([^\]]*)\]\s*", requirement)
        if self_ref and _canonical(self_ref.group(1)) == own:
            for extra in self_ref.group(2).split(","):
                add_extra(extra.strip())
        elif requirement not in out:
            out.append(requirement)

    def add_extra(extra: str) -> None:
        if not extra or extra in seen_extras:
            return
        if extra not in optional:
            raise SystemExit(f"pyproject.toml has no extra {extra!r}; known: {sorted(optional)}")
        seen_extras.add(extra)
        for requirement in optional[extra]:
            add(requirement)

    for requirement in project.get("dependencies", []):
        add(requirement)
    for extra in extras:
        add_extra(extra)
    return out


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0], "rb") as f:
        pyproject = tomllib.load(f)
    extras = [e for arg in argv[1:] for e in arg.replace(",", " ").split()]
    print("\n".join(requirements(pyproject, extras)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
