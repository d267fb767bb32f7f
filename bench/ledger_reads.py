"""What the group desk's read of year-to-date figures costs as histories grow: from the whole ledger, and from
what its thread has already summed.

    .venv/bin/python -m bench.ledger_reads [--people N] [--histories 5,20,40] [--groups G] [--out PATH]

A fresh PostgreSQL database (on DOUDI_TEST_POSTGRES_URL's server, or --postgres-url; dropped afterwards) is
migrated and given a synthetic ledger: N people in households of two, and settlements appended round by
round (everyone's k-th stay before anyone's (k+1)-th, as a busy region's stays interleave in the table),
each with the entries a Meihekou settlement writes to accumulators: four of the person's and one of the
household's (temporary aid). The foreign keys are not checked while it is filled (the settlements the
entries belong to are not made: only the entries are read). At each history length the group desk's own
statement (`doudi.group_desk._FIGURES`) is run for G groups of 16 people drawn at random, two ways in turn:

- `whole`: nothing summed, every entry of each person and household read (what every group read before the
  group desk kept its sums, and what a newly started server's first group of each person still reads);
- `summed`: the thread has summed each person and household up to its last settlement but one (what a busy
  desk's group reads: the entries of the one stay since).

Figures are the median and 90th percentile of the statement's time as the client sees it (parsing, planning,
execution, rows), and the entries read per group. Writes bench/results/ledger_reads.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from sqlalchemy.engine import URL, make_url

from doudi.group_desk import _FIGURES, _text_array
from ledger.migrations import config

RESULTS = Path(__file__).parent / "results"
GROUP = 16
PERSON_ACCUMULATORS = ("basic_inpatient", "critical_illness", "assistance_general", "assistance_catastrophic")
HOUSEHOLD_ACCUMULATOR = "temporary_aid"

_PEOPLE = """
INSERT INTO people (person_id, household_id, insurance_scheme, region, name)
SELECT 'P' || i, 'H' || (i / 2), 'urban_rural', '220581', 'bench ' || i FROM generate_series(1, %(people)s) i"""
# Round k of settlements: one for every person, each with its person's and its household's entries.
_ROUND = """
INSERT INTO ledger_entries (setl_id, kind, tier, stage, bucket, fund_pay_type, amount, base, accumulator, entity,
                            policy_year, base_delta, paid_delta, claims_delta, recorded_at)
SELECT 'S' || %(round)s || '-' || p, 'settlement', a.key, 'stage', '', '310100', 100.00, 120.00, a.key,
       CASE WHEN a.key = %(household_key)s THEN 'H' || (p / 2) ELSE 'P' || p END, 2014, 120.00, 100.00, 1,
       now()
FROM generate_series(1, %(people)s) p, unnest(%(keys)s::text[]) WITH ORDINALITY AS a(key, n)
ORDER BY p, a.n"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=2_000)
    parser.add_argument("--histories", default="5,20,40", help="settlements a person, comma-separated")
    parser.add_argument("--groups", type=int, default=300, help="groups timed each way at each length")
    parser.add_argument("--postgres-url", default=os.environ.get("DOUDI_TEST_POSTGRES_URL"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS / "ledger_reads.json")
    args = parser.parse_args()
    if not args.postgres_url:
        parser.error("give --postgres-url or set DOUDI_TEST_POSTGRES_URL (a PostgreSQL server to make a database on)")
    histories = sorted(int(n) for n in args.histories.split(","))
    server = make_url(args.postgres_url)
    name = f"doudi_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(server), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        scratch = server.set(database=name)
        migrated = scratch.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        command.upgrade(config(migrated), "head")
        results = measure(_libpq(scratch), args.people, histories, args.groups, random.Random(args.seed))
    finally:
        with psycopg.connect(_libpq(server), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    report = {
        "benchmark": "ledger_reads",
        "people": args.people,
        "group": GROUP,
        "groups": args.groups,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.out}")


def measure(url: str, people: int, histories: list[int], groups: int, rng: random.Random) -> list[dict[str, Any]]:
    keys = [*PERSON_ACCUMULATORS, HOUSEHOLD_ACCUMULATOR]
    results = []
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("SET session_replication_role = replica")  # no foreign keys while filling
        connection.execute(_PEOPLE, {"people": people})
        connection.execute("ANALYZE people")
        done = 0
        for history in histories:
            for k in range(done + 1, history + 1):
                connection.execute(_ROUND, {"round": k, "people": people, "household_key": keys[-1], "keys": keys})
            done = history
            connection.execute("SET session_replication_role = DEFAULT")
            timings: dict[str, list[float]] = {"whole": [], "summed": []}
            read: dict[str, list[int]] = {"whole": [], "summed": []}
            for _ in range(groups):
                chosen = sorted({f"P{rng.randint(1, people)}" for _ in range(GROUP)})
                entities = sorted(set(chosen) | {f"H{int(p[1:]) // 2}" for p in chosen})
                since = [_last_but_one(connection, entity) for entity in entities]
                ways = {"whole": ([], []), "summed": (entities, since)}
                for way in rng.sample(sorted(ways), 2):  # in a random order, so neither always goes first
                    summed, after = ways[way]
                    params = {
                        "people": _text_array(chosen),
                        "summed": _text_array(summed),
                        "since": "{" + ",".join(map(str, after)) + "}",
                    }
                    start = time.perf_counter()
                    rows = connection.execute(_FIGURES, params).fetchall()
                    timings[way].append((time.perf_counter() - start) * 1000)
                    read[way].append(sum(_entries(rows)))
            row: dict[str, Any] = {"settlements_a_person": history, "entries": done * people * len(keys)}
            for way in ("whole", "summed"):
                ordered = sorted(timings[way])
                row[way] = {
                    "median_ms": round(statistics.median(ordered), 3),
                    "p90_ms": round(ordered[int(0.9 * len(ordered))], 3),
                    "entries_read_median": statistics.median(read[way]),
                }
            print(
                f"{history:3d} settlements a person ({row['entries']:,} entries): "
                f"whole {row['whole']['median_ms']:.2f} ms (p90 {row['whole']['p90_ms']:.2f}, "
                f"{row['whole']['entries_read_median']:.0f} entries), "
                f"summed {row['summed']['median_ms']:.2f} ms (p90 {row['summed']['p90_ms']:.2f}, "
                f"{row['summed']['entries_read_median']:.0f} entries)"
            )
            results.append(row)
            connection.execute("SET session_replication_role = replica")
    return results


def _libpq(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _last_but_one(connection: psycopg.Connection[Any], entity: str) -> int:
    """The id of the entity's last entry of its last settlement but one (0 when it has one settlement)."""
    found = connection.execute(
        "SELECT max(id) FROM ledger_entries WHERE entity = %s AND setl_id <> "
        "(SELECT setl_id FROM ledger_entries WHERE entity = %s ORDER BY id DESC LIMIT 1)",
        (entity, entity),
    ).fetchone()
    return int(found[0] or 0) if found else 0


def _entries(rows: list[Any]) -> list[int]:
    """The entries each row of `_FIGURES` summed (its claims column: one a settlement's entry here)."""
    return [int(row[6]) for row in rows if row[6] is not None]


if __name__ == "__main__":
    main()
