"""JSON request bodies parsed by pydantic-core straight from bytes.

FastAPI's default path runs ``json.loads`` and then validates the Python objects, and it
ignores bodies whose content type is not JSON (``curl -d`` sends form encoding). Parsing
the raw bytes with ``model_validate_json`` is one pass, accepts any content type, and keeps
FastAPI's 422 error shape. The models still appear in the OpenAPI document.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


# pydantic-core's words for a ``\\uD800``-style escape with no partner, which is JSON that
# names no character; the hint says what to look for.
_LONE_SURROGATE = "hex escape"
_SURROGATE_HINT = (
    " (a \\u escape that is not a whole character: a lone UTF-16 surrogate such as "
    "\\ud800 is not text; send the character itself or its full surrogate pair)"
)


def parse_body(model: type[M], raw: bytes) -> M:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = [_located(e) for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def _located(error: Any) -> dict[str, Any]:
    """The error under ``body``, with a hint where pydantic-core's message is cryptic."""
    msg = error.get("msg", "")
    if error.get("type") == "json_invalid" and _LONE_SURROGATE in msg:
        msg += _SURROGATE_HINT
    return {**error, "msg": msg, "loc": ("body", *error["loc"])}


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route whose body is ``model`` (registered by ``add_schemas``)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        }
    }


def add_schemas(app: FastAPI, models: list[type[BaseModel]]) -> None:
    """Register request models (and their nested models) in the app's OpenAPI components."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                spec = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(spec.pop("$defs", {}))
                components[model.__name__] = spec
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
