"""Out-of-core simulation: a dataset cut into partitions of whole households and persons, each read and
checked alone, and running totals that merge exactly — so that any partitioning, in any order, gives the
report of the dataset settled in one piece."""

from __future__ import annotations

import json
import random
import tempfile
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doudi import services
from simulation.dataset import COLUMNS, ClaimsWriter, DatasetError, batch_of, load_claims, write_claims
from simulation.generate import generate, generate_chunks
from simulation.partitions import partition, partition_table, read_part
from simulation.report import compare, comparison, summary
from simulation.run import Scenario, settle_scenario
from simulation.runner import Job, run, settle_part
from simulation.tally import ExactCounts, Tally

LIBRARY = services.open_library()
JILIN = {"220581": "jl-meihekou", "220100": "jl-changchun", "220400": "jl-liaoyuan"}
JOB = Job(Scenario("baseline", LIBRARY, JILIN), Scenario("reform", LIBRARY, {"*": "jl-meihekou"}))


def id_table(households: list[int], persons: list[int]) -> pa.Table:
    """A table with every column of the format, only the ids meaningful (planning reads only those)."""
    n = len(households)
    columns = {name: pa.array([""] * n) for name in COLUMNS}
    columns["household_id"] = pa.array([f"H{h}" for h in households])
    columns["person_id"] = pa.array([f"P{p}" for p in persons])
    return pa.table(columns)


