"""Claims: one settlement's facts (settlement-rules.md §2), validated, and a batch of them as columns.

A claim from a billing desk and a province-year of claims from the simulator become the same thing, a
`ClaimBatch` of numpy columns (one claim is a batch of one), so that both go through one engine.
Validation returns every problem of a claim at once, each naming its field.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from settlement.codes import (
    CATEGORY_CODE,
    LEVEL_CODE,
    SCHEME_CODE,
    VISIT_CODE,
    Category,
    HospitalLevel,
    Scheme,
    VisitType,
)
from settlement.diseases import normalise_icd10
from settlement.errors import ClaimError, FieldError, field_errors
from settlement.money import (
    MAX_AMOUNT_FEN,
    RATIO_SCALE,
    MoneyError,
    fen_from_decimal,
    parse_ratio,
    parse_yuan,
    ratio_decimal,
    ratio_from_decimal,
    round_div,
    yuan,
)

Int64Array = npt.NDArray[np.int64]


Yuan = Annotated[Decimal, BeforeValidator(parse_yuan)]
"""An amount in yuan to the fen: text like "1234.56" on the way in, a two-place Decimal once validated."""

Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z][0-9A-Za-z._:/-]*$")]


class Grant(BaseModel):
    """Outside money already granted for this stay, e.g. a Red Cross fund (payer, amount)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    payer: Annotated[str, Field(min_length=1, max_length=100)]
    amount: Yuan


def _quantity(value: object) -> Decimal:
    """A positive quantity with at most four decimals (0.5 g, 3 days, 12 tablets)."""
    ten_thousandths = _ten_thousandths(value)
    if ten_thousandths == 0:
        raise ValueError("quantity must be above 0")
    return Decimal(ten_thousandths) / QUANTITY_SCALE


QUANTITY_SCALE = 10_000


def _ten_thousandths(value: object) -> int:
    """Text or a number with at most four decimals, not negative -> ten-thousandths (no upper bound)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise ValueError("must be a decimal number written as text or an integer")
    try:
        number = Decimal(str(value).strip())
    except ArithmeticError:
        raise ValueError(f"{value!r} is not a decimal number") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"{value!r} must be a finite number, not negative")
    scaled = number * QUANTITY_SCALE
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value!r} has more than four decimal places")
    if scaled > 10**12:
        raise ValueError(f"{value!r} is too large")
    return int(scaled)


def _share(value: object) -> Decimal:
    return ratio_decimal(parse_ratio(value))


Share = Annotated[Decimal, BeforeValidator(_share)]
"""A ratio in [0, 1] with at most four decimals."""


class LineItem(BaseModel):
    """One line of the bill (费用明细). Its class decides who pays: 甲 (A) is fully in the policy scope; 乙 (B)
    is in scope after the patient's first share (先行自付, `self_pay_ratio`); 丙 (C) is outside every list
    and fully self-paid. Above a price limit (最高限价) the excess is over-limit self-pay (超限价自费)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Annotated[str, Field(min_length=1, max_length=200)]
    item_class: Literal["A", "B", "C"]
    quantity: Annotated[Decimal, BeforeValidator(_quantity)]
    unit_price: Yuan
    price_limit: Yuan | None = None
    self_pay_ratio: (
        Annotated[Decimal, BeforeValidator(lambda v: ratio_decimal(parse_ratio(v, "self_pay_ratio")))] | None
    ) = None

    @model_validator(mode="after")
    def _b_needs_share(self) -> LineItem:
        if self.item_class == "B" and self.self_pay_ratio is None:
            raise ValueError("a class B (乙类) item needs self_pay_ratio, the patient's first share")
        if self.item_class != "B" and self.self_pay_ratio is not None:
            raise ValueError("self_pay_ratio applies to class B (乙类) items only")
        return self


def amounts_from_items(items: Sequence[LineItem]) -> dict[str, Decimal]:
    """total, fully_self_paid, over_limit_self_paid and pre_self_paid of an itemised bill. Each product is
    rounded once, half up, to the fen (a bill's lines are priced as the hospital prints them)."""
    total = fully = over = pre = 0
    for item in items:
        quantity = int(item.quantity * QUANTITY_SCALE)
        price = fen_from_decimal(item.unit_price)
        amount = round_div(price * quantity, QUANTITY_SCALE, "half_up")
        total += amount
        if item.item_class == "C":
            fully += amount
            continue
        excess = 0
        if item.price_limit is not None and price > fen_from_decimal(item.price_limit):
            excess = round_div((price - fen_from_decimal(item.price_limit)) * quantity, QUANTITY_SCALE, "half_up")
        over += excess
        if item.item_class == "B":
            assert item.self_pay_ratio is not None  # the model requires it
            pre += round_div((amount - excess) * ratio_from_decimal(item.self_pay_ratio), RATIO_SCALE, "half_up")
    names = ("total", "fully_self_paid", "over_limit_self_paid", "pre_self_paid")
    return {name: yuan(fen) for name, fen in zip(names, (total, fully, over, pre), strict=True)}


