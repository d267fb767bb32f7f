"""Reference data the desk settles against: insured areas (and the policy governing each), hospitals, and
people with their assistance-category periods (as the national platform's 1101 `idetinfo` gives them).

A hospital system sends what it knows about a stay; what the registry knows (household, insurance scheme,
category on the settlement date, hospital level) is filled in from here, and a claim that states something
else is refused on that field rather than settled on the wrong facts.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ledger.models import CategoryPeriod, Hospital, Person, Region
from settlement.claims import Identifier
from settlement.codes import Category, HospitalLevel, Scheme
from settlement.errors import ClaimError, FieldError, field_errors

RegionCode = Annotated[str, Field(pattern=r"^[0-9]{6}$", description="six-digit administrative division code")]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegionIn(_Strict):
    region: RegionCode
    name: Name
    policy_id: Annotated[str, Field(min_length=1, max_length=64, description="the policy id (versions by date)")]


class HospitalIn(_Strict):
    hospital_id: Identifier
    name: Name
    level: HospitalLevel
    region: RegionCode


class CategoryPeriodIn(_Strict):
    category: Category
    valid_from: dt.date
    valid_until: dt.date | None = None  # open-ended when absent

    @model_validator(mode="after")
    def _ordered(self) -> CategoryPeriodIn:
        if self.valid_until is not None and self.valid_until < self.valid_from:
            raise ValueError(f"valid_until {self.valid_until} is before valid_from {self.valid_from}")
        return self


class PersonIn(_Strict):
    person_id: Identifier
    household_id: Identifier
    name: Annotated[str, Field(min_length=1, max_length=100)]
    insurance_scheme: Scheme
    region: RegionCode
    categories: Annotated[list[CategoryPeriodIn], Field(max_length=100)] = []

    @field_validator("categories")
    @classmethod
    def _no_overlap(cls, value: list[CategoryPeriodIn]) -> list[CategoryPeriodIn]:
        periods = sorted(value, key=lambda p: p.valid_from)
        for earlier, later in itertools.pairwise(periods):
            if earlier.valid_until is None or later.valid_from <= earlier.valid_until:
                raise ValueError(
                    f"category periods overlap: {earlier.category} from {earlier.valid_from} "
                    f"and {later.category} from {later.valid_from}"
                )
        return value


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], data: object, where: str = "") -> M:
    """`data` as `model`, or ClaimError naming every bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ClaimError(field_errors(err, where, whole=where or "body")) from None


def put_region(session: Session, region: RegionIn) -> dict[str, Any]:
    session.merge(Region(**region.model_dump()))
    return region.model_dump(mode="json")


def put_hospital(session: Session, hospital: HospitalIn) -> dict[str, Any]:
    if session.get(Region, hospital.region) is None:
        raise ClaimError([FieldError("region", f"no insured area {hospital.region!r} is registered")])
    session.merge(Hospital(**hospital.model_dump()))
    return hospital.model_dump(mode="json")


def put_person(session: Session, person: PersonIn) -> dict[str, Any]:
    """Register or replace a person and their category periods."""
    if session.get(Region, person.region) is None:
        raise ClaimError([FieldError("region", f"no insured area {person.region!r} is registered")])
    session.merge(Person(**person.model_dump(exclude={"categories"})))
    session.flush()
    session.execute(delete(CategoryPeriod).where(CategoryPeriod.person_id == person.person_id))
    for period in person.categories:
        session.add(CategoryPeriod(person_id=person.person_id, **period.model_dump()))
    return person.model_dump(mode="json")


def region_view(region: Region) -> dict[str, Any]:
    return {"region": region.region, "name": region.name, "policy_id": region.policy_id}


def hospital_view(hospital: Hospital) -> dict[str, Any]:
    return {
        "hospital_id": hospital.hospital_id,
        "name": hospital.name,
        "level": hospital.level,
        "region": hospital.region,
    }


def person_view(session: Session, person: Person) -> dict[str, Any]:
    periods = _periods(session, person.person_id)
    return {
        "person_id": person.person_id,
        "household_id": person.household_id,
        "name": person.name,
        "insurance_scheme": person.insurance_scheme,
        "region": person.region,
        "categories": [
            {
                "category": p.category,
                "valid_from": p.valid_from.isoformat(),
                "valid_until": p.valid_until.isoformat() if p.valid_until else None,
            }
            for p in periods
        ],
    }


def _periods(session: Session, person_id: str) -> Sequence[CategoryPeriod]:
    return session.scalars(
        select(CategoryPeriod).where(CategoryPeriod.person_id == person_id).order_by(CategoryPeriod.valid_from)
    ).all()


class _Period(Protocol):
    category: str
    valid_from: dt.date
    valid_until: dt.date | None


def category_on(periods: Sequence[_Period], day: dt.date) -> str:
    """The category held on `day`; a person with no period covering it is in no assistance category."""
    for period in periods:
        if period.valid_from <= day and (period.valid_until is None or day <= period.valid_until):
            return period.category
    return "none"


