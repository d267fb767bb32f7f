"""Itemised bills: the four amounts of settlement-rules.md §2 derived from classed line items."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from settlement.claims import amounts_from_items, parse_claim
from settlement.errors import ClaimError

BASE: dict[str, Any] = {
    "claim_id": "IT-1",
    "person_id": "p1",
    "household_id": "h1",
    "insurance_scheme": "resident",
    "category": "dibao",
    "hospital_id": "H1",
    "hospital_level": 2,
    "visit_type": "inpatient",
    "admitted_on": "2014-04-01",
    "discharged_on": "2014-04-11",
    "diagnoses": ["I63.9"],
}

LINES = [
    # 10 days x 40.00 = 400.00, class A: fully in scope
    {"name": "bed", "item_class": "A", "quantity": "10", "unit_price": "40.00"},
    # 2 x 3850.00 = 7700.00; above the 3600.00 limit: 2 x 250.00 = 500.00 over-limit;
    # class B first share 10 % of (7700.00 - 500.00) = 720.00
    {
        "name": "alteplase",
        "item_class": "B",
        "quantity": "2",
        "unit_price": "3850.00",
        "price_limit": "3600.00",
        "self_pay_ratio": "0.10",
    },
    # class C: 12000.00 fully self-paid
    {"name": "imported stent", "item_class": "C", "quantity": "1", "unit_price": "12000.00"},
    # 0.5 x 33.33 = 16.665 -> 16.67 (half up, once); first share 5 % = 0.8335 -> 0.83
    {"name": "cephalosporin", "item_class": "B", "quantity": "0.5", "unit_price": "33.33", "self_pay_ratio": "0.05"},
]


def test_amounts_are_derived_from_the_lines() -> None:
    claim = parse_claim({**BASE, "line_items": LINES})
    assert claim.total == Decimal("20116.67")  # 400 + 7700 + 12000 + 16.67
    assert claim.fully_self_paid == Decimal("12000.00")
    assert claim.over_limit_self_paid == Decimal("500.00")
    assert claim.pre_self_paid == Decimal("720.83")  # 720.00 + 0.83
    assert claim.in_scope == Decimal("6895.84")  # 20116.67 - 12000 - 500 - 720.83
    assert amounts_from_items(claim.line_items or [])["total"] == claim.total


def test_given_amounts_must_match_the_lines() -> None:
    with pytest.raises(ClaimError) as err:
        parse_claim({**BASE, "line_items": LINES, "total": "100.00"})
    assert [e.field for e in err.value.errors] == ["line_items"]
    assert "total 100.00 (the lines give 20116.67)" in err.value.errors[0].message


def test_matching_amounts_are_accepted() -> None:
    amounts = {"total": "20116.67", "fully_self_paid": "12000.00", "over_limit_self_paid": "500.00"}
    claim = parse_claim({**BASE, "line_items": LINES, **amounts, "pre_self_paid": "720.83"})
    assert claim.total == Decimal("20116.67")


@pytest.mark.parametrize(
    ("change", "field", "phrase"),
    [
        ({"quantity": "-2"}, "line_items[0].quantity", "must be a finite number, not negative"),
        ({"quantity": "0"}, "line_items[0].quantity", "quantity must be above 0"),
        ({"quantity": "1.00001"}, "line_items[0].quantity", "more than four decimal places"),
        ({"unit_price": "1.005"}, "line_items[0].unit_price", "more than two decimal places"),
        ({"item_class": "D"}, "line_items[0].item_class", "Input should be 'A', 'B' or 'C'"),
        ({"item_class": "B"}, "line_items[0]", "needs self_pay_ratio"),
        ({"self_pay_ratio": "0.1"}, "line_items[0]", "class B"),
    ],
)
def test_a_bad_line_is_named(change: dict[str, Any], field: str, phrase: str) -> None:
    lines = [{**LINES[0], **change}, *LINES[1:]]
    with pytest.raises(ClaimError) as err:
        parse_claim({**BASE, "line_items": lines})
    assert [e.field for e in err.value.errors] == [field]  # no spurious "total is required"
    assert phrase in err.value.errors[0].message
