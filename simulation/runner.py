"""Running a simulation over a partitioned dataset: one partition at a time on this machine, or one per task
on a Dask cluster, with the same function settling each partition, and the figures folded into one `Tally`.

`settle_part` is the whole of the work on a partition: read and check its claims, settle them under the
baseline and under the reform with the engine's batch path (simulation/run.py), and keep only the report's
running totals (simulation/tally.py). Memory is that of one partition (per worker), whatever the size of
the dataset. Progress (partitions done, claims settled, rate, time left) is reported after each partition.

On Dask (`scheduler`: the address of a running scheduler, or `local` / `local:N` for a cluster of N worker
processes on this machine) the job — both scenarios with their policy libraries — is sent to every worker
once, each task settles one partition, and the client folds in results as they arrive. Workers must be
able to read the dataset's files at the same paths (a shared file system) and run the same version of
Doudi. Folding is exact in any order, so the result equals the single-machine run's.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from simulation.dataset import Dataset, batch_of
from simulation.outputs import write
from simulation.partitions import PART_CLAIMS, Part, Partitioned, partition, read_part
from simulation.report import Comparison, comparison, summary
from simulation.run import Scenario, settle_scenario
from simulation.tally import MOVERS, Tally, share_fraction, tally


@dataclass(frozen=True)
class Job:
    """What every partition is settled with."""

    baseline: Scenario
    reform: Scenario
    share: Decimal = Decimal("0.4")  # household burden / income counted as catastrophic
    movers: int = MOVERS

    def problems(self) -> list[str]:
        found = self.baseline.problems() + self.reform.problems()
        try:
            share_fraction(self.share)
        except ValueError as err:
            found.append(str(err))
        return found


def settle_part(part: Part, job: Job) -> Tally:
    """Settle one partition under both scenarios and return its figures."""
    return settle_dataset(read_part(part), job)


def settle_dataset(dataset: Dataset, job: Job) -> Tally:
    """Settle claims already read (whole households) under both scenarios and return their figures."""
    batch = batch_of(dataset)
    regions = dataset.frame["region"]
    baseline = settle_scenario(job.baseline, regions, batch)
    reform = settle_scenario(job.reform, regions, batch)
    found = tally(
        dataset.frame,
        baseline,
        reform,
        job.share,
        job.movers,
        person=(batch.person, batch.person_ids),
        household=(batch.household, batch.household_ids),
    )
    del dataset, batch, baseline, reform
    pa.default_memory_pool().release_unused()
    return found


@dataclass(frozen=True)
class Progress:
    """How far a run is."""

    parts_done: int
    parts_total: int
    claims_done: int
    claims_total: int
    elapsed: float  # seconds since the first partition started

    @property
    def fraction(self) -> float:
        return self.claims_done / self.claims_total if self.claims_total else float(self.parts_done >= self.parts_total)

    @property
    def rate(self) -> float:
        """Claims settled a second (both scenarios)."""
        return self.claims_done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far; None before the first partition is done."""
        if self.claims_done == 0 or self.rate == 0:
            return None
        return (self.claims_total - self.claims_done) / self.rate

    def line(self) -> str:
        eta = self.eta
        left = f", about {_duration(eta)} left" if eta is not None and self.claims_done < self.claims_total else ""
        return (
            f"{self.claims_done:,} of {self.claims_total:,} claims ({self.fraction:.0%}), partition "
            f"{self.parts_done} of {self.parts_total}, {self.rate:,.0f} claims/s{left}"
        )


def _duration(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60:02d} s" if whole >= 60 else f"{whole} s"


OnProgress = Callable[[Progress], None]


