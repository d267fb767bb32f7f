"""Malformed claims: each is refused with a FieldError naming its place and saying what is wrong, every
problem of a claim at once, and before anything is settled (settlement-rules.md §1–2, settlement/claims.py).

Every case starts from VALID and breaks one thing.
"""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from policies.compile import compile_policy
from policies.library import load_library
from settlement.claims import Claim, ClaimBatch, decode_json, parse_claim, parse_claims
from settlement.errors import ClaimError, FieldError
from settlement.plan import Plan
from settlement.waterfall import settle

DATA = Path(__file__).parent / "data"
POLICY_FILE = DATA / "unit-engine-policy.yaml"  # in force 2014-01-01 to 2014-12-31
DISEASE_FILE = DATA / "diseases" / "unit-catastrophic.yaml"

VALID: dict[str, Any] = {
    "claim_id": "C1",
    "person_id": "P1",
    "household_id": "H1",
    "insurance_scheme": "resident",
    "category": "dibao",
    "hospital_id": "HOS1",
    "hospital_level": 2,
    "visit_type": "inpatient",
    "admitted_on": "2014-03-01",
    "discharged_on": "2014-03-10",
    "diagnoses": ["C91.0"],
    "total": "10000.00",
    "fully_self_paid": "500",
    "over_limit_self_paid": "100.50",
    "pre_self_paid": "200",
}

MISSING = object()
ICD_MESSAGE = (
    "{code!r} is not an ICD-10 code (expected a letter, two digits and an optional subdivision, "
    "e.g. C92.0 or C92.000x001)"
)
CATEGORY_MESSAGE = (
    "Input should be 'tekun', 'orphan', 'severe_disability', 'dibao', 'low_income', 'illness_poverty' or 'none'"
)


def broken(**changes: object) -> dict[str, Any]:
    """VALID with some fields replaced (or removed, with MISSING)."""
    data = json.loads(json.dumps(VALID))
    for name, value in changes.items():
        if value is MISSING:
            data.pop(name)
        else:
            data[name] = value
    return data


@pytest.fixture(scope="module")
def plan() -> Plan:
    library, problems = load_library([POLICY_FILE, DISEASE_FILE])
    assert problems == []
    return compile_policy(library.get("unit-engine@1"), library)


def test_the_starting_claim_is_valid() -> None:
    claim = parse_claim(VALID)
    assert claim.in_scope == Decimal("9199.50")  # 10000 − 500 − 100.50 − 200
    assert claim.total == Decimal("10000.00")


