"""The bare baseline: the `safegrpo` formula behind a minimal FastAPI route, and an echo.

No validation models, no cache, no metrics, no middleware: what a researcher's
hand-written reward server looks like. The service is measured against it in one run.
``POST /echo`` sends the request body back unchanged without parsing it: the floor of a
FastAPI round trip for a body of that size, which the cache's hits are measured against.
Run: ``python -m bench.baseline_app PORT``.
"""

from __future__ import annotations

import sys

import orjson
from fastapi import FastAPI, Request, Response

from reward_server.domain import Labels
from reward_server.scorers.refusal import get_refusal_detector
from reward_server.scorers.safegrpo import SafeGRPORules

RULES = SafeGRPORules(get_refusal_detector("keyword"))
app = FastAPI()


@app.post("/score")
async def score(request: Request) -> Response:
    body = orjson.loads(await request.body())
    rewards = []
    for s in body["samples"]:
        lab = s.get("labels") or {}
        labels = Labels(lab.get("image_tag"), lab.get("text_tag"), lab.get("combine_tag"))
        rewards.append(RULES(s["response"], labels).reward)
    return Response(orjson.dumps({"rewards": rewards}), media_type="application/json")


@app.post("/echo")
async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/json")


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False)
