"""A synthetic province-year of claims, from a documented model, for simulating reforms without real data.

`generate(people, seed, profile)` draws a population (insured areas, households, incomes, assistance
categories, ages), who falls ill with what (incidence by age, catastrophic diseases of the sample lists
included), the stays and visits that follow (repeats, hospital levels, costs, out-of-scope shares), and
when each is settled; the result is a `Dataset` in the form `load_claims` returns. Everything is whole-
array numpy, and the same seed gives the same claims.

The default profile, `jilin-2014`, is calibrated to the one set of outcome figures the seed gives: settled
under the Jilin 2014 sample policies, catastrophic medical assistance (重特大疾病医疗救助) in 2014 up to the
seed's date reaches 10,441 people at Jilin's population and pays them 5,139 yuan each on average, both
within 10 % (`calibrate`; tests/unit/test_generate.py). Every parameter says where it comes from, or that
it is illustrative; docs/claims-dataset.md lists them.

Amounts are drawn as real numbers and rounded once to whole fen; from there on they are integers, as
everywhere else in Doudi.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from policies.compile import plan_for
from policies.library import Library, load_library
from settlement.codes import CATEGORIES, SCHEMES, VISIT_TYPES, Category, Scheme, VisitType
from settlement.waterfall import settle
from simulation.dataset import COLUMNS, Dataset, batch_of, categorical, join_diagnoses

Int64Array = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Item = TypeVar("Item", bound=np.generic)

AGE_BANDS: Final = ((0, 14), (15, 44), (45, 59), (60, 89))
"""Age bands of every by-age table below (inclusive years)."""


@dataclass(frozen=True, slots=True)
class Region:
    """An insured area (统筹区) of the profile and the policy its claims are settled under."""

    code: str  # six-digit administrative code
    name: str
    population: int
    policy: str  # policy id in the library
    source: str


@dataclass(frozen=True, slots=True)
class Disease:
    """A reason for care: who gets it (persons per 100,000 a year, by age band), how often they come
    back, where they are treated and what it costs. Listed diseases are the sample catastrophic lists'."""

    key: str
    name: str  # Chinese name / English name
    codes: tuple[str, ...]  # principal diagnosis, drawn uniformly from these
    incidence: tuple[float, float, float, float]  # persons per 100,000 a year, by AGE_BANDS
    visit: VisitType
    repeats: float  # mean number of further claims in the year for the same person and disease (Poisson)
    gap_days: tuple[int, int]  # days between one discharge (or visit) and the next admission (uniform)
    stay_days: float  # median length of stay (inpatient); 0 for visits
    cost: float  # median total of one claim at a level-2 hospital, yuan
    spread: float  # sigma of the log-normal total
    levels: tuple[float, float, float]  # shares of level 1, 2 and 3 hospitals
    fully_self_paid: float  # mean share of the total outside every list (全自费)
    listed: bool  # on a catastrophic-disease list of the sample policies (checked by a test)
    injury: bool = False  # may have a liable third party
    source: str = "illustrative"


@dataclass(frozen=True, slots=True)
class Profile:
    """Every parameter of the model. `sources` names, per field, where its value comes from."""

    name: str
    year: int
    province_population: int
    regions: tuple[Region, ...]
    age_shares: tuple[float, float, float, float]  # by AGE_BANDS
    household_status_shares: Mapping[Category, float]  # tekun, dibao, low_income, illness_poverty, none
    household_sizes: tuple[float, ...]  # shares of households of 1, 2, ... persons, not assisted
    assisted_household_sizes: tuple[float, ...]  # the same for assisted households (特困: always 1)
    tekun_ages: tuple[float, float, float, float]  # age-band shares of 特困 persons (living alone)
    orphan_rate: float  # share of children under 18 who are orphans (孤儿/事实无人抚养儿童)
    severe_disability_rates: tuple[float, float, float, float]  # by AGE_BANDS
    scheme_shares: Mapping[Scheme, float]  # persons without an assistance category
    assisted_scheme_shares: Mapping[Scheme, float]
    income_per_person: Mapping[Category, tuple[float, float]]  # (median yuan a year, log-normal sigma)
    morbidity: Mapping[Category, float]  # incidence multiplier by category
    listed_morbidity: Mapping[Category, float]  # further multiplier for catastrophic (listed) diseases
    listed_incidence_scale: float  # calibrated: recipients
    listed_cost_scale: float  # calibrated: paid per recipient
    diseases: tuple[Disease, ...]
    level_cost: tuple[float, float, float]  # cost factor of a level 1, 2, 3 hospital
    people_per_hospital: tuple[int, int, int]  # level 1, 2, 3
    referral_to_capital: float  # share of level-3 listed-disease stays from other areas treated in Changchun
    capital: str
    over_limit: tuple[float, float]  # (share of claims with over-limit items, largest share of the total)
    pre_self_paid: Mapping[VisitType, float]  # mean share of the total paid first on class-B items (先行自付)
    comorbidities: tuple[str, ...]  # secondary diagnoses (none on any sample list)
    secondary_counts: Mapping[VisitType, tuple[float, ...]]  # shares of 0, 1, 2, 3 secondary diagnoses
    third_party_rate: float  # share of injury stays with a liable third party
    approval: tuple[float, float, float]  # (total at least, income per person below, probability)
    grants: tuple[float, float, float, float]  # (child listed total at least, probability, others at least, prob.)
    grant_share: tuple[float, float]  # granted share of the total, uniform
    settlement_hours: tuple[float, float]  # settlement desk hours
    calibration_until: dt.date  # the seed's figures cover the year up to this day (exclusive)
    target_recipients: int
    target_per_recipient: int  # yuan
    sources: Mapping[str, str] = field(default_factory=dict)


_SEED = "shared/seed/jilin-2014-social-assistance.zh.txt (吉林日报 2014-09-23)"
_FACTS = "shared/domain/policy-facts.md"
_ILL = "illustrative"

_PERSON_PER_100K_NOTE = "illustrative: orders of magnitude for north-east China, not from a cited table"

