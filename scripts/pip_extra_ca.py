"""Print the CA certificates pip is told to trust here beyond the public ones it ships.

``pip config list`` names the machine's CA bundle (``cert``, or ``PIP_CERT``); on a
machine behind a TLS-inspecting proxy that bundle holds the proxy's CA next to the public
ones. The whole bundle (200 KiB) does not fit in one build argument (Linux caps a single
argument at 128 KiB), and only what pip's own bundle (certifi) lacks is needed: this prints
those certificates, PEM, to hand to ``docker build --build-arg BUILD_CA_PEM=...``.
Nothing is printed when pip needs no extra CA. Standard library and pip only.

    .venv/bin/python scripts/pip_extra_ca.py [BUNDLE]
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

PEM_RE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def configured_bundle() -> str | None:
    """The bundle pip uses here: PIP_CERT, else ``cert`` in ``pip config list``."""
    if os.environ.get("PIP_CERT"):
        return os.environ["PIP_CERT"]
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"],
                         capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.strip().endswith(".cert"):
            return value.strip().strip("'\"")
    return None


def certs(path: str) -> list[str]:
    with open(path, encoding="ascii", errors="replace") as f:
        return PEM_RE.findall(f.read())


def body(pem: str) -> str:
    return "".join(pem.split())


def main(argv: list[str]) -> int:
    bundle = argv[0] if argv else configured_bundle()
    if not bundle:
        return 0
    from pip._vendor import certifi  # the bundle pip trusts when nothing is configured

    if os.path.realpath(certifi.where()) == os.path.realpath(bundle):
        print(f"{__file__}: this pip's own bundle is {bundle} (a distribution's pip): run "
              "this with a pip from PyPI, e.g. .venv/bin/python", file=sys.stderr)
        return 1
    public = {body(c) for c in certs(certifi.where())}
    extra = [c for c in certs(bundle) if body(c) not in public]
    if extra:
        print("\n".join(extra))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