class Claim(BaseModel):
    """One settlement: one inpatient stay or one outpatient visit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    claim_id: Identifier
    person_id: Identifier
    household_id: Identifier
    insurance_scheme: Scheme
    category: Category
    hospital_id: Identifier
    hospital_level: HospitalLevel
    visit_type: VisitType
    admitted_on: dt.date
    discharged_on: dt.date
    settled_at: dt.datetime | None = None
    diagnoses: Annotated[list[Annotated[str, AfterValidator(normalise_icd10)]], Field(min_length=1, max_length=50)]
    total: Yuan
    fully_self_paid: Yuan = Decimal("0.00")
    over_limit_self_paid: Yuan = Decimal("0.00")
    pre_self_paid: Yuan = Decimal("0.00")
    third_party_liability: StrictBool = False
    assistance_approval: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    grants: Annotated[list[Grant], Field(max_length=20)] = []
    line_items: Annotated[list[LineItem], Field(min_length=1, max_length=2000)] | None = None
    """When the bill is itemised, the four amounts are derived from its lines (and must match if given)."""

    @field_validator("settled_at")
    @classmethod
    def _naive_time(cls, value: dt.datetime | None) -> dt.datetime | None:
        # Settlement times are local (Beijing) wall-clock times, as the national platform writes them.
        return value.replace(tzinfo=None) if value is not None else None

    @model_validator(mode="before")
    @classmethod
    def _amounts_from_items(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("line_items") is not None and "total" not in data:
            try:
                items = [LineItem.model_validate(item) for item in data["line_items"]]
            except (ValidationError, TypeError):
                return data  # the field's own validation reports what is wrong with the lines
            derived = {name: str(value) for name, value in amounts_from_items(items).items()}
            return {**data, **derived}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Claim:
        fields = ("admitted_on", "discharged_on", "settled_at", *_AMOUNT_FIELDS, "grants", "line_items")
        problems = cross_field_problems({name: getattr(self, name) for name in fields})
        if problems:
            raise ValueError("; ".join(str(p) for p in problems))
        return self

    @property
    def in_scope(self) -> Decimal:
        """符合政策范围金额 inscp_scp_amt = total − fully_self_paid − over_limit_self_paid − pre_self_paid."""
        return self.total - self.fully_self_paid - self.over_limit_self_paid - self.pre_self_paid

    @property
    def settlement_time(self) -> dt.datetime:
        return self.settled_at or dt.datetime.combine(self.discharged_on, dt.time())

    def as_json(self) -> dict[str, Any]:
        """The claim as it is written in claim files (amounts as yuan text)."""
        return self.model_dump(mode="json", exclude_none=True)


def cross_field_problems(data: Mapping[str, Any]) -> list[FieldError]:
    """Rules that tie fields together, each reported on its own field. A field that is itself invalid is
    left out of these checks (its own error says why), so they run even when other fields failed."""
    problems: list[FieldError] = []
    admitted, discharged = _day(data.get("admitted_on")), _day(data.get("discharged_on"))
    if admitted is not None and discharged is not None and discharged < admitted:
        problems.append(FieldError("discharged_on", f"{discharged} is before admitted_on {admitted}"))
    settled = _moment(data.get("settled_at"))
    if settled is not None and admitted is not None and settled.date() < admitted:
        # The settlement date decides the category; a settlement cannot come before the stay began.
        problems.append(FieldError("settled_at", f"{settled} is before admitted_on {admitted}"))
    total = _yuan(data.get("total"))
    parts = [_yuan(data.get(name, "0")) for name in _SELF_PAID]
    if total is not None and all(p is not None for p in parts):
        self_paid = sum((p for p in parts if p is not None), Decimal(0))
        if self_paid > total:
            problems.append(
                FieldError(
                    "total",
                    f"fully_self_paid + over_limit_self_paid + pre_self_paid ({self_paid}) exceeds total "
                    f"({total}): the in-scope amount would be negative",
                )
            )
    items = data.get("line_items")
    if isinstance(items, list) and items and total is not None:
        try:
            derived = amounts_from_items([LineItem.model_validate(item) for item in items])
        except (ValidationError, TypeError):
            derived = None  # the lines' own errors say what is wrong
        if derived is not None:
            given = {name: _yuan(data.get(name, "0")) for name in derived}
            differ = [f"{k} {given[k]} (the lines give {v})" for k, v in derived.items() if given[k] != v]
            if differ:
                problems.append(FieldError("line_items", "the amounts do not match the lines: " + ", ".join(differ)))
    grants = data.get("grants")
    if isinstance(grants, list):
        amounts = [_yuan(g.get("amount") if isinstance(g, Mapping) else getattr(g, "amount", None)) for g in grants]
        granted = sum((a for a in amounts if a is not None), Decimal(0))
        if fen_from_decimal(granted) > MAX_AMOUNT_FEN:
            problems.append(FieldError("grants", "grants add up to more than the largest accepted amount"))
    return problems


_SELF_PAID = ("fully_self_paid", "over_limit_self_paid", "pre_self_paid")
_AMOUNT_FIELDS = ("total", *_SELF_PAID)


def _yuan(raw: object) -> Decimal | None:
    if isinstance(raw, Decimal) and raw.is_finite() and raw.as_tuple().exponent == -2 and raw >= 0:
        return raw  # the model's own two-place amounts: no need to parse them again
    try:
        return None if raw is None else parse_yuan(raw)
    except MoneyError:
        return None


def _moment(raw: object) -> dt.datetime | None:
    if isinstance(raw, dt.datetime):
        return raw.replace(tzinfo=None)
    try:
        return dt.datetime.fromisoformat(str(raw)).replace(tzinfo=None) if raw is not None else None
    except ValueError:
        return None


def _day(raw: object) -> dt.date | None:
    if isinstance(raw, dt.date):
        return raw
    try:
        return dt.date.fromisoformat(str(raw)) if raw is not None else None
    except ValueError:
        return None


def parse_claim(data: object, where: str = "") -> Claim:
    """Validate one claim from decoded JSON; raise ClaimError listing every problem, each on its field."""
    try:
        return Claim.model_validate(data)
    except ValidationError as err:
        errors = [e for e in field_errors(err, where) if e.field != (where or "claim")]
        if isinstance(data, Mapping) and data.get("line_items") is not None:
            # An itemised bill whose lines are invalid has no derived amounts: say so once, on the lines.
            derived_fields = {f"{where}.{name}" if where else name for name in _AMOUNT_FIELDS}
            errors = [e for e in errors if not (e.field in derived_fields and e.message == "is required")]
        whole = [e for e in field_errors(err, where) if e.field == (where or "claim")]
        if isinstance(data, Mapping):
            errors += [
                FieldError(f"{where}.{p.field}" if where else p.field, p.message) for p in cross_field_problems(data)
            ]
        elif not errors:
            errors = whole
        raise ClaimError(errors or whole) from None


def parse_claims(items: Iterable[object]) -> tuple[list[Claim], list[FieldError]]:
    """Validate many claims; a claim with any problem is left out and all problems are returned."""
    claims: list[Claim] = []
    errors: list[FieldError] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        try:
            claim = parse_claim(item, f"claims[{i}]")
        except ClaimError as err:
            errors.extend(err.errors)
            continue
        if claim.claim_id in seen:
            errors.append(FieldError(f"claims[{i}].claim_id", f"{claim.claim_id!r} appears twice"))
            continue
        seen.add(claim.claim_id)
        claims.append(claim)
    return claims, errors


def decode_json(text: str) -> Any:
    """Decode JSON keeping number literals as their text, so that 12.5 stays exact and 1e3 is caught by
    the amount rules instead of silently becoming the binary float 1000.0."""
    return json.loads(text, parse_float=str, object_pairs_hook=_no_duplicate_keys)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


def _factorise(values: Sequence[str]) -> tuple[Int64Array, npt.NDArray[np.object_]]:
    if len(values) < 64:
        index: dict[str, int] = {}
        codes = np.fromiter((index.setdefault(v, len(index)) for v in values), np.int64, len(values))
        return codes, np.array(list(index), dtype=object)
    codes_, uniques = pd.factorize(np.asarray(values, dtype=object))
    return codes_.astype(np.int64), np.asarray(uniques, dtype=object)


@dataclass(frozen=True, slots=True, eq=False)
class ClaimBatch:
    """Claims as columns. Ids are factorised once; diagnoses are indices into the distinct codes."""

    claim_id: npt.NDArray[np.object_]
    person: Int64Array
    person_ids: npt.NDArray[np.object_]
    household: Int64Array
    household_ids: npt.NDArray[np.object_]
    scheme: Int64Array
    category: Int64Array
    level: Int64Array
    visit: Int64Array
    discharged_on: npt.NDArray[np.datetime64]  # day precision
    settled_at: npt.NDArray[np.datetime64]  # microsecond precision
    total: Int64Array
    fully_self_paid: Int64Array
    over_limit_self_paid: Int64Array
    pre_self_paid: Int64Array
    third_party: npt.NDArray[np.bool_]
    approval: npt.NDArray[np.bool_]
    grant_total: Int64Array
    dx_codes: tuple[str, ...]  # distinct diagnosis codes
    dx_principal: Int64Array  # index into dx_codes
    dx_claim: Int64Array  # every diagnosis as (claim, code) pairs, for "any diagnosis" lists
    dx_code: Int64Array
    claims: tuple[Claim, ...] | None = None  # the validated records, when the batch was built from them

    def __len__(self) -> int:
        return len(self.total)

    @property
    def in_scope(self) -> Int64Array:
        result: Int64Array = self.total - self.fully_self_paid - self.over_limit_self_paid - self.pre_self_paid
        return result

    @classmethod
    def from_claims(cls, claims: Sequence[Claim]) -> ClaimBatch:
        n = len(claims)
        person, person_ids = _factorise([c.person_id for c in claims])
        household, household_ids = _factorise([c.household_id for c in claims])
        code_index: dict[str, int] = {}
        dx_claim: list[int] = []
        dx_code: list[int] = []
        principal = np.empty(n, np.int64)
        for i, claim in enumerate(claims):
            for j, code in enumerate(claim.diagnoses):
                k = code_index.setdefault(code, len(code_index))
                if j == 0:
                    principal[i] = k
                dx_claim.append(i)
                dx_code.append(k)

        # Every integer column in one array (one row each): one conversion instead of a dozen, which is
        # most of the cost for the desk's batch of one.
        rows = np.array(
            [
                [SCHEME_CODE[c.insurance_scheme] for c in claims],
                [CATEGORY_CODE[c.category] for c in claims],
                [LEVEL_CODE[c.hospital_level] for c in claims],
                [VISIT_CODE[c.visit_type] for c in claims],
                [fen_from_decimal(c.total) for c in claims],
                [fen_from_decimal(c.fully_self_paid) for c in claims],
                [fen_from_decimal(c.over_limit_self_paid) for c in claims],
                [fen_from_decimal(c.pre_self_paid) for c in claims],
                [fen_from_decimal(sum((g.amount for g in c.grants), Decimal(0))) for c in claims],
                [c.third_party_liability for c in claims],
                [c.assistance_approval is not None for c in claims],
            ],
            dtype=np.int64,
        ).reshape(11, n)
        scheme, category, level, visit, total, fully, over, pre, granted, third, approval = rows
        return cls(
            claim_id=np.array([c.claim_id for c in claims], dtype=object),
            person=person,
            person_ids=person_ids,
            household=household,
            household_ids=household_ids,
            scheme=scheme,
            category=category,
            level=level,
            visit=visit,
            discharged_on=np.array([c.discharged_on for c in claims], dtype="datetime64[D]"),
            settled_at=np.array([c.settlement_time for c in claims], dtype="datetime64[us]"),
            total=total,
            fully_self_paid=fully,
            over_limit_self_paid=over,
            pre_self_paid=pre,
            third_party=third != 0,
            approval=approval != 0,
            grant_total=granted,
            dx_codes=tuple(code_index),
            dx_principal=principal,
            dx_claim=np.array(dx_claim, np.int64),
            dx_code=np.array(dx_code, np.int64),
            claims=tuple(claims),
        )

    def take(self, order: Int64Array, with_ids: bool = True) -> ClaimBatch:
        """The same claims in another order (the engine sorts once). Without `with_ids` the copy is a working
        copy for the engine: claim ids and records are not carried (gathering millions of Python strings
        costs more than the whole settlement)."""
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        pick = {
            name: getattr(self, name)[order]
            for name in (
                "person", "household", "scheme", "category", "level", "visit",
                "discharged_on", "settled_at", "total", "fully_self_paid", "over_limit_self_paid",
                "pre_self_paid", "third_party", "approval", "grant_total", "dx_principal",
            )
        }  # fmt: skip
        return ClaimBatch(
            claim_id=self.claim_id[order] if with_ids else np.zeros(0, dtype=object),
            person_ids=self.person_ids,
            household_ids=self.household_ids,
            dx_codes=self.dx_codes,
            dx_claim=inverse[self.dx_claim],
            dx_code=self.dx_code,
            claims=tuple(self.claims[i] for i in order) if self.claims is not None and with_ids else None,
            **pick,
        )
