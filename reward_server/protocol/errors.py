"""The body of every error answer (4xx/5xx)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorResponse(BaseModel):
    """A message naming the field or setting at fault; ``detail`` lists a 422's problems."""

    error: str
    detail: Any = None