# Diseases on the sample catastrophic lists (ma-22-local for Changchun and Liaoyuan, meihekou-27-2014 for
# Meihekou), then other reasons for a stay, then outpatient care. Each row: key, name, principal codes,
# persons per 100,000 a year by age band, visit type, mean further claims, gap between claims (days), median
# stay (days), median cost at a level-2 hospital (2014 yuan), log-normal sigma, shares of hospital levels 1/2/3,
# mean fully self-paid share, listed. Every figure is illustrative (docs/claims-dataset.md, "The model").
# fmt: off
_LISTED: Final = (
    Disease("lung_cancer", "肺癌 / lung cancer", ("C34.1", "C34.3", "C34.9"), (0, 4, 70, 260),
        "inpatient", 3.0, (14, 35), 12, 13_000, 0.6, (0.05, 0.35, 0.60), 0.18, True),
    Disease("stomach_cancer", "胃癌 / stomach cancer", ("C16.0", "C16.9"), (0, 3, 35, 130),
        "inpatient", 2.5, (14, 35), 14, 14_000, 0.6, (0.05, 0.40, 0.55), 0.16, True),
    Disease("oesophageal_cancer", "食道癌 / oesophageal cancer", ("C15.9",), (0, 1, 18, 70),
        "inpatient", 2.5, (14, 35), 14, 14_000, 0.6, (0.05, 0.40, 0.55), 0.16, True),
    Disease("colon_cancer", "结肠癌 / colon cancer", ("C18.7", "C18.9"), (0, 3, 22, 90),
        "inpatient", 2.5, (14, 35), 13, 13_000, 0.6, (0.05, 0.35, 0.60), 0.17, True),
    Disease("rectal_cancer", "直肠癌 / rectal cancer", ("C20",), (0, 3, 18, 70),
        "inpatient", 2.5, (14, 35), 13, 13_000, 0.6, (0.05, 0.35, 0.60), 0.17, True),
    Disease("breast_cancer", "乳腺癌 / breast cancer", ("C50.4", "C50.9"), (0, 18, 70, 60),
        "inpatient", 3.5, (14, 28), 10, 10_000, 0.6, (0.05, 0.35, 0.60), 0.18, True),
    Disease("cervical_cancer", "宫颈癌 / cervical cancer", ("C53.9",), (0, 9, 22, 18),
        "inpatient", 3.0, (14, 28), 11, 10_000, 0.6, (0.05, 0.40, 0.55), 0.15, True),
    Disease("cerebral_infarction", "脑梗死 / cerebral infarction", ("I63.9", "I63.5"), (0, 12, 220, 1050),
        "inpatient", 0.3, (30, 120), 12, 8_000, 0.55, (0.15, 0.50, 0.35), 0.08, True),
    Disease("myocardial_infarction", "急性心肌梗塞 / acute myocardial infarction", ("I21.9", "I21.0"), (0, 4, 55, 220),
        "inpatient", 0.2, (30, 120), 9, 22_000, 0.6, (0.05, 0.35, 0.60), 0.10, True),
    Disease("end_stage_renal", "终末期肾病 / end-stage renal disease", ("N18.5",), (0, 8, 30, 60),
        "inpatient", 3.0, (20, 60), 9, 7_000, 0.5, (0.05, 0.45, 0.50), 0.10, True),
    Disease("dialysis", "透析 / care involving dialysis", ("Z49.1",), (0, 4, 12, 16),
        "inpatient", 4.0, (20, 50), 6, 6_000, 0.45, (0.05, 0.50, 0.45), 0.08, True),
    Disease("severe_mental", "重性精神疾病 / severe mental illness", ("F20.9", "F31.9"), (2, 90, 70, 40),
        "inpatient", 0.5, (60, 150), 35, 9_000, 0.5, (0.05, 0.70, 0.25), 0.08, True),
    Disease("tuberculosis", "肺结核 / pulmonary tuberculosis", ("A15.0",), (2, 15, 25, 40),
        "inpatient", 0.4, (60, 120), 18, 7_000, 0.5, (0.05, 0.60, 0.35), 0.10, True),
    Disease("aplastic_anaemia", "再生障碍性贫血 / aplastic anaemia", ("D61.9",), (3, 3, 3, 5),
        "inpatient", 2.0, (21, 45), 14, 11_000, 0.6, (0.02, 0.38, 0.60), 0.15, True),
    Disease("haemophilia", "血友病 / haemophilia", ("D66",), (1, 1, 0.5, 0.5),
        "inpatient", 1.0, (30, 90), 8, 14_000, 0.6, (0.02, 0.38, 0.60), 0.12, True),
    Disease("chronic_myeloid", "慢性粒细胞白血病 / chronic myeloid leukaemia", ("C92.1",), (0.5, 1.5, 2, 3),
        "inpatient", 1.5, (30, 90), 10, 12_000, 0.6, (0.02, 0.28, 0.70), 0.20, True),
    Disease("type1_diabetes", "1型糖尿病 / type-1 diabetes", ("E10.9",), (8, 5, 3, 3),
        "inpatient", 0.3, (60, 150), 9, 5_000, 0.5, (0.10, 0.60, 0.30), 0.08, True),
    Disease("hyperthyroidism", "甲亢 / hyperthyroidism", ("E05.9",), (2, 18, 18, 12),
        "inpatient", 0.2, (60, 150), 8, 5_000, 0.5, (0.10, 0.60, 0.30), 0.08, True),
    Disease("cleft", "唇腭裂 / cleft lip and palate", ("Q37.9",), (10, 0, 0, 0),
        "inpatient", 0.2, (90, 180), 8, 12_000, 0.5, (0.02, 0.38, 0.60), 0.12, True),
    Disease("aids", "艾滋病机会性感染 / AIDS opportunistic infections", ("B20.9",), (0.1, 3, 2, 1),
        "inpatient", 0.5, (30, 120), 15, 10_000, 0.6, (0.02, 0.48, 0.50), 0.10, True),
    Disease("h1n1", "重症甲型H1N1流感 / influenza A (H1N1)", ("J09",), (1, 1, 1, 1),
        "inpatient", 0.0, (30, 60), 10, 9_000, 0.7, (0.05, 0.45, 0.50), 0.10, True),
    # On Meihekou's 27 only (children's diseases and thalassaemia):
    Disease("acute_leukaemia", "儿童白血病 / acute leukaemia", ("C91.0", "C92.0"), (4, 2, 2, 4),
        "inpatient", 4.0, (14, 35), 20, 25_000, 0.7, (0.02, 0.18, 0.80), 0.20, True),
    Disease("congenital_heart", "先天性心脏病 / congenital heart disease", ("Q21.0", "Q21.1"), (25, 1, 0, 0),
        "inpatient", 0.2, (60, 180), 12, 30_000, 0.5, (0.01, 0.19, 0.80), 0.12, True),
    Disease("phenylketonuria", "苯丙酮尿症 / phenylketonuria", ("E70.0",), (0.5, 0, 0, 0),
        "inpatient", 0.5, (60, 150), 7, 4_000, 0.5, (0.05, 0.45, 0.50), 0.10, True),
    Disease("hypospadias", "尿道下裂 / hypospadias", ("Q54.9",), (8, 0, 0, 0),
        "inpatient", 0.1, (90, 180), 7, 8_000, 0.5, (0.05, 0.45, 0.50), 0.10, True),
    Disease("thalassaemia", "地中海贫血 / thalassaemia", ("D56.9",), (1, 0.5, 0, 0),
        "inpatient", 3.0, (21, 60), 5, 5_000, 0.5, (0.05, 0.45, 0.50), 0.10, True),
)
# fmt: on

