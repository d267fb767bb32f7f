"""SQLite writers of one process wait for each other in a queue (`doudi.desk.sqlite_connect_args`) before
they ask SQLite for its write lock: a writer goes as soon as the one before has ended its transaction,
however it ended, and SQLite's lock still decides between processes."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from doudi.desk import serialise_sqlite_writes, sqlite_connect_args

WAIT = 0.3  # seconds a writer waits for its turn (and for SQLite's lock) before "database is locked"


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "queue.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (n INTEGER)")
    return path


@pytest.fixture
def engine(database: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{database}", connect_args=sqlite_connect_args(busy_seconds=WAIT))
    serialise_sqlite_writes(engine)
    yield engine
    engine.dispose()


def _write(engine: Engine, n: int) -> None:
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})


def _count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM t")).scalar_one())


def test_a_writer_waits_for_the_one_before_and_goes_when_it_commits(database: Path) -> None:
    # Waiting longer than the test takes: the second writer must be woken by the commit, not time out.
    engine = create_engine(f"sqlite:///{database}", connect_args=sqlite_connect_args(busy_seconds=30))
    serialise_sqlite_writes(engine)
    began = threading.Event()

    def second() -> None:
        with engine.begin() as connection:
            began.set()
            connection.execute(text("INSERT INTO t VALUES (2)"))

    with engine.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (1)"))
        waiting = threading.Thread(target=second)
        waiting.start()
        assert not began.wait(0.2)  # its turn has not come: the first holds it
    waiting.join(10)
    assert began.is_set()
    assert _count(engine) == 2
    engine.dispose()


def test_the_turn_is_given_back_however_a_transaction_ends(engine: Engine) -> None:
    # Each time, the next writer would wait WAIT seconds and fail if the turn had been kept.
    with engine.connect() as connection:  # rolled back
        connection.begin()
        connection.execute(text("INSERT INTO t VALUES (1)"))
        connection.rollback()
    _write(engine, 2)

    connection = engine.connect()  # closed with its transaction open: the pool resets it
    connection.begin()
    connection.execute(text("INSERT INTO t VALUES (3)"))
    connection.close()
    _write(engine, 4)

    connection = engine.connect()  # its database connection thrown away
    connection.begin()
    connection.execute(text("INSERT INTO t VALUES (5)"))
    connection.invalidate()
    connection.close()
    _write(engine, 6)

    with pytest.raises(ZeroDivisionError), engine.begin() as connection:  # an error inside the transaction
        connection.execute(text("INSERT INTO t VALUES (7)"))
        raise ZeroDivisionError
    _write(engine, 8)

    assert _count(engine) == 4  # the writes after each: none of the transactions that ended early


def test_a_writer_kept_waiting_too_long_is_told_the_database_is_locked(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (1)"))
        failed: list[BaseException] = []

        def second() -> None:
            try:
                _write(engine, 2)
            except BaseException as err:
                failed.append(err)

        waiting = threading.Thread(target=second)
        waiting.start()
        waiting.join(10)
    assert len(failed) == 1 and isinstance(failed[0], OperationalError)
    assert "database is locked" in str(failed[0])
    assert _count(engine) == 1
    _write(engine, 3)  # the failed writer took no turn it did not give back
    assert _count(engine) == 2


def test_sqlite_still_decides_between_processes_and_a_refused_writer_gives_its_turn_back(
    engine: Engine, database: Path
) -> None:
    other = sqlite3.connect(database, isolation_level=None)  # another process's connection, as SQLite sees it
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(OperationalError, match="database is locked"):
        _write(engine, 2)
    other.execute("COMMIT")
    other.close()
    _write(engine, 3)
    assert _count(engine) == 2


def test_reads_take_no_turn(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (1)"))
        read = engine.execution_options(doudi_read_only=True)
        with read.begin() as reading:  # would wait WAIT seconds and fail if it queued behind the writer
            assert reading.execute(text("SELECT count(*) FROM t")).scalar_one() == 0


def test_writers_of_two_queues_on_one_file_never_interleave(database: Path) -> None:
    """Two engines on one file stand for two processes, each with its own queue: sixteen writers that read
    the highest number and write the next lose none, whichever queue each comes through."""
    engines = [
        create_engine(f"sqlite:///{database}", connect_args=sqlite_connect_args(busy_seconds=30)) for _ in range(2)
    ]
    for engine in engines:
        serialise_sqlite_writes(engine)

    def writer(i: int) -> None:
        with engines[i % 2].begin() as connection:
            last = connection.execute(text("SELECT coalesce(max(n), 0) FROM t")).scalar_one()
            connection.execute(text("INSERT INTO t VALUES (:n)"), {"n": last + 1})

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    with engines[0].connect() as connection:
        assert connection.execute(text("SELECT n FROM t ORDER BY n")).scalars().all() == list(range(1, 17))
    for engine in engines:
        engine.dispose()