# (case id, changes to VALID, field path, exact message). Paths are those of parse_claim(data, "claims[0]").
BAD_CLAIMS: list[tuple[str, dict[str, object], str, str]] = [
    ("negative amount", {"total": "-5"}, "claims[0].total", "amount '-5' must not be negative"),
    ("negative int", {"fully_self_paid": -1}, "claims[0].fully_self_paid", "amount -1 must not be negative"),
    (
        "three decimals",
        {"total": "1.234"},
        "claims[0].total",
        "amount 1.234 has more than two decimal places; amounts are in yuan to the fen",
    ),
    (
        "three decimals in a self-paid part",
        {"pre_self_paid": "0.001"},
        "claims[0].pre_self_paid",
        "amount 0.001 has more than two decimal places; amounts are in yuan to the fen",
    ),
    (
        "exponent string 1e3",
        {"total": "1e3"},
        "claims[0].total",
        "amount '1e3' uses exponent notation; write plain digits like 1000.00",
    ),
    ("NaN", {"total": "NaN"}, "claims[0].total", "amount 'NaN' is not a finite number"),
    (
        "Infinity",
        {"over_limit_self_paid": "Infinity"},
        "claims[0].over_limit_self_paid",
        "amount 'Infinity' is not a finite number",
    ),
    (
        "inexact float",
        {"total": 12.1},
        "claims[0].total",
        "amount arrived as a binary floating-point number, which cannot hold 12.1 exactly; "
        'send it as text, e.g. "12.1"',
    ),
    ("boolean amount", {"total": True}, "claims[0].total", "amount must be a number, not true/false"),
    (
        "thousands separator",
        {"total": "10,000.00"},
        "claims[0].total",
        "amount '10,000.00' must be plain digits without separators, like 12345.67",
    ),
    (
        "huge amount",
        {"total": "100000000.00"},
        "claims[0].total",
        "amount 100000000.00 exceeds the largest accepted amount, 99999999.99 yuan",
    ),
    (
        "discharge before admission",
        {"discharged_on": "2014-02-01"},
        "claims[0].discharged_on",
        "2014-02-01 is before admitted_on 2014-03-01",
    ),
    (
        "in-scope below zero",
        {"fully_self_paid": "9000", "over_limit_self_paid": "1000", "pre_self_paid": "0.50"},
        "claims[0].total",
        "fully_self_paid + over_limit_self_paid + pre_self_paid (10000.50) exceeds total (10000.00): "
        "the in-scope amount would be negative",
    ),
    ("unknown category", {"category": "poor"}, "claims[0].category", CATEGORY_MESSAGE),
    (
        "unknown scheme",
        {"insurance_scheme": "rural"},
        "claims[0].insurance_scheme",
        "Input should be 'employee', 'resident' or 'none'",
    ),
    ("hospital level 4", {"hospital_level": 4}, "claims[0].hospital_level", "Input should be 1, 2 or 3"),
    ("hospital level 0", {"hospital_level": 0}, "claims[0].hospital_level", "Input should be 1, 2 or 3"),
    (
        "unknown visit type",
        {"visit_type": "emergency"},
        "claims[0].visit_type",
        "Input should be 'inpatient', 'chronic_outpatient' or 'outpatient'",
    ),
    ("ICD XYZ", {"diagnoses": ["XYZ"]}, "claims[0].diagnoses[0]", ICD_MESSAGE.format(code="XYZ")),
    ("ICD C9", {"diagnoses": ["C9"]}, "claims[0].diagnoses[0]", ICD_MESSAGE.format(code="C9")),
    ("ICD with a blank inside", {"diagnoses": ["C91. 0"]}, "claims[0].diagnoses[0]", ICD_MESSAGE.format(code="C91. 0")),
    (
        "ICD bad secondary diagnosis",
        {"diagnoses": ["C91.0", "bad"]},
        "claims[0].diagnoses[1]",
        ICD_MESSAGE.format(code="bad"),
    ),
    ("unknown field", {"colour": "red"}, "claims[0].colour", "unknown field"),
    ("missing total", {"total": MISSING}, "claims[0].total", "is required"),
    ("missing person", {"person_id": MISSING}, "claims[0].person_id", "is required"),
    (
        "empty diagnoses",
        {"diagnoses": []},
        "claims[0].diagnoses",
        "List should have at least 1 item after validation, not 0",
    ),
    (
        "grant with three decimals",
        {"grants": [{"payer": "Red Cross", "amount": "1.001"}]},
        "claims[0].grants[0].amount",
        "amount 1.001 has more than two decimal places; amounts are in yuan to the fen",
    ),
    (
        "grant with an unknown field",
        {"grants": [{"payer": "Red Cross", "amount": "100", "note": "x"}]},
        "claims[0].grants[0].note",
        "unknown field",
    ),
    (
        "impossible date",
        {"admitted_on": "2014-02-30"},
        "claims[0].admitted_on",
        "Input should be a valid date or datetime, day value is outside expected range",
    ),
    ("empty claim id", {"claim_id": ""}, "claims[0].claim_id", "String should have at least 1 character"),
    (
        "claim id with a blank",
        {"claim_id": "C 1"},
        "claims[0].claim_id",
        "String should match pattern '^[0-9A-Za-z][0-9A-Za-z._:/-]*$'",
    ),
]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [case[1:] for case in BAD_CLAIMS],
    ids=[case[0] for case in BAD_CLAIMS],
)
def test_bad_claim_is_refused_with_field_and_message(changes: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(ClaimError) as err:
        parse_claim(broken(**changes), "claims[0]")
    assert err.value.errors == (FieldError(field, message),)
    assert str(err.value) == f"{field}: {message}"


def test_paths_without_a_prefix_start_at_the_field() -> None:
    with pytest.raises(ClaimError) as err:
        parse_claim(broken(total="-5"))
    assert err.value.errors == (FieldError("total", "amount '-5' must not be negative"),)
    with pytest.raises(ClaimError) as err:
        parse_claim(broken(discharged_on="2014-02-01"))
    assert [e.field for e in err.value.errors] == ["discharged_on"]
    with pytest.raises(ClaimError) as err:
        parse_claim(["not", "a", "claim"])
    assert [e.field for e in err.value.errors] == ["claim"]


@pytest.mark.parametrize(
    ("changes", "field", "value"),
    [
        ({"diagnoses": ["c91.0"]}, "diagnoses", ["C91.0"]),
        ({"diagnoses": [" q21.0 ", "C92.000x001"]}, "diagnoses", ["Q21.0", "C92.000x001"]),
        (
            {"total": 12.5, "fully_self_paid": 0, "over_limit_self_paid": 0, "pre_self_paid": 0},
            "total",
            Decimal("12.50"),
        ),
        ({"total": 10000}, "total", Decimal("10000.00")),
        ({"total": "99999999.99"}, "total", Decimal("99999999.99")),
        ({"discharged_on": "2014-03-01"}, "discharged_on", VALID["admitted_on"]),  # same-day discharge is fine
        ({"fully_self_paid": "9699.50"}, "fully_self_paid", Decimal("9699.50")),  # in-scope exactly 0
    ],
    ids=["lower-case ICD", "blanks and extension", "exact float", "int", "largest amount", "same day", "in-scope 0"],
)
def test_accepted_and_normalised(changes: dict[str, object], field: str, value: object) -> None:
    claim = parse_claim(broken(**changes))
    got = getattr(claim, field)
    assert (str(got) if field == "discharged_on" else got) == value


def test_in_scope_zero_is_accepted() -> None:
    assert parse_claim(broken(fully_self_paid="9699.50")).in_scope == Decimal("0.00")


def test_every_problem_of_one_claim_is_reported_at_once() -> None:
    data = broken(total="1.234", category="poor", hospital_level=4)
    with pytest.raises(ClaimError) as err:
        parse_claim(data, "claims[0]")
    assert len(err.value.errors) == 3
    assert {e.field: e.message for e in err.value.errors} == {
        "claims[0].total": "amount 1.234 has more than two decimal places; amounts are in yuan to the fen",
        "claims[0].category": CATEGORY_MESSAGE,
        "claims[0].hospital_level": "Input should be 1, 2 or 3",
    }


def test_many_field_problems_in_one_claim() -> None:
    data = broken(total="-1", fully_self_paid="1e3", diagnoses=[], colour="red", person_id=MISSING)
    with pytest.raises(ClaimError) as err:
        parse_claim(data, "claims[2]")
    assert sorted(e.field for e in err.value.errors) == [
        "claims[2].colour",
        "claims[2].diagnoses",
        "claims[2].fully_self_paid",
        "claims[2].person_id",
        "claims[2].total",
    ]


# Found while writing these tests, fixed in c328d08: the cross-field checks were one joined FieldError on
# the whole claim, skipped whenever a field failed; diagnoses stopped at the first bad code, without its
# index; an amount of 27+ digits raised decimal.InvalidOperation out of parse_claim.


def test_each_cross_field_problem_is_its_own_error() -> None:
    data = broken(discharged_on="2014-02-01", fully_self_paid="9900")
    with pytest.raises(ClaimError) as err:
        parse_claim(data, "claims[0]")
    assert err.value.errors == (
        FieldError("claims[0].discharged_on", "2014-02-01 is before admitted_on 2014-03-01"),
        FieldError(
            "claims[0].total",
            "fully_self_paid + over_limit_self_paid + pre_self_paid (10200.50) exceeds total (10000.00): "
            "the in-scope amount would be negative",
        ),
    )


def test_cross_field_problem_reported_with_field_problems() -> None:
    data = broken(discharged_on="2014-02-01", total="1.234", category="poor")
    with pytest.raises(ClaimError) as err:
        parse_claim(data, "claims[0]")
    assert sorted(e.field for e in err.value.errors) == [
        "claims[0].category",
        "claims[0].discharged_on",
        "claims[0].total",
    ]
    # The bad total is reported once, by its own rule; the in-scope check is skipped for it.
    assert [e.message for e in err.value.errors if e.field == "claims[0].total"] == [
        "amount 1.234 has more than two decimal places; amounts are in yuan to the fen"
    ]


def test_in_scope_check_with_a_bad_self_paid_part_reports_only_that_part() -> None:
    with pytest.raises(ClaimError) as err:
        parse_claim(broken(total="100", fully_self_paid="-1", over_limit_self_paid="500"), "claims[0]")
    assert err.value.errors == (FieldError("claims[0].fully_self_paid", "amount '-1' must not be negative"),)


def test_each_bad_diagnosis_is_reported_with_its_index() -> None:
    with pytest.raises(ClaimError) as err:
        parse_claim(broken(diagnoses=["XYZ", "C91.0", "C9"]), "claims[0]")
    assert err.value.errors == (
        FieldError("claims[0].diagnoses[0]", ICD_MESSAGE.format(code="XYZ")),
        FieldError("claims[0].diagnoses[2]", ICD_MESSAGE.format(code="C9")),
    )


def test_absurdly_large_amount_is_a_claim_error() -> None:
    with pytest.raises(ClaimError) as err:
        parse_claim(broken(total="1" * 40), "claims[0]")
    assert err.value.errors == (
        FieldError("claims[0].total", f"amount {'1' * 40} exceeds the largest accepted amount, 99999999.99 yuan"),
    )


def test_grants_adding_up_beyond_the_largest_amount() -> None:
    grants = [{"payer": f"F{i}", "amount": "60000000"} for i in range(2)]
    with pytest.raises(ClaimError) as err:
        parse_claim(broken(grants=grants), "claims[0]")
    assert err.value.errors == (
        FieldError("claims[0].grants", "grants add up to more than the largest accepted amount"),
    )


# ---------------------------------------------------------------------------------------------------------
# JSON decoding keeps number literals as text, so the amount rules see what was written


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("1e3", "amount '1e3' uses exponent notation; write plain digits like 1000.00"),
        ("12.123", "amount 12.123 has more than two decimal places; amounts are in yuan to the fen"),
        ("-5", "amount -5 must not be negative"),
    ],
)
def test_json_number_literals_are_judged_as_written(literal: str, expected: str) -> None:
    text = json.dumps(broken(total="PLACEHOLDER")).replace('"PLACEHOLDER"', literal)
    with pytest.raises(ClaimError) as err:
        parse_claim(decode_json(text), "claims[0]")
    assert err.value.errors == (FieldError("claims[0].total", expected),)


