"""`/ready` tells a degraded cache apart: the service as deployed (real HTTP, a real
redis-server) keeps scoring when Redis goes away, and `/ready` stays 200 (a load balancer
must keep routing to it) but says ``degraded``, until Redis answers again.
"""

from __future__ import annotations

import httpx

from tests.fakes.servers import RedisServer, RewardServer

LABELS = {"image_tag": "safe", "text_tag": "unsafe", "combine_tag": "unsafe"}
REFUSAL = ("<think><visual_safe>safe</visual_safe><text_safe>unsafe</text_safe>"
           "<combined_safe>unsafe</combined_safe></think><answer>Sorry, I can't help.</answer>")


def test_ready_says_degraded_while_redis_is_down_and_ready_when_back():
    red = RedisServer()
    port = red.port
    try:
        with RewardServer({"REWARD_REDIS_URL": red.url, "REWARD_PROFILE": "safegrpo"}) as srv:
            def ready() -> tuple[int, dict]:
                r = httpx.get(srv.url + "/ready", timeout=10)
                return r.status_code, r.json()

            def score(prompt: str) -> dict:
                sample = {"prompt": prompt, "response": REFUSAL, "labels": LABELS}
                r = httpx.post(srv.url + "/score", json={"samples": [sample]}, timeout=10)
                assert r.status_code == 200, r.text
                return r.json()["results"][0]

            code, body = ready()
            assert (code, body["status"], body["cache"]["reachable"]) == (200, "ready", True)

            red.stop()
            code, body = ready()
            # Still 200: rules score (uncached); the status and the cache say why it is less.
            assert (code, body["status"], body["ready"]) == (200, "degraded", True), body
            assert body["cache"]["reachable"] is False and body["cache"]["error"], body
            down = score("while redis is down")
            assert (down["status"], down["reward"], down["cached"]) == ("ok", 1.0, False)

            red = RedisServer(port=port)  # back where the service expects it
            srv.wait_until(lambda: ready()[1]["status"] == "ready", 15)
            srv.wait_until(lambda: score("after redis is back")["cached"], 15)
    finally:
        red.stop()
