"""nginx configs of the load balancers (reward servers, judge replicas) parse."""

from __future__ import annotations

import pytest

from tests.deploy_files import (
    NGINX_CONFS,
    nginx_conf,
    read,
)


@pytest.mark.parametrize("rel", NGINX_CONFS)
def test_nginx_conf_parses(rel):
    conf = nginx_conf(rel)
    assert conf["upstream_servers"] and conf["listen"]
    assert "127.0.0.11" in read(rel), "Docker's embedded DNS resolves the replicas"
