"""The policy schema: what a policy file may say, checked field by field.

A policy is dated, referenced data (docs/policy-format.md explains it for policy staff). Every parameter
block carries `ref`, the key of an entry in the file's `references` table: the document, the article and
where to read it, or `illustrative: true` with the reason a number was chosen. Cross-file checks (does the
reference, the disease list, the included policy exist; do effective dates overlap) live in `library.py`.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from settlement.codes import Category, HospitalLevel, NhsaFundField, Scheme, Scope, Stage, VisitType
from settlement.diseases import normalise_icd10
from settlement.money import Rounding, parse_ratio, parse_yuan, ratio_decimal

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=80)]


def _text(value: object) -> object:
    """YAML reads `version: 2014` or `fund_pay_type: 390100` as a number; take it as the text it was."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _region(value: object) -> object:
    """A region written without quotes loses leading zeros (000000 -> 0); put them back."""
    return f"{value:06d}" if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**6 else value


def _ratio(value: object) -> Decimal:
    return ratio_decimal(parse_ratio(value))


def _cap(value: object) -> Decimal | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    return parse_yuan(value)


Amount = Annotated[Decimal, BeforeValidator(parse_yuan)]
"""Yuan to the fen, written as text or an integer ("600", 600, "12000.50")."""
Ratio = Annotated[Decimal, BeforeValidator(_ratio)]
"""A decimal in [0, 1] with at most four places ("0.6", "0.655")."""
CapAmount = Annotated[Decimal | None, BeforeValidator(_cap)]
"""Yuan, or `none` for no cap (Meihekou 2014 abolished its cap: 取消了救助封顶线)."""
IcdCode = Annotated[str, AfterValidator(normalise_icd10)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Reference(Model):
    """Where a parameter comes from. An invented number must say so (`illustrative`) and why (`note`)."""

    document: Annotated[str, Field(min_length=1)]
    article: str | None = None
    url: str | None = None
    illustrative: bool = False
    note: str | None = None

    @model_validator(mode="after")
    def _illustrative_needs_reason(self) -> Reference:
        if self.illustrative and not self.note:
            raise ValueError("an illustrative reference must say why in `note`")
        return self


class AmountTable(Model):
    """An amount with overrides: a category's value wins over a hospital level's, which wins over default."""

    default: Amount
    by_level: dict[HospitalLevel, Amount] = {}
    by_category: dict[Category, Amount] = {}
    ref: str


class CapTable(Model):
    default: CapAmount
    by_level: dict[HospitalLevel, CapAmount] = {}
    by_category: dict[Category, CapAmount] = {}
    ref: str


class Band(Model):
    """One band of a banded (分段累进) ratio over the year-to-date base above the annual deductible."""

    from_: Annotated[Amount, Field(alias="from")]
    to: Amount | None = None
    ratio: Ratio


def _bands_in_order(bands: list[Band] | None) -> list[Band] | None:
    if bands is None:
        return None
    if not bands:
        raise ValueError("bands must not be empty")
    problems = []
    if bands[0].from_ != 0:
        problems.append(f"the first band must start at 0, not {bands[0].from_}")
    for i, band in enumerate(bands):
        if band.to is not None and band.to <= band.from_:
            problems.append(f"band {i} ends at {band.to}, not above its start {band.from_}")
        if i + 1 < len(bands):
            following = bands[i + 1]
            if band.to is None:
                problems.append(f"band {i} is open-ended but band {i + 1} follows it")
            elif following.from_ != band.to:
                problems.append(
                    f"bands out of order: band {i + 1} starts at {following.from_} but band {i} ends at {band.to}"
                )
    if bands[-1].to is not None:
        problems.append("the last band must be open-ended (no `to`)")
    for i in range(1, len(bands)):
        if bands[i].ratio < bands[i - 1].ratio:
            # Falling bands would let a lower deductible or a category change pay a person less.
            problems.append(
                f"bands must be progressive (分段累进): band {i} has ratio {bands[i].ratio}, "
                f"below band {i - 1}'s {bands[i - 1].ratio}"
            )
    if problems:
        raise ValueError("; ".join(problems))
    return bands


class RatioTable(Model):
    """Either a flat ratio with overrides by level and category, or bands over the year-to-date base."""

    default: Ratio | None = None
    by_level: dict[HospitalLevel, Ratio] = {}
    by_category: dict[Category, Ratio] = {}
    bands: Annotated[list[Band] | None, AfterValidator(_bands_in_order)] = None
    ref: str

    @model_validator(mode="after")
    def _one_form(self) -> RatioTable:
        if (self.default is None) == (self.bands is None):
            raise ValueError("give either `default` (a flat ratio) or `bands`, not both and not neither")
        if self.bands is not None and (self.by_level or self.by_category):
            raise ValueError("banded ratios take no by_level/by_category overrides; use a tilt instead")
        return self


class Deductible(Model):
    """起付线: deducted from each claim (`per_claim`) or once a year from the accumulator (`annual`)."""

    basis: Literal["per_claim", "annual"]
    default: Amount
    by_level: dict[HospitalLevel, Amount] = {}
    by_category: dict[Category, Amount] = {}
    later_admission_factor: Ratio | None = None
    ref: str

    @model_validator(mode="after")
    def _coherent(self) -> Deductible:
        if self.basis == "annual" and self.by_level:
            raise ValueError("an annual deductible cannot depend on the hospital level of one claim")
        if self.basis == "annual" and self.later_admission_factor is not None:
            raise ValueError("later_admission_factor applies to per-claim deductibles only")
        return self


class Caps(Model):
    """封顶线: what the fund pays at most on one claim, and in a year per accumulator."""

    per_claim: CapTable | None = None
    annual: CapTable | None = None


class Tilt(Model):
    """倾斜: better terms for some categories, e.g. 低保/特困: deductible halved, ratio +5 points, no cap."""

    categories: Annotated[list[Category], Field(min_length=1)]
    deductible_factor: Ratio | None = None
    ratio_add: Ratio | None = None
    ratio_max: Ratio = Decimal("1.0000")
    remove_caps: bool = False
    ref: str


class Eligibility(Model):
    """Who the fund pays for; an empty list or absent field means everyone."""

    schemes: list[Scheme] | None = None
    categories: list[Category] | None = None
    visit_types: list[VisitType] | None = None
    hospital_levels: list[HospitalLevel] | None = None
    excludes_third_party_liability: bool = False
    accepts_approval: bool = False
    """A claim carrying a civil-affairs approval reference is eligible whatever its category."""
    ref: str | None = None


class Parameters(Model):
    accumulator: str | None = None
    threshold: AmountTable | None = None
    deductible: Deductible | None = None
    ratio: RatioTable | None = None
    caps: Caps | None = None


class Bucket(Parameters):
    """A medical-assistance bucket: a disease list switches deductible, ratio and cap. A bucket without a
    list takes every claim that no earlier bucket took. Parameters it does not give come from the tier."""

    id: Slug
    name: str
    disease_list: str | None = None
    match: Literal["principal", "any"] = "principal"


class Tier(Parameters):
    """One fund in the waterfall."""

    id: Slug
    name: str
    stage: Stage
    fund_pay_type: Annotated[str, BeforeValidator(_text), Field(pattern=r"^[0-9A-Za-z]{1,10}$")]
    fund_name: str
    nhsa_field: NhsaFundField | None = None
    scope: Scope = "in_scope"
    basis: Literal["per_claim", "annual"] = "per_claim"
    eligibility: Eligibility = Eligibility()
    tilts: list[Tilt] = []
    buckets: list[Bucket] | None = None

    @model_validator(mode="after")
    def _coherent(self) -> Tier:
        problems = []
        if self.stage == "grants":
            given = [
                name
                for name in ("threshold", "deductible", "ratio", "caps", "accumulator", "buckets")
                if getattr(self, name) is not None
            ]
            if given or self.tilts:
                problems.append(f"a grants tier pays what was granted and takes no {', '.join(given) or 'tilts'}")
            if self.scope != "total":
                problems.append("a grants tier has scope `total`")
        else:
            for i, params in enumerate(self.parameter_sets()):
                where = "" if self.buckets is None else f"buckets[{i}]: "
                ratio = params.ratio
                if ratio is None:
                    problems.append(f"{where}a ratio is required")
                if self.basis == "per_claim":
                    if ratio is not None and ratio.bands is not None:
                        problems.append(f"{where}banded ratios need `basis: annual`")
                    if params.deductible is not None and params.deductible.basis == "annual":
                        problems.append(f"{where}an annual deductible needs `basis: annual`")
                else:
                    if ratio is not None and ratio.by_level:
                        problems.append(
                            f"{where}`basis: annual` sums a person's year across hospitals, so its ratio cannot "
                            "depend on one claim's hospital level (by_level); use `basis: per_claim`"
                        )
                    if params.caps is not None and params.caps.per_claim is not None:
                        problems.append(
                            f"{where}`basis: annual` computes on year-to-date sums; a per-claim cap would "
                            "break them, so it is not allowed"
                        )
                    if params.accumulator is None:
                        problems.append(f"{where}`basis: annual` needs an accumulator")
                if params.caps is not None and params.caps.annual is not None and params.accumulator is None:
                    problems.append(f"{where}an annual cap needs an accumulator")
            if self.buckets is not None and self.basis == "annual":
                by_key: dict[str, Parameters] = {}
                for i, params in enumerate(self.parameter_sets()):
                    first = by_key.setdefault(params.accumulator or "", params)
                    if (first.ratio, first.deductible) != (params.ratio, params.deductible):
                        problems.append(
                            f"buckets[{i}] shares accumulator {params.accumulator!r} with an earlier bucket but "
                            "has other bands or deductible; on year-to-date sums they must be the same, or give "
                            "the bucket its own accumulator"
                        )
            if self.buckets is not None:
                ids = [b.id for b in self.buckets]
                if len(set(ids)) != len(ids):
                    problems.append("bucket ids must be unique")
                for i, bucket in enumerate(self.buckets[:-1]):
                    if bucket.disease_list is None:
                        problems.append(
                            f"buckets[{i}] has no disease list, so it takes every claim and the buckets "
                            "after it would never be used"
                        )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def parameter_sets(self) -> list[Parameters]:
        """The effective parameters of each bucket (the tier's own when it has no buckets)."""
        if self.buckets is None:
            return [self]
        fields = ("accumulator", "threshold", "deductible", "ratio", "caps")
        return [
            Parameters(**{f: getattr(b, f) if getattr(b, f) is not None else getattr(self, f) for f in fields})
            for b in self.buckets
        ]


class AccumulatorDecl(Model):
    """A year-to-date figure kept per person or per household (temporary aid is per household)."""

    per: Literal["person", "household"]
    description: str | None = None


Region = Annotated[str, BeforeValidator(_region), Field(pattern=r"^[0-9]{6}$")]
MonthDay = Annotated[str, Field(pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]


class Policy(Model):
    """A dated policy for one region: its funds in payment order, each parameter with its source."""

    id: Slug
    version: Annotated[str, BeforeValidator(_text), Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z._-]*$", max_length=40)]
    title: str
    title_en: str | None = None
    region: Region
    """Administrative division code (行政区划代码), e.g. 220581 for Meihekou; 000000 for a national template."""
    valid_from: dt.date
    valid_until: dt.date | None = None
    rounding: Rounding = "half_up"
    policy_year_start: MonthDay = "01-01"
    illustrative: str | None = None
    """Why this whole policy is a sample and not a quotation, when it is one."""
    includes: list[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*@[0-9A-Za-z._-]+$")]] = []
    references: dict[str, Reference] = {}
    accumulators: dict[Slug, AccumulatorDecl] = {}
    tiers: Annotated[list[Tier], Field(validate_default=True)] = []

    @field_validator("valid_until")
    @classmethod
    def _ends_after_start(cls, value: dt.date | None, info: ValidationInfo) -> dt.date | None:
        start = info.data.get("valid_from")
        if value is not None and start is not None and value < start:
            raise ValueError(f"{value} is before valid_from {start}")
        return value

    @field_validator("tiers")
    @classmethod
    def _pays_something(cls, value: list[Tier], info: ValidationInfo) -> list[Tier]:
        if not value and not info.data.get("includes"):
            raise ValueError("a policy needs at least one tier or an included policy")
        return value

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"


class DiseaseEntry(Model):
    name: str
    name_en: str | None = None
    codes: list[IcdCode] = []
    ranges: list[tuple[IcdCode, IcdCode]] = []
    confirmed: bool = False
    """False until the codes are checked against the national diagnosis catalogue (医保疾病诊断分类与代码)."""
    note: str | None = None

    @model_validator(mode="after")
    def _something(self) -> DiseaseEntry:
        if not self.codes and not self.ranges:
            raise ValueError(f"{self.name}: give at least one code or range")
        for low, high in self.ranges:
            if high < low:
                raise ValueError(f"range [{low}, {high}] ends before it starts")
        return self


class DiseaseListFile(Model):
    """A shared disease list (e.g. the 27 catastrophic diseases), with where it comes from."""

    id: Slug
    title: str
    title_en: str | None = None
    reference: Reference
    entries: Annotated[list[DiseaseEntry], Field(min_length=1)]