# fmt: off
_OTHER_STAYS: Final = (
    Disease("pneumonia", "肺炎 / pneumonia", ("J18.9",), (2400, 420, 760, 2400),
        "inpatient", 0.2, (30, 120), 8, 4_000, 0.55, (0.40, 0.45, 0.15), 0.07, False),
    Disease("bronchitis", "急性支气管炎 / acute bronchitis", ("J20.9",), (1200, 140, 200, 680),
        "inpatient", 0.1, (30, 120), 6, 2_500, 0.5, (0.55, 0.40, 0.05), 0.06, False),
    Disease("hypertension", "高血压 / hypertension", ("I10",), (0, 150, 940, 2400),
        "inpatient", 0.2, (60, 180), 9, 4_000, 0.5, (0.40, 0.45, 0.15), 0.06, False),
    Disease("type2_diabetes", "2型糖尿病 / type-2 diabetes", ("E11.9",), (0, 94, 650, 1400),
        "inpatient", 0.2, (60, 180), 10, 5_000, 0.5, (0.30, 0.50, 0.20), 0.07, False),
    Disease("copd", "慢性阻塞性肺病 / COPD", ("J44.9", "J44.1"), (0, 26, 480, 2400),
        "inpatient", 0.5, (30, 120), 10, 6_000, 0.5, (0.30, 0.50, 0.20), 0.07, False),
    Disease("coronary", "冠心病 / coronary heart disease", ("I20.9", "I25.1"), (0, 76, 940, 3200),
        "inpatient", 0.3, (30, 150), 9, 7_000, 0.6, (0.20, 0.45, 0.35), 0.09, False),
    Disease("heart_failure", "心力衰竭 / heart failure", ("I50.9",), (0, 14, 240, 1300),
        "inpatient", 0.5, (30, 120), 10, 7_000, 0.5, (0.20, 0.50, 0.30), 0.08, False),
    Disease("cerebral_haemorrhage", "脑出血 / intracerebral haemorrhage", ("I61.9",), (0, 15, 130, 390),
        "inpatient", 0.2, (30, 120), 16, 18_000, 0.6, (0.05, 0.45, 0.50), 0.10, False),
    Disease("stroke_sequelae", "脑梗死后遗症 / sequelae of cerebral infarction", ("I69.3",), (0, 15, 240, 1100),
        "inpatient", 0.3, (60, 150), 14, 6_000, 0.5, (0.30, 0.50, 0.20), 0.07, False),
    Disease("femur_fracture", "股骨骨折 / fracture of the femur", ("S72.0", "S72.3"), (100, 150, 200, 760),
        "inpatient", 0.1, (60, 150), 14, 18_000, 0.5, (0.10, 0.50, 0.40), 0.12, False, True),
    Disease("head_injury", "颅脑损伤 / intracranial injury", ("S06.0", "S06.5"), (200, 310, 260, 370),
        "inpatient", 0.05, (60, 150), 9, 7_000, 0.7, (0.15, 0.50, 0.35), 0.10, False, True),
    Disease("appendicitis", "阑尾炎 / appendicitis", ("K35.8",), (240, 320, 160, 94),
        "inpatient", 0.0, (60, 120), 6, 6_000, 0.4, (0.30, 0.55, 0.15), 0.07, False),
    Disease("gallstones", "胆石症 / gallstones", ("K80.2",), (0, 240, 650, 820),
        "inpatient", 0.1, (60, 150), 8, 9_000, 0.5, (0.20, 0.50, 0.30), 0.08, False),
    Disease("childbirth", "分娩 / childbirth", ("O80.0", "O82.0"), (0, 1800, 0, 0),
        "inpatient", 0.0, (60, 120), 4, 3_500, 0.4, (0.30, 0.50, 0.20), 0.08, False),
    Disease("gastritis", "胃炎 / gastritis", ("K29.7",), (68, 480, 820, 1100),
        "inpatient", 0.1, (60, 150), 7, 3_500, 0.5, (0.45, 0.45, 0.10), 0.06, False),
    Disease("prostate", "前列腺增生 / prostatic hyperplasia", ("N40",), (0, 0, 240, 1300),
        "inpatient", 0.1, (60, 150), 9, 7_000, 0.5, (0.20, 0.50, 0.30), 0.08, False),
    Disease("cataract", "白内障 / cataract", ("H25.9",), (0, 6, 320, 2400),
        "inpatient", 0.3, (30, 120), 4, 5_000, 0.4, (0.15, 0.55, 0.30), 0.12, False),
    Disease("hepatitis", "慢性乙型肝炎 / chronic hepatitis B", ("B18.1",), (15, 240, 320, 240),
        "inpatient", 0.3, (60, 150), 14, 6_000, 0.5, (0.15, 0.55, 0.30), 0.10, False),
    Disease("disc", "腰椎间盘突出 / lumbar disc disorder", ("M51.2",), (0, 240, 480, 560),
        "inpatient", 0.1, (60, 150), 12, 5_000, 0.5, (0.30, 0.50, 0.20), 0.08, False),
)
# fmt: on

