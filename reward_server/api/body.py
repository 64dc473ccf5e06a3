"""JSON request bodies parsed by pydantic-core straight from bytes, within bounded memory.

FastAPI's default path runs ``json.loads`` and then validates the Python objects, and it
ignores bodies whose content type is not JSON (``curl -d`` sends form encoding). Parsing
the raw bytes with ``model_validate_json`` is one pass, accepts any content type, and keeps
FastAPI's 422 error shape. The models still appear in the OpenAPI document.

Why values are counted first: text costs memory in proportion to its bytes, but JSON
structure does not. ``[{},{},…]`` is three bytes an object, and each becomes a Python
object of some 60 bytes (more while pydantic-core builds an error that quotes it), so a
60 MB body of them grew the process by 2 GB. :func:`count_values` counts the objects,
arrays, members and items outside strings before anything is decoded (a C-level count
for an ordinary body, a walk from string to string only when that count is over the
limit), and a body over ``REWARD_MAX_JSON_VALUES`` is a 413. What is decoded is then at
most a small constant times the body's size. A large body is counted and parsed in a
worker thread, so the event loop keeps serving ``/health``.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ValidationError

from reward_server.errors import PayloadTooLarge

M = TypeVar("M", bound=BaseModel)


# pydantic-core's words for a ``\\uD800``-style escape with no partner, which is JSON that
# names no character; the hint says what to look for.
_LONE_SURROGATE = "hex escape"
_SURROGATE_HINT = (
    " (a \\u escape that is not a whole character: a lone UTF-16 surrogate such as "
    "\\ud800 is not text; send the character itself or its full surrogate pair)"
)


#: Bodies up to this size are counted and parsed inline: a thread hop costs more.
INLINE_BODY_BYTES = 256 * 1024
# One thread parses every large body: parsing holds the GIL, so more threads would not parse
# faster (and what they allocate is returned to the system: ``offload.return_large_blocks``).
_PARSER = ThreadPoolExecutor(1, thread_name_prefix="body-parser")
#: The bytes that make a JSON value or a member outside strings: each object or array
#: opens with one, each further item or member follows a comma, each member has a colon.
_VALUE_BYTES = (b"{", b"[", b",", b":")
# The rest of a string literal after its opening quote, escapes included.
_STRING_REST = re.compile(rb'(?:[^"\\]++|\\.)*+"', re.DOTALL)


def count_values(raw: bytes, limit: int) -> int:
    """A count of the ``{``, ``[``, ``,`` and ``:`` in ``raw`` that is at most ``limit``
    exactly when those outside its string literals are. Under the limit it may include
    some inside strings; over it, the walk stops as soon as the limit is passed.

    Linear in ``len(raw)``: the walk's steps are bounded by ``limit``, since every string
    after the first follows one of the counted bytes.

    >>> count_values(b'[1, "a,b,c,d"]', 3)  # the commas in the string do not count
    2
    >>> count_values(b'[{},{},{},{}]', 3) > 3
    True
    """
    cheap = sum(raw.count(b) for b in _VALUE_BYTES)  # strings' commas included: an upper bound
    if cheap <= limit:
        return cheap
    count, pos, end = 0, 0, len(raw)
    while True:
        quote = raw.find(b'"', pos)
        stop = end if quote < 0 else quote
        count += sum(raw.count(b, pos, stop) for b in _VALUE_BYTES)
        if count > limit or quote < 0:
            return count
        close = raw.find(b'"', quote + 1)
        if close < 0:
            return count  # an unterminated string: the parser names the error
        if raw[close - 1] == 0x5C:  # a backslash before it: read the escapes properly
            match = _STRING_REST.match(raw, quote + 1)
            if match is None:
                return count
            close = match.end() - 1
        pos = close + 1


def check_values(raw: bytes, limit: int) -> None:
    """Raise ``PayloadTooLarge`` (413) when ``raw`` holds more than ``limit`` JSON values."""
    if count_values(raw, limit) > limit:
        raise PayloadTooLarge(
            f"body: more than REWARD_MAX_JSON_VALUES={limit} JSON objects, arrays, members "
            "and items outside strings"
        )


async def read_body(model: type[M], raw: bytes, max_values: int) -> M:
    """``raw`` parsed as ``model`` after :func:`check_values`; in a worker thread when it is
    larger than ``INLINE_BODY_BYTES``.

    Raises:
        PayloadTooLarge: too many JSON values.
        RequestValidationError: malformed JSON or a field of the wrong type (422).
    """
    if len(raw) <= INLINE_BODY_BYTES:
        return _checked_parse(model, raw, max_values)
    context = contextvars.copy_context()  # the request id goes along
    return await asyncio.get_running_loop().run_in_executor(
        _PARSER, context.run, _checked_parse, model, raw, max_values
    )


def _checked_parse(model: type[M], raw: bytes, max_values: int) -> M:
    check_values(raw, max_values)
    return parse_body(model, raw)


def parse_body(model: type[M], raw: bytes) -> M:
    """``raw`` parsed and validated as ``model``; errors in FastAPI's 422 shape."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        # Without the offending input: quoting a huge value would build it in Python.
        errors = [_located(e) for e in exc.errors(include_url=False, include_input=False)]
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
