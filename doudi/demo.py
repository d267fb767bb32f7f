"""A demo region for trying the service: three insured areas of Jilin with their sample policies, hospitals
of the three levels, people of every assistance category (one whose category changes mid-year, households
of several people), and one user per role. The people and hospitals of `examples/` are among them, so the
example claims settle as they are. Names are invented and marked as demo data.

Seeding is idempotent: reference data is written again as it is here, users are created once, and each
run replaces the demo users' tokens (tokens are stored hashed, so new ones are the only ones that can be
shown).
"""

from __future__ import annotations

import datetime as dt
import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from doudi import accounts, registry
from doudi.accounts import SYSTEM, Role
from doudi.catalogue import Catalogue
from ledger.models import User
from policies.library import Library

REGIONS = [
    {"region": "220581", "name": "梅河口市 Meihekou", "policy_id": "jl-meihekou"},
    {"region": "220100", "name": "长春市 Changchun", "policy_id": "jl-changchun"},
    {"region": "220400", "name": "辽源市 Liaoyuan", "policy_id": "jl-liaoyuan"},
]

HOSPITALS = [
    {
        "hospital_id": "JL-PROV-H001",
        "name": "省级三级医院（示例）Provincial hospital (demo)",
        "level": 3,
        "region": "220100",
    },
    {
        "hospital_id": "CC-H003",
        "name": "长春市三级医院（示例）Changchun hospital (demo)",
        "level": 3,
        "region": "220100",
    },
    {
        "hospital_id": "MHK-H001",
        "name": "梅河口市二级医院（示例）Meihekou hospital (demo)",
        "level": 2,
        "region": "220581",
    },
    {
        "hospital_id": "MHK-H002",
        "name": "梅河口乡镇卫生院（示例）Township health centre (demo)",
        "level": 1,
        "region": "220581",
    },
    {
        "hospital_id": "LY-H002",
        "name": "辽源市二级医院（示例）Liaoyuan hospital (demo)",
        "level": 2,
        "region": "220400",
    },
]


def _person(
    person_id: str, household_id: str, name: str, region: str, *periods: tuple[str, str, str | None]
) -> dict[str, Any]:
    return {
        "person_id": person_id,
        "household_id": household_id,
        "name": name,
        "insurance_scheme": "resident",
        "region": region,
        "categories": [{"category": c, "valid_from": f, "valid_until": u} for c, f, u in periods],
    }


PEOPLE = [
    # The seed's cases (examples/): a 低保 patient and her household member, Gao Yue, Tian Guangdong.
    _person("MHK-P-0001", "MHK-H-0001", "示例甲 (demo)", "220581", ("dibao", "2013-01-01", None)),
    _person("MHK-P-0002", "MHK-H-0001", "示例乙 (demo)", "220581"),
    _person("CC-P-0417", "CC-H-0417", "示例丙 (demo)", "220100"),
    _person("LY-P-0057", "LY-H-0057", "示例丁 (demo)", "220400", ("tekun", "2012-01-01", None)),
    # Every other category, in Meihekou.
    _person("MHK-P-0101", "MHK-H-0101", "示例戊 (demo)", "220581", ("tekun", "2010-01-01", None)),
    _person("MHK-P-0102", "MHK-H-0102", "示例己 (demo)", "220581", ("orphan", "2011-05-01", None)),
    _person("MHK-P-0103", "MHK-H-0103", "示例庚 (demo)", "220581", ("severe_disability", "2012-03-01", None)),
    # Low income until mid-2014, then 低保: the category on the settlement date decides.
    _person(
        "MHK-P-0104",
        "MHK-H-0104",
        "示例辛 (demo)",
        "220581",
        ("low_income", "2013-01-01", "2014-06-30"),
        ("dibao", "2014-07-01", None),
    ),
    _person("MHK-P-0105", "MHK-H-0104", "示例壬 (demo)", "220581", ("illness_poverty", "2014-01-01", None)),
]

USERS: list[tuple[str, Role, str | None]] = [
    ("demo-desk", "desk", "JL-PROV-H001"),
    ("demo-desk-mhk", "desk", "MHK-H001"),
    ("demo-finance", "finance", None),
    ("demo-policy", "policy", None),
    ("demo-admin", "admin", None),
]


def seed(engine: Engine, catalogue: Catalogue, files: Library, now: dt.datetime) -> dict[str, str]:
    """Publish the shipped policies, write the demo region and issue fresh demo tokens: {user: token}."""
    catalogue.publish_library(files, SYSTEM, now)
    tokens: dict[str, str] = {}
    with Session(engine) as session, session.begin():
        for region in REGIONS:
            registry.put_region(session, registry.validated(registry.RegionIn, region))
        session.flush()
        for hospital in HOSPITALS:
            registry.put_hospital(session, registry.validated(registry.HospitalIn, hospital))
        for person in PEOPLE:
            registry.put_person(session, registry.validated(registry.PersonIn, person))
        session.flush()
        for name, role, desk_hospital in USERS:
            if session.get(User, name) is None:
                accounts.create_user(session, accounts.UserIn(name=name, role=role, hospital_id=desk_hospital), now)
            accounts.revoke(session, name, now)
            tokens[name] = accounts.issue_token(session, name, now)
        accounts.audit(session, SYSTEM, "demo.seed", "demo region", {"users": sorted(tokens)}, now)
    return tokens


def set_passwords(engine: Engine, now: dt.datetime) -> dict[str, str]:
    """A fresh random password for each demo user, for the web pages' sign-in: {user: password}. New on
    every start like the tokens, so a demo left running on a network is not open with a published one."""
    passwords = {name: secrets.token_urlsafe(12) for name, _role, _hospital in USERS}
    with ThreadPoolExecutor(max_workers=2) as pool:  # scrypt lets go of the GIL; two cores halve the wait
        hashes = dict(zip(passwords, pool.map(accounts.hash_password, passwords.values()), strict=True))
    with Session(engine) as session, session.begin():
        for name, password_hash in hashes.items():
            user = session.get(User, name)
            if user is None:
                raise KeyError(f"demo user {name!r} is missing: seed the demo region first")
            user.password_hash = password_hash
        accounts.audit(session, SYSTEM, "demo.passwords", "demo region", {"users": sorted(hashes)}, now)
    return passwords
