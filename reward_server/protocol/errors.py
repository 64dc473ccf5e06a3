"""The body of every error answer (4xx/5xx), whatever produced it.

One shape for every status, so a client reads ``error`` without knowing which layer
answered: the service's errors (400, 401, 413, 422, 503), the routing errors (404 for an
unknown path, 405 with an ``Allow`` header for a wrong method), an unexpected error (500)
and the header or body timeout (408).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorResponse(BaseModel):
    """The body of every error answer, whatever its status (404 and 405 included).

    ``error`` names the field or setting at fault; ``detail`` lists a 422's problems.
    """

    error: str = Field(description="What went wrong, naming the field or setting at fault.")
    detail: Any = Field(
        None, description="422 only: each problem with its location in the body."
    )
