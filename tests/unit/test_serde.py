"""Values are stored as JSON, never pickle; what comes back is what the workflow sees."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handrail import SerializationError, serde

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_json_values_round_trip(value: Any) -> None:
    assert serde.loads(serde.dumps(value)) == value


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2026, 11, 27, 10, 30, tzinfo=dt.UTC),
        dt.date(2026, 11, 27),
        Decimal("1234.50"),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        b"\x00\xffbytes",
        {"nested": [Decimal("1.1"), {"when": dt.date(2020, 1, 1)}]},
    ],
)
def test_tagged_types_round_trip_exactly(value: Any) -> None:
    back = serde.loads(serde.dumps(value))
    assert back == value
    assert type(back) is type(value)


def test_tuples_come_back_as_lists() -> None:
    assert serde.loads(serde.dumps({"t": (1, 2)})) == {"t": [1, 2]}


def test_unserializable_value_names_step_and_type() -> None:
    class Invoice:
        pass

    with pytest.raises(SerializationError) as info:
        serde.dumps({"x": [Invoice()]}, what="input", step="send_invoice")
    assert info.value.step == "send_invoice"
    assert info.value.type_name == "Invoice"
    assert "send_invoice" in str(info.value)
    assert "Invoice" in str(info.value)


def test_nan_is_refused() -> None:
    with pytest.raises(SerializationError, match="step 'calc'"):
        serde.dumps(float("nan"), step="calc")


def test_never_pickle() -> None:
    text = serde.dumps({"a": 1})
    assert text == '{"a":1}'
    assert serde.loads(None) is None
