"""verl's reward loop scores through a ``DeploymentHandle`` to the service's Serve app.

The service runs as the Serve application of ``reward_server.ray_serve`` (rules only) on the
same Ray that verl's reward workers run on; the workers are told its name with the one
override ``reward_kwargs.ray_app=reward`` and send no HTTP. Every reward equals what the
uvicorn service's ``/score`` returns for the same sample. The app runs in this env's Ray
(the cluster's version: a handle must come from the same Ray as the cluster).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

pytest.importorskip("verl", reason="the verl tier runs in .venv-verl (bash scripts/verl_env.sh)")
pytest.importorskip("ray.serve", reason="the handle test needs ray[serve] (scripts/verl_env.sh)")

from tests.fakes.servers import free_port
from tests.frameworks.verl import test_reward_loop as over_http
from tests.frameworks.verl.test_reward_loop import (
    COMPONENTS,
    README_OVERRIDES,
    check_rewards,
    decoded_responses,
    expected_rows,
    rollout_batch,
    scored_by_service,
)

# The HTTP tests' fixtures, shared: the same tokenizer and the same dataset rows.
tokenizer = over_http.tokenizer
batch_cases = over_http.batch_cases

pytestmark = pytest.mark.timeout(300)

HANDLE = "+reward.custom_reward_function.reward_kwargs.ray_app=reward"


@pytest.fixture(scope="module")
def serve_app(local_ray: None) -> Iterator[str]:
    """The rules-only Serve application ``reward`` on the tier's local Ray."""
    from ray import serve

    from reward_server.ray_serve.application import build_app, ingress_deployment

    assert build_app({}).__class__.__name__ == "Application"  # what the config deploys
    serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
    ingress = ingress_deployment().options(ray_actor_options={"num_cpus": 0},
                                           autoscaling_config=None, num_replicas=1)
    serve.run(ingress.bind(), name="reward", route_prefix="/")
    try:
        yield "reward"
    finally:
        serve.shutdown()


def test_the_reward_loop_scores_through_the_handle(serve_app: str, reward_loop: Callable,
                                                   verl_server, tokenizer, batch_cases):
    # the workers' environment still names the HTTP service; the override wins over it
    manager = reward_loop([*README_OVERRIDES, COMPONENTS, HANDLE])
    data, lengths = rollout_batch(tokenizer, batch_cases)
    expected = expected_rows(
        scored_by_service(verl_server.url, batch_cases,
                          decoded_responses(tokenizer, data, lengths)), 0.0)
    assert [e["valid"] for e in expected] == [1.0] * 6 + [0.0] * 4

    before = verl_server_requests(verl_server)
    out = manager.compute_rm_score(data)
    check_rewards(out, data, lengths, expected)
    assert verl_server_requests(verl_server) == before  # no sample went over HTTP


def verl_server_requests(server) -> float:
    """``/score`` requests the uvicorn service has answered (its ``/metrics``)."""
    import httpx

    text = httpx.get(server.url + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("reward_requests_total{") and 'route="/score"' in line)
