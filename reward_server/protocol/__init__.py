"""Wire models of the HTTP API (v1): requests in, responses out; the routes only call these.

Requests are pydantic models whose ``to_sample``/``to_samples`` hand over to domain types
(``domain.Sample``), so scorers never see pydantic. Responses are the very objects that are
sent: ``ScoreResponse`` holds the service's ``ScoreResult``s as they are and
``OpenRLHFResponse`` is a typed dict, both written by orjson (no second copy of the
results) and both the ``response_model`` of their route, so the OpenAPI schema is generated
from what goes on the wire.

    score       POST /score: ScoreRequest → samples; ScoreResponse
    labels      the lenient ``labels`` object of a /score sample
    openrlhf    POST /get_reward: OpenRLHFRequest → samples; OpenRLHFResponse
    errors      ErrorResponse, the body of every 4xx/5xx
"""

from reward_server.protocol.errors import ErrorResponse
from reward_server.protocol.labels import LabelsIn
from reward_server.protocol.openrlhf import OpenRLHFRequest, OpenRLHFResponse, openrlhf_reply
from reward_server.protocol.score import (
    ChatMessage,
    ImageBudget,
    SampleIn,
    ScoreRequest,
    ScoreResponse,
)

__all__ = [
    "ChatMessage",
    "ErrorResponse",
    "ImageBudget",
    "LabelsIn",
    "OpenRLHFRequest",
    "OpenRLHFResponse",
    "SampleIn",
    "ScoreRequest",
    "ScoreResponse",
    "openrlhf_reply",
]