@st.composite
def id_rows(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    """Rows of households and persons in any order: mostly runs (as files are stored), sometimes a
    household or a person coming back later, sometimes a person moving between households."""
    households: list[int] = []
    persons: list[int] = []
    for _ in range(draw(st.integers(0, 40))):
        household = draw(st.integers(0, 12))
        person = draw(st.integers(0, 20)) if draw(st.booleans()) else household * 3 + draw(st.integers(0, 2))
        repeat = draw(st.integers(1, 4))
        households += [household] * repeat
        persons += [person] * repeat
    return households, persons


@settings(max_examples=200, deadline=None)
@given(id_rows(), st.integers(1, 30))
def test_partitions_never_split_a_household_or_a_person(rows: tuple[list[int], list[int]], size: int) -> None:
    households, persons = rows
    planned = partition_table(id_table(households, persons), "<test>", size)
    starts = [p.first_row for p in planned.parts]
    assert starts[0] == 0 and planned.claims == len(households)
    assert [p.first_row + p.claims for p in planned.parts][:-1] == starts[1:]  # contiguous, in order
    assert sum(p.claims for p in planned.parts) == len(households)
    part_of = np.repeat(np.arange(len(planned.parts)), [p.claims for p in planned.parts])
    for ids in (households, persons):
        where: dict[int, set[int]] = {}
        for row, value in enumerate(ids):
            where.setdefault(value, set()).add(int(part_of[row]))
        assert all(len(parts) == 1 for parts in where.values())


@settings(max_examples=200, deadline=None)
@given(id_rows())
def test_partitions_of_one_claim_are_cut_wherever_a_cut_is_allowed(rows: tuple[list[int], list[int]]) -> None:
    households, persons = rows
    planned = partition_table(id_table(households, persons), "<test>", 1)
    allowed = [
        c
        for c in range(1, len(households))
        if not (set(households[:c]) & set(households[c:])) and not (set(persons[:c]) & set(persons[c:]))
    ]
    assert [p.first_row for p in planned.parts][1:] == allowed


@settings(max_examples=60, deadline=None)
@given(id_rows(), st.integers(1, 30), st.integers(1, 9))
def test_row_groups_and_files_do_not_change_where_cuts_are_allowed(
    rows: tuple[list[int], list[int]], size: int, group: int
) -> None:
    """Planning reads a Parquet dataset a row group at a time, across files: a household or a person
    running over the edge of a group or a file is still one, and the cuts are those of the table whole."""
    households, persons = rows
    table = id_table(households, persons)
    allowed = {p.first_row for p in partition_table(table, "<test>", 1).parts}  # every allowed cut
    with tempfile.TemporaryDirectory() as folder:
        half = table.num_rows // 2
        pq.write_table(table.slice(0, half), Path(folder) / "part-0.parquet", row_group_size=group)
        pq.write_table(table.slice(half), Path(folder) / "part-1.parquet", row_group_size=group)
        planned = partition(folder, size)
    assert {p.first_row for p in planned.parts} <= allowed
    assert sum(p.claims for p in planned.parts) == len(households)
    part_of = np.repeat(np.arange(len(planned.parts)), [p.claims for p in planned.parts])
    for ids in (households, persons):
        assert all(len({int(part_of[i]) for i, v in enumerate(ids) if v == value}) == 1 for value in set(ids))


def test_a_dataset_in_household_order_is_cut_near_the_size_asked(tmp_path: Path) -> None:
    dataset = generate(6_000, seed=11)
    write_claims(dataset, tmp_path / "claims.parquet")
    planned = partition(tmp_path / "claims.parquet", 2_000)
    assert len(planned.parts) == -(-len(dataset) // 2_000)
    assert all(1_500 <= p.claims <= 2_000 for p in planned.parts[:-1])
    households = dataset.frame["household_id"].to_numpy()
    for part in planned.parts[1:]:
        assert households[part.first_row] != households[part.first_row - 1]


def test_a_folder_is_cut_at_its_files_edges_when_they_are_near(tmp_path: Path) -> None:
    dataset = generate(6_000, seed=12)
    write_claims(dataset, tmp_path / "parts", part_rows=1_000)
    files = sorted((tmp_path / "parts").glob("*.parquet"))
    planned = partition(tmp_path / "parts", 1_000)
    assert [len(p.pieces) for p in planned.parts] == [1] * len(files)
    assert [p.pieces[0].file for p in planned.parts] == [str(f) for f in files]
    both = partition(tmp_path / "parts", 2_500)
    rows = np.concatenate([read_part(p).frame["claim_id"].to_numpy() for p in both.parts])
    assert rows.tolist() == dataset.frame["claim_id"].tolist()


def test_a_bad_row_is_named_by_its_row_in_the_whole_dataset(tmp_path: Path) -> None:
    dataset = generate(3_000, seed=13)
    frame = dataset.frame.copy()
    frame.loc[4_000, "fully_self_paid"] = frame.loc[4_000, "total"] + 1
    write_claims(frame, tmp_path / "parts", part_rows=1_000)
    planned = partition(tmp_path / "parts", 1_000)
    failing = [p for p in planned.parts if p.first_row <= 4_000 < p.first_row + p.claims]
    assert failing[0].number > 0
    with pytest.raises(DatasetError) as refused:
        read_part(failing[0])
    assert [(p.row, p.column) for p in refused.value.problems] == [(4_001, "total")]
    with pytest.raises(DatasetError, match="row 4001, total"):
        load_claims(tmp_path / "parts")  # the same row, read whole


def test_planning_names_a_dataset_it_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "x.parquet").write_bytes(b"not parquet")
    with pytest.raises(DatasetError, match="cannot read it as Parquet"):
        partition(tmp_path / "x.parquet")
    pq.write_table(pa.table({"claim_id": ["a"]}), tmp_path / "few.parquet")
    with pytest.raises(DatasetError, match="person_id: the column is missing"):
        partition(tmp_path / "few.parquet")
    with pytest.raises(DatasetError, match=r"expected a \.parquet or \.csv file"):
        partition(tmp_path / "claims.txt")


values = st.lists(
    st.one_of(st.integers(-5, 5), st.integers(0, 2_000_000), st.integers(-(10**12), 10**12)), max_size=300
)


@settings(max_examples=200, deadline=None)
@given(values, st.randoms(use_true_random=False))
def test_exact_counts_give_the_percentile_of_the_sorted_values(found: list[int], shuffle: random.Random) -> None:
    points = (0, 1, 10, 25, 50, 75, 90, 95, 99, 100)
    pieces = [found[i : i + 7] for i in range(0, len(found), 7)]
    shuffle.shuffle(pieces)
    merged = ExactCounts()
    for piece in pieces:
        merged.add(ExactCounts.of(np.array(piece, np.int64)))
    ordered = sorted(found)
    expected = [ordered[(len(ordered) - 1) * p // 100] if ordered else 0 for p in points]
    assert merged.percentiles(points) == expected
    assert merged.total == len(found)
    if ordered:  # numpy's "lower" method agrees
        assert expected == [int(v) for v in np.percentile(ordered, points, method="lower")]


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("province") / "parts"
    write_claims(generate(8_000, seed=21), folder, part_rows=3_000)
    return folder


def summary_of(found: Tally) -> str:
    return json.dumps(summary(comparison(found, JOB.share), {}), sort_keys=True)


@pytest.mark.parametrize("part_claims", [500, 2_900, 1_000_000])
def test_any_partitioning_gives_the_report_of_the_whole(province: Path, part_claims: int) -> None:
    dataset = load_claims(province)
    batch = batch_of(dataset)
    regions = dataset.frame["region"].to_numpy(dtype=object)
    whole = compare(
        dataset.frame,
        settle_scenario(JOB.baseline, regions, batch),
        settle_scenario(JOB.reform, regions, batch),
        JOB.share,
    )
    expected = json.dumps(summary(whole, {}), sort_keys=True)
    planned = partition(province, part_claims)
    assert summary_of(run(planned, JOB)) == expected
    # Folded in another order (as Dask workers finish), the figures are the same.
    parts = [settle_part(p, JOB) for p in planned.parts]
    backwards = Tally()
    for found in reversed(parts):
        backwards.add(found)
    assert summary_of(backwards) == expected


def test_progress_is_reported_after_each_partition(province: Path) -> None:
    seen = []
    planned = partition(province, 3_000)
    run(planned, JOB, progress=seen.append)
    assert [p.parts_done for p in seen] == list(range(len(planned.parts) + 1))
    assert seen[-1].claims_done == seen[-1].claims_total == planned.claims
    assert seen[-1].fraction == 1.0 and seen[0].eta is None and "claims/s" in seen[-1].line()


def test_a_catastrophic_share_outside_0_to_1_is_refused() -> None:
    job = Job(JOB.baseline, JOB.reform, Decimal("1.5"))
    assert job.problems() == ["the catastrophic share 1.5 must be above 0 and at most 1"]
    assert Job(JOB.baseline, JOB.reform, Decimal("0.12345")).problems()[0].endswith("four decimal places")


def test_chunks_continue_one_population(tmp_path: Path) -> None:
    chunks = list(generate_chunks(9_000, seed=5, chunk_people=4_000))
    assert len(chunks) == 3
    first = generate(4_000, seed=5)
    assert chunks[0].frame.equals(first.frame)  # a population of one chunk is generate()'s
    for column in ("claim_id", "person_id", "household_id"):
        values = [set(c.frame[column]) for c in chunks]
        assert not (values[0] & values[1]) and not (values[1] & values[2]), column
    with ClaimsWriter(tmp_path / "parts", part_rows=2_500) as writer:
        for chunk in chunks:
            writer.write(chunk)
    whole = load_claims(tmp_path / "parts")
    assert len(whole) == sum(len(c) for c in chunks)
    files_of: dict[str, int] = {}
    for path in sorted((tmp_path / "parts").glob("*.parquet")):  # every part holds whole households
        for household in set(pq.read_table(path, columns=["household_id"]).column(0).to_pylist()):
            files_of[household] = files_of.get(household, 0) + 1
    assert len(files_of) == whole.frame["household_id"].nunique() and set(files_of.values()) == {1}
