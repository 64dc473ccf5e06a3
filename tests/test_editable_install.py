"""``pip install -e .`` (the README's and the Makefile's install) is quiet: no setuptools
warning block about the editable install. A real pip (this environment's, installing into a
fresh empty venv with ``--python``) builds the editable wheel with the build dependencies
from the package index, as a user's install does.
"""

from __future__ import annotations

import subprocess
import sys
import venv

from tests.fakes.servers import ROOT


def test_an_editable_install_prints_no_warning(tmp_path):
    target = tmp_path / "venv"
    venv.create(target, with_pip=False)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(target / "bin" / "python"), "install",
         "--no-deps", "--no-input", "--disable-pip-version-check", "-e", str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    # pip's own notes about this machine's package index are not the project's
    lines = [line for line in out.splitlines() if "Location 'file:" not in line]
    assert not [line for line in lines if "Warning" in line or "!!" in line], "\n".join(lines)
    check = subprocess.run(
        [str(target / "bin" / "python"), "-c",
         "import importlib.util as u; print(u.find_spec('clients').origin)"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    # the install points at the checkout (no dependencies here, so nothing is imported)
    assert check.stdout.strip() == str(ROOT / "clients" / "__init__.py"), check.stderr
