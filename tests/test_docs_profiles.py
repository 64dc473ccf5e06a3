"""Every built-in profile the service serves is in the README's and the profiles page's
lists."""

from __future__ import annotations

import re

import httpx

from tests.fakes.servers import ROOT


def test_every_built_in_profile_is_listed(rules_server):
    served = httpx.get(rules_server.url + "/profiles", timeout=10).json()["profiles"]
    assert "safer_vlm_process" in served
    readme_row = next(line for line in (ROOT / "README.md").read_text().splitlines()
                      if line.startswith("| [Reward profiles]"))
    page = (ROOT / "docs" / "profiles.md").read_text()
    first_table = page.split("| profile | reward | needs |", 1)[1].split("\n\n", 1)[0]
    table = re.findall(r"^\| `(\w+)` \|", first_table, re.M)
    for name in served:
        assert f"`{name}`" in readme_row, name
    assert table == list(served)  # the page's table, in the service's order