def run(partitioned: Partitioned, job: Job, scheduler: str | None = None, progress: OnProgress | None = None) -> Tally:
    """Settle every partition and fold the figures together; on Dask when `scheduler` is given."""
    if scheduler:
        return _run_dask(partitioned, job, scheduler, progress)
    total = Tally(movers=job.movers)
    started = time.perf_counter()
    done = 0
    if progress:
        progress(Progress(0, len(partitioned), 0, partitioned.claims, 0.0))
    # The next partition is read and checked (Arrow, which works outside the interpreter lock) while this
    # one is settled: two partitions in memory at most.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="doudi-read") as reader:
        ahead = reader.submit(read_part, partitioned.parts[0]) if partitioned.parts else None
        for number, part in enumerate(partitioned.parts, start=1):
            assert ahead is not None
            dataset = ahead.result()
            ahead = reader.submit(read_part, partitioned.parts[number]) if number < len(partitioned) else None
            total.add(settle_dataset(dataset, job))
            del dataset
            done += part.claims
            if progress:
                progress(Progress(number, len(partitioned), done, partitioned.claims, time.perf_counter() - started))
    return total


@contextlib.contextmanager
def dask_client(scheduler: str) -> Iterator[Any]:
    """A client of the scheduler at `scheduler`, or of a cluster of worker processes on this machine
    (`local`: two workers; `local:N`: N), closed afterwards."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler == "local" or scheduler.startswith("local:"):
        count = scheduler.partition(":")[2]
        if count and not (count.isdigit() and int(count) >= 1):
            raise ValueError(f"--scheduler {scheduler!r}: write local, local:N (N workers) or a scheduler's address")
        workers = int(count) if count else 2
        # Dask starts workers with MALLOC_TRIM_THRESHOLD_ set, which also turns off glibc's adaptive mmap
        # threshold: every array of a partition is then mapped and unmapped afresh (eight times the page
        # faults, twice the CPU). Workers here allocate as this process does.
        environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
        environ.pop("MALLOC_TRIM_THRESHOLD_", None)
        with (
            dask.config.set({"distributed.nanny.pre-spawn-environ": environ}),
            LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            ) as cluster,
            Client(cluster) as client,  # type: ignore[no-untyped-call]
        ):
            yield client
        return
    with Client(scheduler, timeout="30s") as client:  # type: ignore[no-untyped-call]
        yield client


def _run_dask(partitioned: Partitioned, job: Job, scheduler: str, progress: OnProgress | None) -> Tally:
    from distributed import as_completed

    with dask_client(scheduler) as client:
        shared = client.scatter(job, broadcast=True, hash=False)
        started = time.perf_counter()
        futures = client.map(settle_part, list(partitioned.parts), job=shared, pure=False)
        claims = {future.key: part.claims for future, part in zip(futures, partitioned.parts, strict=True)}
        total = Tally(movers=job.movers)
        done = parts = 0
        if progress:
            progress(Progress(0, len(partitioned), 0, partitioned.claims, 0.0))
        try:
            for future in as_completed(futures):  # type: ignore[no-untyped-call]
                total.add(future.result())
                done += claims[future.key]
                parts += 1
                future.release()
                if progress:
                    progress(Progress(parts, len(partitioned), done, partitioned.claims, time.perf_counter() - started))
        finally:
            client.cancel(futures)
    return total


def simulate(
    claims: Path | str,
    job: Job,
    out: Path,
    meta: dict[str, Any],
    scheduler: str | None = None,
    part_claims: int = PART_CLAIMS,
    progress: OnProgress | None = None,
    person_ids: Callable[[str], str] = str,
) -> tuple[Comparison, list[Path]]:
    """Plan the dataset's partitions, settle them all, and write the report to `out` (only once every
    partition has settled: a failed run writes nothing); `person_ids` as `outputs.write` takes it."""
    partitioned = partition(claims, part_claims)
    found = run(partitioned, job, scheduler, progress)
    result = comparison(found, job.share)
    return result, write(out, result, summary(result, meta), person_ids)


def labels(claims: Path | str, baseline: dict[str, str], reform: str) -> dict[str, str]:
    """What a report says it compared: the dataset's name (not where it is), the baseline and the reform."""
    return {
        "claims_file": Path(claims).name,
        "baseline_label": ", ".join(f"{a}={p}" for a, p in sorted(baseline.items())),
        "reform_label": reform,
    }
