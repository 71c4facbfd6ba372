"""JSON serialization of step inputs and outputs. Never pickle.

Values are JSON, plus a few tagged types that round-trip exactly: ``datetime``, ``date``,
``Decimal``, ``UUID`` and ``bytes``. A workflow always sees the value *as the journal holds
it*, on the first run and on replay alike: a tuple comes back as a list, an int dict key as
a str. That is what keeps replay deterministic.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import uuid
from decimal import Decimal
from typing import Any

from handrail.errors import SerializationError

_TAG = "$hr"


def _default(value: Any) -> Any:
    if isinstance(value, _dt.datetime):
        return {_TAG: "datetime", "v": value.isoformat()}
    if isinstance(value, _dt.date):
        return {_TAG: "date", "v": value.isoformat()}
    if isinstance(value, Decimal):
        return {_TAG: "decimal", "v": str(value)}
    if isinstance(value, uuid.UUID):
        return {_TAG: "uuid", "v": str(value)}
    if isinstance(value, bytes | bytearray):
        return {_TAG: "bytes", "v": base64.b64encode(value).decode("ascii")}
    raise TypeError(type(value).__name__)


_DECODERS: dict[str, Any] = {
    "datetime": _dt.datetime.fromisoformat,
    "date": _dt.date.fromisoformat,
    "decimal": Decimal,
    "uuid": uuid.UUID,
    "bytes": base64.b64decode,
}


def _object_hook(obj: dict[str, Any]) -> Any:
    tag = obj.get(_TAG)
    if tag is not None and len(obj) == 2:
        decoder = _DECODERS.get(tag)
        if decoder is not None:
            return decoder(obj["v"])
    return obj


_encoder = json.JSONEncoder(
    default=_default, allow_nan=False, separators=(",", ":"), ensure_ascii=False
)
_decoder = json.JSONDecoder(object_hook=_object_hook)
_canonical = json.JSONEncoder(
    default=_default, allow_nan=False, separators=(",", ":"), ensure_ascii=False, sort_keys=True
)


def dumps(value: Any, *, what: str = "value", step: str | None = None) -> str:
    """Encode ``value``; a value JSON cannot carry fails here, naming the step and the type."""
    try:
        return _encoder.encode(value)
    except TypeError as exc:
        type_name = str(exc) if " " not in str(exc) else type(value).__name__
        where = f" of step {step!r}" if step else ""
        raise SerializationError(
            f"the {what}{where} contains a {type_name}, which handrail cannot store as JSON; "
            "pass plain data (dict, list, str, int, float, bool, None, datetime, Decimal, "
            "UUID, bytes), for example model.model_dump() or dataclasses.asdict(obj)",
            step=step,
            type_name=type_name,
        ) from None
    except ValueError as exc:
        where = f" of step {step!r}" if step else ""
        raise SerializationError(
            f"the {what}{where} cannot be stored as JSON: {exc}", step=step, type_name="float"
        ) from None


def canonical(value: Any) -> str:
    """The canonical JSON text of ``value`` (keys sorted, no spaces): equal values give
    equal text, so it can be hashed."""
    try:
        return _canonical.encode(value)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"cannot encode a canonical form: {exc}") from None


def loads(text: str | None) -> Any:
    """Decode what :func:`dumps` wrote; ``None`` stays ``None``."""
    if text is None:
        return None
    return _decoder.decode(text)
