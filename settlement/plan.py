"""A settlement plan: a policy compiled into the lookup tables the engine runs on.

`policies/` turns dated, referenced YAML into a `Plan`; the engine never sees YAML or pydantic. Every table
is indexed by the small integer codes of `codes.py`: tables of shape (categories, levels) answer "what is
this parameter for a 低保 patient in a level-3 hospital", with every tilt already applied.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from settlement.codes import NhsaFundField, Scope, Stage
from settlement.diseases import DiseaseList
from settlement.money import Rounding

Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

Basis = Literal["per_claim", "annual", "grants"]
"""How a tier computes: per claim (each claim rounded on its own), annual (on year-to-date cumulative
amounts, so that banded ratios and annual deductibles never drift), or grants (outside money, paid last)."""

Per = Literal["person", "household"]

ADMISSIONS_KEY = "inpatient_admissions"
"""Built-in accumulator: inpatient admissions of a person in a policy year (first vs later admission)."""


@dataclass(frozen=True, slots=True)
class ClauseRef:
    """The policy text behind a parameter: which document, which article, where to read it."""

    parameter: str
    document: str
    article: str | None = None
    url: str | None = None
    illustrative: bool = False
    note: str | None = None


@dataclass(frozen=True, slots=True)
class AccumulatorSpec:
    key: str
    per: Per


@dataclass(frozen=True, slots=True, eq=False)
class BucketPlan:
    """One set of parameters of a tier: the whole tier, or one medical-assistance bucket.

    Amount tables are in fen, ratio tables in ten-thousandths; NO_CAP means uncapped. Every table is
    indexed by (category, hospital level), ratios also by band, so that one fancy-indexing pass gives
    each claim its parameters.
    """

    id: str
    name: str
    disease_list: DiseaseList | None
    match_any_diagnosis: bool
    accumulator: AccumulatorSpec | None
    threshold: Int64Array  # (c, l) trigger: the base must reach it or the tier pays nothing
    deductible_first: Int64Array  # (c, l) per-claim deductible, first inpatient admission of the year
    deductible_later: Int64Array  # (c, l) per-claim deductible, later admissions and other visits
    annual_deductible: Int64Array  # (c, l) consumed once a year from the accumulator's base
    band_low: Int64Array  # (b,) bands over the year-to-date base net of the annual deductible
    band_high: Int64Array  # (b,)
    ratio: Int64Array  # (c, l, b)
    claim_cap: Int64Array  # (c, l)
    annual_cap: Int64Array  # (c, l)
    references: tuple[ClauseRef, ...] = ()

    @property
    def banded(self) -> bool:
        return len(self.band_low) > 1


@dataclass(frozen=True, slots=True, eq=False, weakref_slot=True)
class TierPlan:
    id: str
    name: str
    stage: Stage
    fund_pay_type: str
    fund_name: str
    nhsa_field: NhsaFundField
    scope: Scope
    basis: Basis
    rounding: Rounding
    scheme_ok: BoolArray
    category_ok: BoolArray
    visit_ok: BoolArray
    level_ok: BoolArray
    approval_accepted: bool
    excludes_third_party: bool
    buckets: tuple[BucketPlan, ...]
    policy_id: str
    policy_version: str
    region: str
    references: tuple[ClauseRef, ...] = ()


@dataclass(frozen=True, slots=True, eq=False)
class Plan:
    """A whole waterfall, ready to run: the tiers in payment order."""

    policy_id: str
    version: str
    region: str
    title: str
    valid_from: dt.date
    valid_until: dt.date | None
    policy_year_start: tuple[int, int]  # (month, day)
    tiers: tuple[TierPlan, ...]
    disease_lists: dict[str, DiseaseList] = field(default_factory=dict)