@dataclass(frozen=True)
class PersonFacts:
    person_id: str
    household_id: str
    insurance_scheme: str
    policy_id: str  # of the person's insured area
    periods: list[Any]  # rows with category, valid_from, valid_until, in date order

    @classmethod
    def from_rows(cls, person_id: str, rows: Sequence[Any]) -> PersonFacts:
        """From `PERSON_FACTS` rows of one person: one per category period, or one with no period."""
        first = rows[0]
        periods = [row for row in rows if row.category is not None]
        return cls(person_id, first.household_id, first.insurance_scheme, first.policy_id or "", periods)


PERSON_FACTS = (
    select(
        Person.person_id,
        Person.household_id,
        Person.insurance_scheme,
        Region.policy_id,
        CategoryPeriod.category,
        CategoryPeriod.valid_from,
        CategoryPeriod.valid_until,
    )
    .select_from(Person)
    .outerjoin(Region, Region.region == Person.region)
    .outerjoin(CategoryPeriod, CategoryPeriod.person_id == Person.person_id)
)
"""What the register says about people: one row per category period, or a single row with no period."""


def _person_facts(session: Session, person_id: str) -> PersonFacts | None:
    """What the register says about a person, in one round trip (this is on every settlement's path)."""
    rows = session.execute(PERSON_FACTS.where(Person.person_id == person_id).order_by(CategoryPeriod.valid_from)).all()
    return PersonFacts.from_rows(person_id, rows) if rows else None


CLOCK_TOLERANCE = dt.timedelta(minutes=10)
"""How far a hospital system's clock may run ahead of the service's before its settlement time is refused."""


def complete_claim(
    session: Session, body: Mapping[str, Any], hospital_id: str | None, now: dt.datetime | None = None
) -> tuple[dict[str, Any], str]:
    """The claim body with the registry's facts filled in, and the policy id that governs it.

    `hospital_id` is the desk's own hospital (None for roles not bound to one). Raises ClaimError naming
    each field that contradicts the registry or refers to something not registered."""
    stated_person = body.get("person_id")
    stated_hospital = body.get("hospital_id", hospital_id)
    person = _person_facts(session, stated_person) if isinstance(stated_person, str) else None
    hospital = session.get(Hospital, stated_hospital) if isinstance(stated_hospital, str) else None
    return fill_claim(body, hospital_id, now, person, None if hospital is None else hospital.level)


def fill_claim(
    body: Mapping[str, Any],
    hospital_id: str | None,
    now: dt.datetime | None,
    person: PersonFacts | None,
    hospital_level: int | None,
) -> tuple[dict[str, Any], str]:
    """`complete_claim` given what the register holds on the claim's person and its hospital's level (None:
    not registered)."""
    claim = dict(body)
    problems: list[FieldError] = []
    if hospital_id is not None:
        stated = claim.setdefault("hospital_id", hospital_id)
        if stated != hospital_id:
            problems.append(FieldError("hospital_id", f"a desk of {hospital_id!r} cannot settle stays at {stated!r}"))
    if "person_id" in claim and person is None:
        problems.append(FieldError("person_id", f"no person {claim['person_id']!r} is registered"))
    if "hospital_id" in claim and hospital_level is None:
        problems.append(FieldError("hospital_id", f"no hospital {claim['hospital_id']!r} is registered"))
    policy_id = ""
    if person is not None:
        policy_id = person.policy_id
        day = _settlement_day(claim)
        known: dict[str, Any] = {"household_id": person.household_id, "insurance_scheme": person.insurance_scheme}
        if day is not None:
            known["category"] = category_on(person.periods, day)
        problems += _fill(claim, known, f"the register says for person {person.person_id!r}")
    if hospital_level is not None:
        problems += _fill(claim, {"hospital_level": hospital_level}, f"hospital {claim['hospital_id']!r} is level")
    stated = _moment(claim.get("settled_at"))
    if now is not None and stated is not None and stated > now + CLOCK_TOLERANCE:
        # The settlement date decides the category: it cannot be chosen ahead of time.
        problems.append(
            FieldError("settled_at", f"{stated} is in the future (the service's time is {now:%Y-%m-%d %H:%M})")
        )
    if problems:
        raise ClaimError(problems)
    return claim, policy_id


def _fill(claim: dict[str, Any], known: Mapping[str, Any], source: str) -> list[FieldError]:
    problems = []
    for name, value in known.items():
        stated = claim.setdefault(name, value)
        if stated != value:
            problems.append(FieldError(name, f"{stated!r} contradicts the register: {source} {value!r}"))
    return problems


def _moment(raw: object) -> dt.datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        return dt.datetime.fromisoformat(raw).replace(tzinfo=None)
    except ValueError:
        return None  # the claim's own validation names the bad date


def _settlement_day(claim: Mapping[str, Any]) -> dt.date | None:
    """The category holds on the settlement date: the settlement time's day, else the discharge day."""
    for name in ("settled_at", "discharged_on"):
        if isinstance(claim.get(name), str):
            moment = _moment(claim[name])
            return moment.date() if moment else None
    return None