# fmt: off
_OUTPATIENT: Final = (
    Disease("chronic_hypertension", "高血压（门诊慢特病）/ hypertension", ("I10",), (0, 780, 7200, 21000),
        "chronic_outpatient", 6.0, (25, 45), 0, 300, 0.4, (0.70, 0.25, 0.05), 0.05, False),
    Disease("chronic_diabetes", "2型糖尿病（门诊慢特病）/ type-2 diabetes", ("E11.9",), (0, 390, 3900, 9100),
        "chronic_outpatient", 6.0, (25, 45), 0, 400, 0.4, (0.60, 0.30, 0.10), 0.05, False),
    Disease("chronic_coronary", "冠心病（门诊慢特病）/ coronary heart disease", ("I25.1",), (0, 100, 2000, 6500),
        "chronic_outpatient", 5.0, (25, 45), 0, 350, 0.4, (0.60, 0.30, 0.10), 0.05, False),
    Disease("chronic_copd", "慢阻肺（门诊慢特病）/ COPD", ("J44.9",), (0, 65, 1000, 4600),
        "chronic_outpatient", 4.0, (25, 45), 0, 300, 0.4, (0.60, 0.30, 0.10), 0.05, False),
    Disease("respiratory", "上呼吸道感染 / upper respiratory infection", ("J06.9",), (58000, 23000, 21000, 29000),
        "outpatient", 1.2, (30, 120), 0, 120, 0.6, (0.70, 0.25, 0.05), 0.10, False),
    Disease("stomach_visit", "胃炎 / gastritis, outpatient", ("K29.7",), (3900, 12000, 16000, 18000),
        "outpatient", 0.8, (30, 120), 0, 150, 0.6, (0.65, 0.30, 0.05), 0.10, False),
    Disease("back_pain", "腰痛 / low back pain", ("M54.5",), (0, 10000, 16000, 16000),
        "outpatient", 0.8, (30, 120), 0, 160, 0.6, (0.65, 0.30, 0.05), 0.10, False),
    Disease("dermatitis", "皮炎 / dermatitis", ("L30.9",), (7800, 7800, 6500, 6500),
        "outpatient", 0.5, (30, 120), 0, 110, 0.5, (0.70, 0.25, 0.05), 0.12, False),
)
# fmt: on

JILIN_2014: Final = Profile(
    name="jilin-2014",
    year=2014,
    province_population=27_500_000,
    regions=(
        Region("220581", "梅河口市 Meihekou", 600_000, "jl-meihekou", f"{_FACTS}: about 0.6 million (approximate)"),
        Region(
            "220100",
            "长春市 Changchun",
            7_500_000,
            "jl-changchun",
            "illustrative: about 7.5 million registered residents around 2014, from memory (not in the seed "
            "or policy-facts.md)",
        ),
        Region(
            "220400",
            "辽源市 Liaoyuan",
            1_200_000,
            "jl-liaoyuan",
            "illustrative: about 1.2 million around 2014, from memory (not in the seed or policy-facts.md)",
        ),
    ),
    age_shares=(0.12, 0.47, 0.26, 0.15),
    household_status_shares={
        "tekun": 0.010,
        "dibao": 0.090,
        "low_income": 0.030,
        "illness_poverty": 0.012,
        "none": 0.858,
    },
    household_sizes=(0.13, 0.31, 0.33, 0.14, 0.06, 0.03),
    assisted_household_sizes=(0.60, 0.30, 0.07, 0.03),
    tekun_ages=(0.0, 0.10, 0.20, 0.70),
    orphan_rate=0.004,
    severe_disability_rates=(0.003, 0.006, 0.012, 0.025),
    scheme_shares={"resident": 0.70, "employee": 0.28, "none": 0.02},
    assisted_scheme_shares={"resident": 0.99, "employee": 0.0, "none": 0.01},
    income_per_person={
        "none": (13_000.0, 0.55),
        "dibao": (3_000.0, 0.35),
        "tekun": (3_600.0, 0.20),
        "low_income": (5_500.0, 0.30),
        "illness_poverty": (6_000.0, 0.40),
    },
    morbidity={
        "none": 1.0,
        "dibao": 1.3,
        "tekun": 1.5,
        "orphan": 1.0,
        "severe_disability": 1.5,
        "low_income": 1.2,
        "illness_poverty": 1.5,
    },
    listed_morbidity={
        "none": 1.0,
        "dibao": 1.0,
        "tekun": 1.0,
        "orphan": 1.0,
        "severe_disability": 1.0,
        "low_income": 1.0,
        "illness_poverty": 6.0,
    },
    listed_incidence_scale=0.49,
    listed_cost_scale=1.01,
    diseases=(*_LISTED, *_OTHER_STAYS, *_OUTPATIENT),
    level_cost=(0.55, 1.0, 1.6),
    people_per_hospital=(20_000, 100_000, 500_000),
    referral_to_capital=0.30,
    capital="220100",
    over_limit=(0.20, 0.04),
    pre_self_paid={"inpatient": 0.07, "chronic_outpatient": 0.03, "outpatient": 0.03},
    comorbidities=("I10", "E11.9", "I25.1", "E78.5", "K21.9", "N39.0", "J44.9", "M81.9", "D64.9", "E87.6", "K76.0"),
    secondary_counts={
        "inpatient": (0.30, 0.35, 0.20, 0.15),
        "chronic_outpatient": (0.70, 0.25, 0.05, 0.0),
        "outpatient": (0.85, 0.12, 0.03, 0.0),
    },
    third_party_rate=0.15,
    approval=(30_000.0, 8_000.0, 0.30),
    grants=(50_000.0, 0.50, 100_000.0, 0.05),
    grant_share=(0.10, 0.40),
    settlement_hours=(8.0, 17.5),
    calibration_until=dt.date(2014, 9, 23),
    target_recipients=10_441,
    target_per_recipient=5_139,
    sources={
        "year": f"{_SEED}: the year of the seed's figures",
        "province_population": f"{_FACTS}: Jilin's resident population at the end of 2014, about 27.5 million "
        "(quoted from memory there; approximate). The seed itself gives no population.",
        "regions": "the three insured areas of the Jilin sample policies; populations per region (see each)",
        "age_shares": f"{_ILL}: the shape of an ageing north-eastern population around the 2010 census, from memory",
        "household_status_shares": f"{_ILL}: chosen so that about 5 % of people are in 低保 families and about 9 % "
        "in some assistance category; Jilin's 2014 counts are in neither the seed nor policy-facts.md",
        "household_sizes": f"{_ILL}: about 2.8 persons per household, the order of the 2010 census",
        "assisted_household_sizes": f"{_SEED}: temporary aid reached 923,800 household-times and 1,423,000 "
        "person-times, 1.54 persons per aided household; these shares have that mean (特困 households are single)",
        "tekun_ages": f"{_ILL}: 特困 people are mostly old people living alone (the seed's Tian Guangdong is 57)",
        "orphan_rate": _ILL,
        "severe_disability_rates": _ILL,
        "scheme_shares": f"{_ILL}: most people in resident insurance, about a quarter in employee insurance",
        "assisted_scheme_shares": f"{_ILL}: assistance recipients are in resident insurance, a few uninsured "
        "(the seed's Tian Guangdong had lost his insurance papers)",
        "income_per_person": f"{_ILL}: medians below and around the 低保 standards of the time for assisted "
        "households, around the provincial average for the others (not quoted)",
        "morbidity": f"{_ILL}: poorer people are ill more often",
        "listed_morbidity": f"{_ILL}: 因病致贫重病患者 are by definition seriously ill",
        "listed_incidence_scale": "calibrated to the seed's 10,441 recipients (see docs/claims-dataset.md)",
        "listed_cost_scale": "calibrated to the seed's 5,139 yuan per recipient (see docs/claims-dataset.md)",
        "diseases": f"diseases of the sample lists ({_FACTS} § Disease lists, policies/library/diseases) and "
        f"common other reasons for care; {_PERSON_PER_100K_NOTE}; costs and lengths of stay illustrative",
        "level_cost": f"{_ILL}: a level-3 stay costs about three times a level-1 stay",
        "people_per_hospital": _ILL,
        "referral_to_capital": f"{_ILL}: serious cases go to the provincial capital's level-3 hospitals",
        "capital": "Changchun is Jilin's capital",
        "over_limit": _ILL,
        "pre_self_paid": _ILL,
        "comorbidities": f"{_ILL}: common secondary diagnoses, none on a sample list",
        "secondary_counts": _ILL,
        "third_party_rate": f"{_ILL}: traffic accidents with a liable driver (the seed's Gao Yue case is one)",
        "approval": f"{_ILL}: civil affairs approves temporary aid for some families outside every category "
        "facing a large bill (社会救助暂行办法 art. 47, in policy-facts.md)",
        "grants": f"{_ILL}: charity for children with catastrophic diseases (the seed's Red Cross Little Angel "
        "fund) and now and then for other large bills",
        "grant_share": _ILL,
        "settlement_hours": f"{_ILL}: discharge desks settle in office hours",
        "calibration_until": f"{_SEED}: the report is dated 2014-09-23 and counts 2014 'so far' (今年)",
        "target_recipients": f"{_SEED}: 今年全省救助10441人",
        "target_per_recipient": f"{_SEED}: 人均救助5139元 (53,659,700 yuan in all)",
    },
)

