"""How the group desk talks to PostgreSQL (doudi/group_desk.py): several statements in one round trip, and
a table's rows sent as one dollar-quoted JSON document, or (in pipeline mode) as a JSON document with its
long texts apart. Whatever text a row holds (quotes, dollar signs, backslashes, percent signs, CJK, astral
characters), exact money, moments and dates come back as they went in and in their order; the rows of a
failed exchange are not kept."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import orjson
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.rows import namedtuple_row
from psycopg.types.json import Json
from sqlalchemy import Column, Date, DateTime, Integer, MetaData, Numeric, String, Table, Text
from sqlalchemy.engine import make_url

from doudi.desk import lock_key, lock_key_sql, lock_keys, lock_name
from doudi.group_desk import _LOCKS, _as_sent, _dollar_quoted, _exchange, _insert, _insert_document, _text_array

pytestmark = pytest.mark.postgres

ROWS = Table(
    "exchange_rows",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("label", String(200), nullable=False),
    Column("body", Text, nullable=True),
    Column("amount", Numeric(16, 2), nullable=False),
    Column("at", DateTime, nullable=False),
    Column("day", Date, nullable=False),
    Column("count", Integer, nullable=False),
)
CREATE = """CREATE TABLE exchange_rows (id serial PRIMARY KEY, label varchar(200) NOT NULL, body text,
amount numeric(16, 2) NOT NULL, at timestamp NOT NULL, day date NOT NULL, count integer NOT NULL)"""


@pytest.fixture
def connection(postgres_url: str) -> Iterator[psycopg.Connection[Any]]:
    conninfo = make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.Connection.connect(conninfo, autocommit=True, row_factory=namedtuple_row) as found:
        found.execute(CREATE)
        yield found


# Text as claims and records may hold it once the API has let it in (no NUL, no lone surrogate), plus what
# could break a literal: quotes, dollar signs and dollar-quote tags, backslashes, percent signs.
characters = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
pieces = characters | st.sampled_from(["$", "'", "\\", "%", "$g"])
awkward = st.lists(pieces, max_size=30).map("".join)
rows = st.lists(
    st.fixed_dictionaries(
        {
            "label": awkward,
            "body": st.none() | awkward,
            "amount": st.decimals(min_value=-(10**13), max_value=10**13, places=2, allow_nan=False),
            "at": st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1)),
            "day": st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2100, 1, 1)),
            "count": st.integers(-(2**31), 2**31 - 1),
        }
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows)
def test_rows_come_back_as_they_went_in_and_in_order(connection: psycopg.Connection[Any], sent: list[Any]) -> None:
    _exchange(connection, [("TRUNCATE exchange_rows RESTART IDENTITY", None)])
    *_, stored = _exchange(connection, [_insert(ROWS, sent), ("SELECT * FROM exchange_rows ORDER BY id", None)])
    assert [{k: v for k, v in row._asdict().items() if k != "id"} for row in stored] == sent


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows, st.sampled_from([("body",), ("label", "body"), ("body", "label")]))
def test_rows_with_texts_apart_come_back_as_they_went_in_and_in_order(
    connection: psycopg.Connection[Any], sent: list[Any], apart: tuple[str, ...]
) -> None:
    # As `_send_rows` sends a group's settlements: prepared, in pipeline mode, the long texts as parameters.
    _exchange(connection, [("TRUNCATE exchange_rows RESTART IDENTITY", None)])
    sql, document, texts = _insert_document(ROWS, sent, apart)
    assert set(texts) == set(apart) and not set(apart) & set(orjson.loads(document)[0])
    with connection.pipeline():
        connection.execute(sql, {"document": Json(document, dumps=_as_sent), **texts}, prepare=True)
    stored = connection.execute("SELECT * FROM exchange_rows ORDER BY id").fetchall()
    assert [{k: v for k, v in row._asdict().items() if k != "id"} for row in stored] == sent


# What an array literal gives a meaning to, besides what `awkward` holds.
array_syntax = st.sampled_from(['"', "{", "}", ",", " ", "NULL", "null", "", '\\"', "{}", '""'])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(pieces | array_syntax, max_size=6).map("".join), max_size=12))
def test_a_list_sent_as_an_array_literal_arrives_as_it_was(
    connection: psycopg.Connection[Any], sent: list[str]
) -> None:
    # As the first round trip of a group sends its people, tokens, hospitals and keys.
    [found] = _exchange(connection, [("SELECT %(items)s::text[] AS items", {"items": _text_array(sent)})])
    assert found[0].items == sent


def test_a_column_apart_must_be_one_of_the_rows() -> None:
    row = {"label": "x", "body": None, "amount": Decimal("1.00"), "at": dt.datetime(2026, 1, 1)}
    for apart in (("record",), ("count",)):  # not the table's; the table's but not in the rows
        with pytest.raises(ValueError, match="no columns"):
            _insert_document(ROWS, [{**row, "day": dt.date(2026, 1, 1)}], apart=apart)


def test_a_text_apart_is_text() -> None:
    row = {"label": "x", "amount": Decimal("1.00"), "at": dt.datetime(2026, 1, 1), "day": dt.date(2026, 1, 1)}
    with pytest.raises(TypeError, match=r"exchange_rows\.body"):
        _insert_document(ROWS, [{**row, "body": b"{}", "count": 1}], apart=("body",))


def test_one_round_trip_gives_each_statement_its_rows(connection: psycopg.Connection[Any]) -> None:
    found = _exchange(
        connection,
        [
            ("BEGIN", None),
            ("SELECT %(a)s::text AS a, %(n)s::int[] AS n", {"a": "it's 100% $$", "n": [3, 1, 2]}),
            ("SELECT pg_advisory_xact_lock(k) FROM unnest(%(keys)s::bigint[]) AS k", {"keys": [1, 2]}),
            ("COMMIT", None),
        ],
    )
    assert [len(rows) for rows in found] == [0, 1, 2, 0]
    assert found[1][0].a == "it's 100% $$" and found[1][0].n == [3, 1, 2]


def test_a_failing_statement_stops_the_exchange_and_keeps_nothing(connection: psycopg.Connection[Any]) -> None:
    at, day = dt.datetime(2026, 1, 1), dt.date(2026, 1, 1)
    row = {"label": "x", "body": None, "amount": Decimal("1.00"), "at": at, "day": day}
    with pytest.raises(psycopg.errors.NotNullViolation):  # the second row has no count
        _exchange(connection, [("BEGIN", None), _insert(ROWS, [{**row, "count": 1}, {**row, "count": None}])])
    assert connection.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
    connection.execute("ROLLBACK")
    [kept] = connection.execute("SELECT count(*) AS n FROM exchange_rows").fetchall()
    assert kept.n == 0


def test_a_tag_the_text_contains_is_never_the_quote(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = iter(["0123456789abcdef", "fedcba9876543210"])
    monkeypatch.setattr(secrets, "token_hex", lambda _n: next(drawn))  # as the group desk draws its tags
    text = b"before $g0123456789abcdef$ after"
    assert _dollar_quoted(text) == b"$gfedcba9876543210$" + text + b"$gfedcba9876543210$"


def test_a_moment_with_a_time_zone_is_refused() -> None:
    row = {"label": "x", "body": None, "amount": Decimal("1.00"), "day": dt.date(2026, 1, 1), "count": 1}
    with pytest.raises(TypeError) as refused:  # orjson's error, with ours as its cause
        _insert(ROWS, [{**row, "at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}])
    assert "time zone" in str(refused.value.__cause__)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(awkward, min_size=1, max_size=8))
def test_postgresql_numbers_a_lock_as_the_desk_does(connection: psycopg.Connection[Any], names: list[str]) -> None:
    [found] = _exchange(
        connection, [(f"SELECT array(SELECT {lock_key_sql('n')} FROM unnest(%(n)s::text[]) n) AS k", {"n": names})]
    )
    assert found[0].k == [lock_key(name) for name in names]


def test_the_group_locks_each_person_to_be_settled_and_the_household_the_register_gives(
    connection: psycopg.Connection[Any],
) -> None:
    """One lock per ledger entity: Z's household has person P3's id, and the two are one lock, so that every
    writer of the entity "P3" holds it. The rows name the entities locked."""
    connection.execute("CREATE TEMP TABLE people (person_id text, household_id text)")  # shadows any real one
    connection.execute("INSERT INTO people VALUES ('P1', 'H1'), ('P2', 'H1'), ('P3', 'H3'), ('Q', 'HQ'), ('Z', 'P3')")
    connection.execute("BEGIN")
    [rows] = _exchange(connection, [(_LOCKS, {"settling": ["P1", "P2", "P3", "Z", "unregistered"]})])
    held = connection.execute(
        "SELECT (classid::bigint << 32 | objid::bigint) AS k FROM pg_locks "
        "WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
    ).fetchall()
    connection.execute("ROLLBACK")
    entities = {"P1", "P2", "P3", "Z", "H1", "H3", "unregistered"}
    assert sorted(row.entity for row in rows) == sorted(entities)
    expected = {*lock_keys("P1", "H1"), *lock_keys("P2", "H1"), *lock_keys("P3", "H3"), *lock_keys("Z", "P3")}
    assert expected | {lock_key(lock_name("unregistered"))} == {lock_key(lock_name(e)) for e in entities}
    assert sorted((k.k + 2**63) % 2**64 - 2**63 for k in held) == sorted({lock_key(lock_name(e)) for e in entities})
