"""``labels`` of a ``/score`` sample: fast in pydantic-core, lenient per the contract.

Label values are case- and whitespace-insensitive; a bad value, or a ``*_tag`` key that is
not one of the three, makes only that sample ``invalid`` with an error naming the key and
the accepted values (``reward_formats.labels`` words it); other keys are ignored when
their values are scalars (string, number, boolean, null).
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import core_schema

from reward_formats.labels import TAG_VALUES, LabelError, normalise_labels, normalise_tag
from reward_server.domain import Labels


class LabelProblem:
    """A label value the contract does not accept; it makes only its sample ``invalid``."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _lenient_tag(value: Any, key: str) -> str | LabelProblem | None:
    try:
        return normalise_tag(value, key)
    except LabelError as exc:
        return LabelProblem(str(exc))


class _LabelTag:
    """A label field, read by ``reward_formats.labels.normalise_tag``.

    The value already in normal form (``"safe"``, ``"unsafe"``, ``null``) is accepted inside
    pydantic-core; only anything else (``"SAFE"``, ``" unsafe "``, ``""``, a bad value)
    reaches the shared Python normaliser, so the hot path makes no Python call per label.
    A bad value never fails validation: it becomes a ``LabelProblem`` for ``to_sample``.
    """

    def __init__(self, key: str) -> None:
        self.key = key

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.union_schema(
            [
                core_schema.literal_schema(list(TAG_VALUES)),
                core_schema.none_schema(),
                core_schema.no_info_plain_validator_function(partial(_lenient_tag, key=self.key)),
            ],
            mode="left_to_right",
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return {"anyOf": [{"type": "string"}, {"type": "null"}]}


def _tag(key: str) -> Any:
    return Annotated[
        str | None,
        _LabelTag(key),
        Field(description="`safe` or `unsafe` (any case and surrounding whitespace); "
              "empty or null means unknown"),
    ]


class LabelsIn(BaseModel):
    """SafeTag-VL-3K labels, read as ``reward_formats.labels`` says.

    Per the contract, a bad value or a ``*_tag`` key that is not one of the three (a typo
    such as ``combined_tag``) makes only that sample ``invalid``, never the request (a
    dataset's typo must not stop a training run); other keys (``category``, ``source``)
    are dataset metadata and ignored, as long as each holds a scalar (a list or an object
    there also makes its sample ``invalid``: a label never carries a structure).
    """

    model_config = ConfigDict(extra="allow")
    image_tag: _tag("image_tag") = None  # type: ignore[valid-type]
    text_tag: _tag("text_tag") = None  # type: ignore[valid-type]
    combine_tag: _tag("combine_tag") = None  # type: ignore[valid-type]

    def to_labels(self) -> Labels | str:
        """The domain labels, or why they are unusable (the message names the key)."""
        for value in (self.image_tag, self.text_tag, self.combine_tag):
            if isinstance(value, LabelProblem):
                return value.message
        if self.__pydantic_extra__:
            try:
                normalise_labels(self.__pydantic_extra__)  # raises on a *_tag typo
            except LabelError as exc:
                return str(exc)
        return Labels(self.image_tag, self.text_tag, self.combine_tag)