PROFILES: Final[dict[str, Profile]] = {JILIN_2014.name: JILIN_2014}


# --------------------------------------------------------------------------------------------------------
# Drawing the population
# --------------------------------------------------------------------------------------------------------

_CATEGORY = {name: i for i, name in enumerate(CATEGORIES)}
_SCHEME = {name: i for i, name in enumerate(SCHEMES)}
_VISIT = {name: i for i, name in enumerate(VISIT_TYPES)}
_NO_CATEGORY = _CATEGORY["none"]


def _shares(values: tuple[float, ...] | list[float]) -> FloatArray:
    p = np.asarray(values, np.float64)
    result: FloatArray = p / p.sum()
    return result


@dataclass(frozen=True, slots=True)
class _People:
    household: Int64Array  # per person
    age_band: Int64Array
    age: Int64Array
    category: Int64Array
    scheme: Int64Array
    household_region: Int64Array  # per household: index into profile.regions
    household_income: Int64Array  # per household, fen
    household_count: int


def _households(profile: Profile, people: int, rng: np.random.Generator) -> tuple[Int64Array, Int64Array]:
    """(status category code, size) per household, with exactly `people` persons in all."""
    statuses = list(profile.household_status_shares)
    status_p = _shares([profile.household_status_shares[s] for s in statuses])
    plain = _shares(profile.household_sizes)
    assisted = _shares(profile.assisted_household_sizes)
    mean_plain = float(plain @ np.arange(1, len(plain) + 1))
    mean_assisted = float(assisted @ np.arange(1, len(assisted) + 1))
    mean_size = float(
        status_p @ [mean_plain if s == "none" else 1.0 if s == "tekun" else mean_assisted for s in statuses]
    )
    count = int(people / mean_size * 1.1) + 16
    status = rng.choice(len(statuses), size=count, p=status_p)
    size = np.where(
        np.array([s == "none" for s in statuses])[status],
        rng.choice(len(plain), size=count, p=plain) + 1,
        rng.choice(len(assisted), size=count, p=assisted) + 1,
    )
    size[np.array([s == "tekun" for s in statuses])[status]] = 1
    while int(size.sum()) < people:  # pragma: no cover - the 10 % margin makes this practically unreachable
        size, status = np.concatenate([size, size]), np.concatenate([status, status])
    end = np.cumsum(size)
    keep = int(np.searchsorted(end, people)) + 1
    size, status = size[:keep].copy(), status[:keep]
    size[-1] -= int(end[keep - 1]) - people
    codes = np.array([_CATEGORY[s] for s in statuses], np.int64)[status]
    return codes, size.astype(np.int64)


def _draw_people(profile: Profile, people: int, rng: np.random.Generator) -> _People:
    status, size = _households(profile, people, rng)
    households = len(size)
    # Households go to areas in proportion to population and are numbered area by area, so that a
    # dataset in person order is also in area and household order.
    region_p = _shares([r.population for r in profile.regions])
    household_region = np.sort(rng.choice(len(profile.regions), size=households, p=region_p))

    household = np.repeat(np.arange(households, dtype=np.int64), size)
    category = status[household].copy()
    n = len(household)
    band = rng.choice(len(AGE_BANDS), size=n, p=_shares(profile.age_shares))
    tekun = category == _CATEGORY["tekun"]
    band[tekun] = rng.choice(len(AGE_BANDS), size=int(tekun.sum()), p=_shares(profile.tekun_ages))
    low = np.array([b[0] for b in AGE_BANDS])[band]
    high = np.array([b[1] for b in AGE_BANDS])[band]
    age = low + (rng.random(n) * (high - low + 1)).astype(np.int64)

    # Person-level categories: orphans among children, severe disability where the family has no better one.
    orphan = (age < 18) & (rng.random(n) < profile.orphan_rate) & ~tekun
    category[orphan] = _CATEGORY["orphan"]
    weaker = np.isin(category, [_NO_CATEGORY, _CATEGORY["low_income"], _CATEGORY["illness_poverty"]])
    disabled = weaker & (rng.random(n) < np.asarray(profile.severe_disability_rates)[band])
    category[disabled] = _CATEGORY["severe_disability"]

    assisted = category != _NO_CATEGORY
    schemes = list(SCHEMES)
    plain_p = _shares([profile.scheme_shares.get(s, 0.0) for s in schemes])
    assisted_p = _shares([profile.assisted_scheme_shares.get(s, 0.0) for s in schemes])
    scheme = np.where(
        assisted, rng.choice(len(schemes), size=n, p=assisted_p), rng.choice(len(schemes), size=n, p=plain_p)
    )

    # Income: per person by the household's status (a 特困 person lives on the support allowance), times size.
    names = list(profile.income_per_person)
    median = np.zeros(len(CATEGORIES))
    sigma = np.zeros(len(CATEGORIES))
    for name in names:
        median[_CATEGORY[name]], sigma[_CATEGORY[name]] = profile.income_per_person[name]
    per_person = median[status] * np.exp(sigma[status] * rng.standard_normal(households))
    household_income = np.rint(per_person * size).astype(np.int64) * 100  # whole yuan, in fen
    return _People(
        household=household,
        age_band=band.astype(np.int64),
        age=age.astype(np.int64),
        category=category.astype(np.int64),
        scheme=scheme.astype(np.int64),
        household_region=household_region.astype(np.int64),
        household_income=household_income,
        household_count=households,
    )


