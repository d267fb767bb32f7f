"""What the HTTP end-to-end tests share: a stay as a hospital system sends it, and the ways to look at what a
request left behind (every row of the database, the app's engine, the fields a problem names)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import Engine, inspect, text

from tests.e2e.conftest import Service


def stay(claim_id: str, person_id: str = "MHK-P-0104", day: str = "2014-06-30", **fields: Any) -> dict[str, Any]:
    """An inpatient stay of one day as a hospital system sends it; the register fills in the rest."""
    return {
        "claim_id": claim_id,
        "person_id": person_id,
        "visit_type": "inpatient",
        "admitted_on": day,
        "discharged_on": day,
        "settled_at": f"{day}T10:00:00",
        "diagnoses": ["J18.9"],
        "total": "8000.00",
        "fully_self_paid": "0.00",
        "over_limit_self_paid": "0.00",
        "pre_self_paid": "0.00",
        **fields,
    }


def database_rows(engine: Engine) -> dict[str, list[str]]:
    """Every row of every table (migrations' bookkeeping aside), to compare before and after."""
    with engine.connect() as connection:
        names = [n for n in inspect(connection).get_table_names() if n != "alembic_version"]
        return {n: sorted(map(repr, connection.execute(text(f'SELECT * FROM "{n}"')).all())) for n in names}


def engine_of(service: Service) -> Engine:
    engine: Engine = service.client.app.state.context.engine  # type: ignore[attr-defined]
    return engine


def fields_of(response: httpx.Response) -> list[str]:
    return [e["field"] for e in response.json().get("errors", [])]
