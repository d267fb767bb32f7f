"""The closed vocabularies of a claim and of a settlement, and their small integer codes.

The columnar engine stores each of these as an index into the tuple below, so that a policy's parameters
become small lookup tables indexed by (bucket, category, hospital level).
"""

from __future__ import annotations

from typing import Final, Literal, get_args

Scheme = Literal["employee", "resident", "none"]
"""Insurance scheme: 职工医保 (employee), 城乡居民医保 (resident), or uninsured."""

Category = Literal["tekun", "orphan", "severe_disability", "dibao", "low_income", "illness_poverty", "none"]
"""Assistance category (救助身份) on the settlement date: 特困人员 (extremely poor, supported by the state),
孤儿/事实无人抚养儿童 (orphans), 一二级重度残疾 (severe disability), 低保对象 (minimum-living-guarantee
families), 低保边缘/监测对象 (low-income, monitored), 因病致贫重病患者 (impoverished by illness)."""

VisitType = Literal["inpatient", "chronic_outpatient", "outpatient"]
"""住院 / 门诊慢特病 (chronic and special diseases in outpatient care) / 门诊."""

HospitalLevel = Literal[1, 2, 3]
"""一级 / 二级 / 三级 hospital."""

Stage = Literal["basic_insurance", "supplementary_insurance", "medical_assistance", "temporary_aid", "grants"]
"""Where a fund stands in the waterfall. The order is the law's (社会救助暂行办法 art. 29): insurance
first, then medical assistance (医疗救助), then temporary aid (临时救助), then outside grants."""

Scope = Literal["in_scope", "total"]

SCHEMES: Final[tuple[Scheme, ...]] = get_args(Scheme)
CATEGORIES: Final[tuple[Category, ...]] = get_args(Category)
VISIT_TYPES: Final[tuple[VisitType, ...]] = get_args(VisitType)
HOSPITAL_LEVELS: Final[tuple[HospitalLevel, ...]] = get_args(HospitalLevel)
STAGES: Final[tuple[Stage, ...]] = get_args(Stage)

SCHEME_CODE: Final = {name: i for i, name in enumerate(SCHEMES)}
CATEGORY_CODE: Final = {name: i for i, name in enumerate(CATEGORIES)}
VISIT_CODE: Final = {name: i for i, name in enumerate(VISIT_TYPES)}
LEVEL_CODE: Final = {level: i for i, level in enumerate(HOSPITAL_LEVELS)}
STAGE_RANK: Final = {name: i for i, name in enumerate(STAGES)}

# Why a tier paid nothing, or less than its formula. Code 0: it paid by its formula; "capped": it paid,
# but a cap (per claim or what was left of the annual cap) held the payment down.
REASONS: Final[tuple[str, ...]] = (
    "paid",
    "capped",
    "not_insured",
    "scheme_not_covered",
    "visit_type_not_covered",
    "hospital_level_not_covered",
    "category_not_eligible",
    "third_party_liability",
    "disease_not_listed",
    "nothing_left",
    "below_threshold",
    "below_deductible",
    "no_grant",
    "cap_reached",
)
REASON_CODE: Final = {name: i for i, name in enumerate(REASONS)}
# Reasons that mean the tier does not apply to the claim at all (as opposed to applying and paying 0).
EXCLUSIONS: Final = frozenset(
    {
        "not_insured",
        "scheme_not_covered",
        "visit_type_not_covered",
        "hospital_level_not_covered",
        "category_not_eligible",
        "third_party_liability",
        "disease_not_listed",
    }
)

# The national platform's setlinfo money fields a fund's payment may be counted in.
NHSA_FUND_FIELDS: Final = (
    "hifp_pay",
    "cvlserv_pay",
    "hifes_pay",
    "hifmi_pay",
    "hifob_pay",
    "maf_pay",
    "oth_pay",
)
NhsaFundField = Literal["hifp_pay", "cvlserv_pay", "hifes_pay", "hifmi_pay", "hifob_pay", "maf_pay", "oth_pay"]