# --------------------------------------------------------------------------------------------------------
# Drawing the claims
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Claims:
    person: Int64Array
    disease: Int64Array
    admitted: Int64Array  # day of the year, 0 = 1 January
    discharged: Int64Array
    level: Int64Array  # 0, 1, 2
    hospital_region: Int64Array
    hospital_number: Int64Array


def _episodes(profile: Profile, people: _People, rng: np.random.Generator) -> tuple[Int64Array, Int64Array]:
    """(person, disease) of every episode of care: a person who has the disease this year."""
    category_mult = np.array([profile.morbidity[c] for c in CATEGORIES])[people.category]
    listed_mult = np.array([profile.listed_morbidity[c] for c in CATEGORIES])[people.category]
    persons: list[Int64Array] = []
    diseases: list[Int64Array] = []
    for d, disease in enumerate(profile.diseases):
        rate = np.asarray(disease.incidence, np.float64)[people.age_band] / 100_000 * category_mult
        if disease.listed:
            rate = rate * listed_mult * profile.listed_incidence_scale
        hit = np.flatnonzero(rng.random(len(rate)) < np.minimum(rate, 0.95))
        persons.append(hit.astype(np.int64))
        diseases.append(np.full(len(hit), d, np.int64))
    return np.concatenate(persons), np.concatenate(diseases)


def _table(profile: Profile, attribute: str) -> FloatArray:
    return np.array([getattr(d, attribute) for d in profile.diseases], np.float64)


def _draw_claims(profile: Profile, people: _People, rng: np.random.Generator) -> _Claims:
    person, disease = _episodes(profile, people, rng)
    episodes = len(person)
    days_in_year = 366 if (profile.year % 4 == 0 and profile.year % 100 != 0) or profile.year % 400 == 0 else 365
    count = 1 + rng.poisson(_table(profile, "repeats")[disease])
    first_day = rng.integers(0, days_in_year, episodes)
    # A chronic patient's visits start early in the year and recur; acute repeats follow the first stay.
    chronic = np.array([d.visit == "chronic_outpatient" for d in profile.diseases])[disease]
    first_day = np.where(chronic, rng.integers(0, 45, episodes), first_day)

    levels = np.array([d.levels for d in profile.diseases], np.float64)
    cumulative = np.cumsum(levels, axis=1)[disease]
    level = (rng.random(episodes)[:, None] > cumulative[:, :2] / cumulative[:, 2:]).sum(axis=1).astype(np.int64)
    region = people.household_region[people.household[person]]
    hospital_region = region.copy()
    capital = next(i for i, r in enumerate(profile.regions) if r.code == profile.capital)
    listed = np.array([d.listed for d in profile.diseases])[disease]
    referred = listed & (level == 2) & (region != capital) & (rng.random(episodes) < profile.referral_to_capital)
    hospital_region[referred] = capital
    population = np.array([r.population for r in profile.regions], np.float64)
    per_level = np.maximum(population[:, None] / np.array(profile.people_per_hospital, np.float64)[None, :], 1)
    hospitals = per_level.astype(np.int64)[hospital_region, level]
    hospital_number = (rng.random(episodes) * hospitals).astype(np.int64)

    # One row per claim; an episode's claims follow one another: discharge, a gap, the next admission.
    episode = np.repeat(np.arange(episodes, dtype=np.int64), count)
    n = len(episode)
    first = np.zeros(n, np.bool_)
    starts = np.cumsum(count) - count
    first[starts] = True
    stay_median = _table(profile, "stay_days")[disease[episode]]
    stay = np.where(stay_median > 0, np.maximum(1, np.rint(stay_median * rng.lognormal(0, 0.45, n))), 0)
    stay = stay.astype(np.int64)
    gap_low = np.array([d.gap_days[0] for d in profile.diseases])[disease[episode]]
    gap_high = np.array([d.gap_days[1] for d in profile.diseases])[disease[episode]]
    gap = gap_low + (rng.random(n) * (gap_high - gap_low + 1)).astype(np.int64)
    previous_stay = np.concatenate([[0], stay[:-1]])
    step = np.where(first, 0, previous_stay + gap)
    running = np.cumsum(step)
    offset = running - np.repeat(running[starts], count)
    admitted = first_day[episode] + offset
    discharged = admitted + stay
    # Stays discharged after the year are settled next year: not in this year's dataset.
    inside = discharged < days_in_year
    pick = episode[inside]
    return _Claims(
        person=person[pick],
        disease=disease[pick],
        admitted=admitted[inside],
        discharged=discharged[inside],
        level=level[pick],
        hospital_region=hospital_region[pick],
        hospital_number=hospital_number[pick],
    )


def _strictly_increasing(person: Int64Array, seconds: Int64Array) -> Int64Array:
    """Settlement times (seconds, claims sorted by person then time) moved forward by a second where a
    person has two claims at the same second, so that a person's claims have one order without ties."""
    n = len(seconds)
    if n == 0:
        return seconds
    index = np.arange(n, dtype=np.int64)
    # t'_i = max over the person's claims j <= i of (t_j - j) + i: the smallest increasing times >= t.
    lifted = seconds - index + n
    span = int(lifted.max()) + 1
    running = np.maximum.accumulate(person * span + lifted)
    result: Int64Array = running - person * span - n + index
    return result


def _text_ids(prefix: str, numbers: Int64Array, width: int) -> pd.Series:
    """prefix + the number, zero-padded: the text is built once per distinct number (ids repeat a lot)."""
    distinct, inverse = np.unique(numbers, return_inverse=True) if len(numbers) else (numbers, numbers)
    digits = pc.utf8_lpad(pc.cast(pa.array(distinct, pa.int64()), pa.string()), width, "0")
    text = pc.binary_join_element_wise(pa.scalar(prefix), digits, "")
    return pd.Series(text.take(pa.array(inverse.astype(np.int64))).to_pandas(), dtype="str")