def test_json_decimal_literal_is_exact() -> None:
    text = json.dumps(broken(total="PLACEHOLDER")).replace('"PLACEHOLDER"', "12000.10")
    assert decode_json(text)["total"] == "12000.10"
    assert parse_claim(decode_json(text)).total == Decimal("12000.10")


# ---------------------------------------------------------------------------------------------------------
# A batch: parse_claims keeps the good claims and returns every problem


def test_duplicate_claim_ids_across_a_batch() -> None:
    items = [broken(claim_id="A"), broken(claim_id="B"), broken(claim_id="A"), broken(claim_id="B")]
    claims, errors = parse_claims(items)
    assert [c.claim_id for c in claims] == ["A", "B"]
    assert errors == [
        FieldError("claims[2].claim_id", "'A' appears twice"),
        FieldError("claims[3].claim_id", "'B' appears twice"),
    ]


def test_batch_reports_every_bad_claim_with_its_index() -> None:
    items = [broken(claim_id="A"), broken(claim_id="B", total="-5", hospital_level=4), broken(claim_id="A"), "x"]
    claims, errors = parse_claims(items)
    assert [c.claim_id for c in claims] == ["A"]
    assert [e.field for e in errors] == [
        "claims[1].hospital_level",
        "claims[1].total",
        "claims[2].claim_id",
        "claims[3]",
    ]
    assert errors[2].message == "'A' appears twice"


