"""Claims and callers shared by the reliability tests: stays of the demo region's people as a hospital
system sends them (the register fills in household, scheme, category and level), drawn from a seeded
random source so that a failing run can be replayed."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from doudi import demo

PEOPLE = [p["person_id"] for p in demo.PEOPLE]
ON_LIST = ["C91.0", "C92.0", "I63.9", "C50.9", "C34.1", "N18.5", "I21.0"]  # Meihekou's catastrophic list
OFF_LIST = ["J18.9", "K80.2", "I10", "E11.9", "S72.0", "K35.8", "N20.0"]


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def stay(rng: random.Random, claim_id: str, person_id: str | None = None) -> dict[str, Any]:
    """An inpatient stay in 2014 (discharged by 2014-11-28, so it settles under a clock at 2014-12-01 and
    in real time alike) with amounts that satisfy the claim rules."""
    discharged = dt.date(2014, 1, 2) + dt.timedelta(days=rng.randrange(330))
    admitted = discharged - dt.timedelta(days=rng.randrange(30))
    total = rng.choice([rng.randrange(30_000, 2_000_000), rng.randrange(2_000_000, 60_000_000)])
    fully = rng.randrange(0, total // 5 + 1)
    over = rng.randrange(0, (total - fully) // 10 + 1)
    pre = rng.randrange(0, (total - fully - over) // 10 + 1)
    claim: dict[str, Any] = {
        "claim_id": claim_id,
        "person_id": person_id or rng.choice(PEOPLE),
        "visit_type": "inpatient",
        "admitted_on": admitted.isoformat(),
        "discharged_on": discharged.isoformat(),
        "settled_at": f"{discharged.isoformat()}T{rng.randrange(8, 18):02d}:{rng.randrange(60):02d}:00",
        "diagnoses": [rng.choice(ON_LIST if rng.random() < 0.4 else OFF_LIST)],
        "total": yuan(total),
        "fully_self_paid": yuan(fully),
        "over_limit_self_paid": yuan(over),
        "pre_self_paid": yuan(pre),
    }
    if rng.random() < 0.2:
        claim["grants"] = [{"payer": "红十字会 (test)", "amount": yuan(rng.randrange(100, total // 2 + 101))}]
    return claim