def _sorted_ids(prefix: str, numbers: Int64Array, width: int) -> pd.Series:
    """_text_ids for numbers already in order: the distinct numbers are where the value changes."""
    change = np.concatenate([[True], numbers[1:] != numbers[:-1]]) if len(numbers) else np.zeros(0, np.bool_)
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers[change], pa.int64()), pa.string()), width, "0")
    text = pc.binary_join_element_wise(pa.scalar(prefix), digits, "")
    return pd.Series(text.take(pa.array(np.cumsum(change) - 1)).to_pandas(), dtype="str")


def generate(people: int, seed: int, profile: Profile = JILIN_2014) -> Dataset:
    """A synthetic province-year of `people` persons (those with no claim in the year have no row), as a
    Dataset in (area, household, person, settlement time) order. The same arguments give the same claims."""
    if people < 1:
        raise ValueError("people must be at least 1")
    dataset, _ = _generate(people, np.random.default_rng(seed), profile, _Numbering())
    return dataset


CHUNK_PEOPLE: Final = 500_000
"""Persons drawn at a time by `generate_chunks`: about 0.9 million claims and 0.8 GB while drawing."""


@dataclass(frozen=True, slots=True)
class _Numbering:
    """Where a chunk's ids start: persons, households, claims and approvals drawn before it."""

    person: int = 0
    household: int = 0
    claim: int = 0
    approval: int = 0


def generate_chunks(
    people: int, seed: int, profile: Profile = JILIN_2014, chunk_people: int = CHUNK_PEOPLE
) -> Iterator[Dataset]:
    """The province-year of `people` persons drawn `chunk_people` at a time, for populations larger than
    memory. Each chunk is a population of its own (its households, their claims), numbered on from the
    chunks before it, in (area, household, person, settlement time) order within the chunk; a household
    is never split between chunks. Chunk k draws from the random stream (seed, k), the first from `seed`
    itself, so a population of at most `chunk_people` is exactly `generate(people, seed, profile)`."""
    if people < 1 or chunk_people < 1:
        raise ValueError("people and chunk_people must be at least 1")
    numbering = _Numbering()
    for number, start in enumerate(range(0, people, chunk_people)):
        rng = np.random.default_rng(seed if number == 0 else [seed, number])
        dataset, numbering = _generate(min(chunk_people, people - start), rng, profile, numbering)
        yield dataset