# ---------------------------------------------------------------------------------------------------------
# Nothing is computed for a batch with a bad claim


def test_no_settlement_when_any_claim_is_bad(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI validates the whole file before it settles anything: one bad claim and the good one next to
    it are not settled either (the engine is never called)."""
    from typer.testing import CliRunner

    from doudi import cli, services

    library = tmp_path / "library"
    (library / "diseases").mkdir(parents=True)
    shutil.copy(POLICY_FILE, library)
    shutil.copy(DISEASE_FILE, library / "diseases")
    claims_file = tmp_path / "claims.json"
    claims_file.write_text(json.dumps({"claims": [broken(claim_id="OK"), broken(claim_id="BAD", total="1.234")]}))

    calls: list[object] = []

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(args)
        raise AssertionError("settle must not be reached")

    monkeypatch.setattr(services, "settle", spy)
    result = CliRunner().invoke(
        cli.app, ["quote", str(claims_file), "--policy", "unit-engine", "--library", str(library)]
    )
    assert result.exit_code == 1
    assert "claims[1].total: amount 1.234 has more than two decimal places" in result.output
    assert calls == []


# ---------------------------------------------------------------------------------------------------------
# A claim outside the policy's dates


def _claims(*changes: dict[str, object]) -> list[Claim]:
    return [parse_claim(broken(claim_id=f"K{i}", **c)) for i, c in enumerate(changes)]


def test_settle_refuses_a_claim_discharged_outside_the_policy(plan: Plan) -> None:
    claims = _claims(
        {"admitted_on": "2013-12-20", "discharged_on": "2013-12-31"},
        {},
        {"admitted_on": "2014-12-30", "discharged_on": "2015-01-01"},
    )
    with pytest.raises(ClaimError) as err:
        settle(plan, ClaimBatch.from_claims(claims))
    assert err.value.errors == (
        FieldError(
            "claims[0].discharged_on",
            "2013-12-31 is outside unit-engine@1 (in force 2014-01-01 to 2014-12-31); "
            "the discharge date picks the policy",
        ),
        FieldError(
            "claims[2].discharged_on",
            "2015-01-01 is outside unit-engine@1 (in force 2014-01-01 to 2014-12-31); "
            "the discharge date picks the policy",
        ),
    )


def test_settle_names_the_callers_index_even_out_of_settlement_order(plan: Plan) -> None:
    # claim 0 is settled after claim 1 (later discharge), but errors use the caller's positions.
    claims = _claims({"admitted_on": "2014-12-30", "discharged_on": "2015-01-02"}, {})
    with pytest.raises(ClaimError) as err:
        settle(plan, ClaimBatch.from_claims(claims))
    assert [e.field for e in err.value.errors] == ["claims[0].discharged_on"]


@pytest.mark.parametrize("day", ["2014-01-01", "2014-12-31"])
def test_settle_accepts_the_first_and_last_day(plan: Plan, day: str) -> None:
    claims = _claims({"admitted_on": day, "discharged_on": day})
    result = settle(plan, ClaimBatch.from_claims(claims))
    assert int(result.fund_paid[0]) > 0