def _generate(
    people: int, rng: np.random.Generator, profile: Profile, numbering: _Numbering
) -> tuple[Dataset, _Numbering]:
    most_outside = 2 * max(d.fully_self_paid for d in profile.diseases) + profile.over_limit[1]
    if most_outside + 2 * max(profile.pre_self_paid.values()) >= 1:
        raise ValueError(f"{profile.name}: the out-of-scope shares could exceed the total")
    population = _draw_people(profile, people, rng)
    drawn = _draw_claims(profile, population, rng)
    n = len(drawn.person)
    diseases = profile.diseases
    disease = drawn.disease
    person = drawn.person
    visit = np.array([_VISIT[d.visit] for d in diseases], np.int64)[disease]
    inpatient = visit == _VISIT["inpatient"]
    listed = np.array([d.listed for d in diseases])[disease]
    category = population.category[person]
    household = population.household[person]

    # Amounts: a log-normal total by disease and hospital level, then the parts outside the policy scope.
    cost_median = _table(profile, "cost") * np.where([d.listed for d in diseases], profile.listed_cost_scale, 1.0)
    spread = _table(profile, "spread")[disease]
    total_yuan = cost_median[disease] * np.asarray(profile.level_cost)[drawn.level] * rng.lognormal(0.0, spread)
    total = np.maximum(np.rint(total_yuan * 100), 1_000).astype(np.int64)
    fully_share = _table(profile, "fully_self_paid")[disease] * 2 * rng.random(n)
    over_share = np.where(rng.random(n) < profile.over_limit[0], profile.over_limit[1] * rng.random(n), 0.0)
    pre_mean = np.array([profile.pre_self_paid[v] for v in VISIT_TYPES])[visit]
    pre_share = pre_mean * 2 * rng.random(n)
    # The shares add up to less than 1 (checked above), so the in-scope amount is never negative.
    fully = (total * fully_share).astype(np.int64)
    over = (total * over_share).astype(np.int64)
    pre = (total * pre_share).astype(np.int64)

    injury = np.array([d.injury for d in diseases])[disease]
    third_party = injury & (rng.random(n) < profile.third_party_rate)
    income_per_person = population.household_income[household] / 100 / np.bincount(population.household)[household]
    min_total, max_income, chance = profile.approval
    approved = (
        inpatient
        & (category == _NO_CATEGORY)
        & (total >= min_total * 100)
        & (income_per_person < max_income)
        & (rng.random(n) < chance)
    )
    child_total, child_chance, other_total, other_chance = profile.grants
    child = population.age[person] < 18
    granted = inpatient & (
        (listed & child & (total >= child_total * 100) & (rng.random(n) < child_chance))
        | ((total >= other_total * 100) & (rng.random(n) < other_chance))
    )
    share_low, share_high = profile.grant_share
    grant_total = np.where(granted, (total * rng.uniform(share_low, share_high, n) // 10_000) * 10_000, 0)
    grant_total = np.minimum(grant_total, total).astype(np.int64)

    # Settled on the discharge day (the visit day) in desk hours; order by person, then time.
    start_hour, end_hour = profile.settlement_hours
    second_of_day = (start_hour * 3600 + rng.random(n) * (end_hour - start_hour) * 3600).astype(np.int64)
    seconds = drawn.discharged * 86_400 + second_of_day
    # Seconds in a year stay below 2**25, so (person, time) fits one int64 key.
    order = np.argsort(person * 2**25 + seconds)
    seconds = _strictly_increasing(person[order], seconds[order])

    def ordered(values: npt.NDArray[Item]) -> npt.NDArray[Item]:
        return values[order]

    # Diagnoses: the disease's principal code, then secondary codes from the comorbidity pool.
    principal_names = sorted({code for d in diseases for code in d.codes})
    names = principal_names + [c for c in profile.comorbidities if c not in principal_names]
    name_index = {code: i for i, code in enumerate(names)}
    code_choice = rng.random(n)
    principal = np.empty(n, np.int64)
    for d, spec in enumerate(diseases):
        mine = np.flatnonzero(disease == d)
        options = np.array([name_index[c] for c in spec.codes], np.int64)
        principal[mine] = options[(code_choice[mine] * len(options)).astype(np.int64)]
    secondary_p = np.array([_shares(profile.secondary_counts[v]) for v in VISIT_TYPES])
    cumulative = np.cumsum(secondary_p, axis=1)[visit]
    extra = (rng.random(n)[:, None] > cumulative[:, :-1]).sum(axis=1)
    counts = ordered(1 + extra).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    comorbidity = np.array([name_index[c] for c in profile.comorbidities], np.int64)
    dx_code = comorbidity[rng.integers(0, len(comorbidity), int(offsets[-1]))]
    dx_code[offsets[:-1]] = ordered(principal)
    used = np.zeros(len(names), np.bool_)
    used[dx_code] = True
    dx_code = (np.cumsum(used) - 1)[dx_code]
    dx_codes = tuple(name for name, kept in zip(names, used, strict=True) if kept)

    region_codes = np.array([int(r.code) for r in profile.regions], np.int64)
    start = np.datetime64(dt.date(profile.year, 1, 1), "D")
    o_person = ordered(person)
    o_household = household[order]
    hospital = ordered(
        np.array([int(r.code) for r in profile.regions], np.int64)[drawn.hospital_region] * 10_000
        + (drawn.level + 1) * 1_000
        + drawn.hospital_number
    )
    approval_numbers = np.cumsum(ordered(approved)) - 1 + numbering.approval
    approval_text = pc.binary_join_element_wise(
        pa.scalar(f"MZ-{profile.year}-"),
        pc.utf8_lpad(pc.cast(pa.array(approval_numbers), pa.string()), 6, "0"),
        "",
    )
    approval = pc.if_else(pa.array(ordered(approved)), approval_text, pa.scalar(None, pa.string()))
    frame = pd.DataFrame(
        {
            "claim_id": _sorted_ids(f"C{profile.year}", np.arange(n, dtype=np.int64) + numbering.claim, 10),
            "person_id": _sorted_ids("P", o_person + numbering.person, 9),
            "household_id": _sorted_ids("H", o_household + numbering.household, 9),
            "insurance_scheme": categorical(population.scheme[o_person], SCHEMES),
            "category": categorical(ordered(category), CATEGORIES),
            "hospital_id": _text_ids("H", hospital, 10),
            "hospital_level": (ordered(drawn.level) + 1).astype(np.int8),
            "visit_type": categorical(ordered(visit), VISIT_TYPES),
            "admitted_on": (start + ordered(drawn.admitted)).astype("datetime64[s]"),
            "discharged_on": (start + ordered(drawn.discharged)).astype("datetime64[s]"),
            "settled_at": start.astype("datetime64[us]") + (seconds * 1_000_000).astype("timedelta64[us]"),
            "diagnoses": join_diagnoses(dx_codes, offsets, dx_code.astype(np.int64)),
            "total": ordered(total),
            "fully_self_paid": ordered(fully),
            "over_limit_self_paid": ordered(over),
            "pre_self_paid": ordered(pre),
            "third_party_liability": ordered(third_party),
            "assistance_approval": pd.Series(approval.to_pandas(), dtype="str"),
            "grant_total": ordered(grant_total),
            "region": _text_ids("", region_codes[population.household_region[o_household]], 6),
            "household_income": population.household_income[o_household],
        },
        columns=list(COLUMNS),
        copy=False,
    )
    following = _Numbering(
        person=numbering.person + people,
        household=numbering.household + population.household_count,
        claim=numbering.claim + n,
        approval=numbering.approval + int(approved.sum()),
    )
    return Dataset(frame, dx_codes, offsets, dx_code.astype(np.int64)), following


# --------------------------------------------------------------------------------------------------------
# Calibration: the seed's catastrophic medical assistance
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Calibration:
    """Catastrophic medical assistance (the medical_assistance tier's "catastrophic" bucket) paid on the
    claims settled before `until`, each area under its policy, and the recipients scaled to the province."""

    people: int
    until: dt.date
    recipients: int  # distinct persons paid by the catastrophic bucket
    paid: int  # fen
    by_region: dict[str, tuple[int, int]]  # area -> (recipients, paid fen)
    province_population: int

    @property
    def per_recipient(self) -> float:
        """Yuan per recipient."""
        return self.paid / 100 / self.recipients if self.recipients else 0.0

    @property
    def recipients_at_province(self) -> float:
        return self.recipients * self.province_population / self.people


def calibrate(
    dataset: Dataset,
    people: int,
    profile: Profile = JILIN_2014,
    library: Library | None = None,
    until: dt.date | None = None,
) -> Calibration:
    """Settle each area's claims under its policy (the version in force at the start of the profile's year)
    and sum what the catastrophic bucket of medical assistance paid on the claims settled before `until`
    (default: the seed's report date)."""
    if library is None:
        library, problems = load_library()
        if problems:
            raise ValueError("the policy library has problems: " + "; ".join(str(p) for p in problems))
    cutoff = np.datetime64(until or profile.calibration_until, "us")
    region = pa.array(dataset.frame["region"], from_pandas=True)
    settled_at = dataset.frame["settled_at"].to_numpy()
    recipients: set[str] = set()
    paid = 0
    by_region: dict[str, tuple[int, int]] = {}
    for area in profile.regions:
        rows = np.flatnonzero(pc.equal(region, area.code).to_numpy(zero_copy_only=False))
        if len(rows) == 0:
            continue
        plan = plan_for(library.get(area.policy, dt.date(profile.year, 1, 1)), library)
        result = settle(plan, batch_of(dataset, rows), None, trace=True)
        tier = next(t for t, plan_tier in enumerate(plan.tiers) if plan_tier.stage == "medical_assistance")
        bucket = next(k for k, b in enumerate(plan.tiers[tier].buckets) if b.id == "catastrophic")
        columns = result.tiers[tier]
        assert columns.bucket is not None  # trace=True keeps the bucket of every claim
        counted = (columns.bucket == bucket) & (columns.paid > 0) & (settled_at[rows] < cutoff)
        area_people = set(dataset.frame["person_id"].iloc[rows[counted]].tolist())
        area_paid = int(columns.paid[counted].sum())
        by_region[area.code] = (len(area_people), area_paid)
        recipients |= area_people
        paid += area_paid
    return Calibration(
        people=people,
        until=until or profile.calibration_until,
        recipients=len(recipients),
        paid=paid,
        by_region=by_region,
        province_population=profile.province_population,
    )
