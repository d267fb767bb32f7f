"""Simulations as background jobs for the service: the same run as `doudi simulate`, started over HTTP,
watched while it runs, its report downloaded when it is done.

Everything lives in one folder, so that a restarted service shows what was there before:

    datasets/<name>.parquet, <name>.json   claims datasets (uploaded ones checked and stored as canonical
                                           Parquet; the built-in synthetic province made on first use)
    sheets/<id>.xlsx                       uploaded parameter sheets
    jobs/<id>/job.json                     a job: its request, owner, state and progress
    jobs/<id>/out/                         its report: summary.json, report.xlsx, report.html

A job is checked in full when it is submitted (the dataset and sheet exist, the baseline and the reform
are valid policies, every override applies and passes the library's checks), and refused with every
problem named; nothing is queued then. Accepted jobs run one at a time (`max_running`) in a process of
their own, started from a supervising thread: a simulation's memory and CPU stay out of the server's
process, and a crashed run only fails its job. The process writes its progress into job.json as each
partition is settled. A job whose process is gone when the service starts again (a restart, a crash) is
marked failed, with the reason; so is a job still queued by a service that is gone.
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
import os
import pickle
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from doudi.accounts import Principal
from doudi.desk import NotFound
from doudi.masking import identifier
from policies.library import Library
from simulation.dataset import DatasetError, load_claims, write_claims
from simulation.partitions import PART_CLAIMS
from simulation.reform import ReformError, build_reform, sheet_overrides
from simulation.run import Scenario, ScenarioError
from simulation.runner import Job, Progress, labels, simulate

BUILTIN: Final = "jilin-synthetic-2014"
BUILTIN_PEOPLE: Final = 50_000
BUILTIN_SEED: Final = 2014
OUTPUT_FILES: Final = ("summary.json", "report.xlsx", "report.html")
CONTENT_TYPES: Final = {
    "summary.json": "application/json",
    "report.xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "report.html": "text/html; charset=utf-8",
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ID = re.compile(r"^[0-9a-f]{16}$")

State = Literal["queued", "running", "done", "failed"]


class SimulationRequest(BaseModel):
    """What to simulate: a dataset, the baseline, and the reform (a policy, overrides, a sheet; stacked)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(description="A dataset listed by GET /v1/simulations/datasets")
    baseline: str = Field(description="POLICY (the versions in force on each claim's date) or POLICY@VERSION")
    reform: str | None = Field(None, description="POLICY or POLICY@VERSION replacing the baseline everywhere")
    overrides: list[str] = Field(default_factory=list, description="POLICY@VERSION:PATH=VALUE, as `--set`")
    sheet: str | None = Field(None, description="An uploaded parameter sheet's id")
    catastrophic_share: Decimal = Field(Decimal("0.4"), description="Household burden / income counted catastrophic")


class JobStatus(BaseModel):
    id: str
    owner: str
    state: State
    progress: float = 0.0  # 0..1
    stage: str = ""
    claims_done: int = 0
    claims_total: int = 0
    problems: list[str] = Field(default_factory=list)
    files: list[str] = Field(default_factory=list)
    summary: dict[str, Any] | None = None
    request: dict[str, Any] = Field(default_factory=dict)
    submitted_at: str = ""
    finished_at: str | None = None


class SimulationRefused(ValueError):
    """A request that cannot run: every problem, each also as (field, message) for an API's answer."""

    def __init__(self, problems: list[str], fields: list[tuple[str, str]] | None = None):
        self.problems = list(problems)
        self.fields = fields if fields is not None else [("request", p) for p in problems]
        super().__init__("\n".join(self.problems))


class DatasetRefused(SimulationRefused):
    """An uploaded dataset with problems: the first ones (row, column, message) and how many in all."""

    def __init__(self, problems: list[str], count: int):
        super().__init__(problems, [("dataset", p) for p in problems])
        self.count = count


class NoSuchJob(KeyError):
    pass


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Written whole or not at all: readers in other processes never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(data, out, ensure_ascii=False, indent=2)
    os.replace(temporary, path)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SimulationJobs:
    """The service's simulation jobs, datasets and parameter sheets in `folder`."""

    def __init__(self, folder: Path, library: Callable[[], Library], max_running: int = 1):
        self.folder = Path(folder)
        self.library = library
        self._slots = threading.Semaphore(max(1, max_running))
        self._lock = threading.Lock()
        self._recover()

    # ---------------------------------------------------------------------------------------------------
    # Datasets and sheets
    # ---------------------------------------------------------------------------------------------------

    @property
    def _datasets(self) -> Path:
        return self.folder / "datasets"

    def datasets(self) -> list[dict[str, Any]]:
        """The built-in synthetic province (made on first use) and every uploaded dataset."""
        builtin = self._datasets / f"{BUILTIN}.json"
        found: list[dict[str, Any]] = [
            json.loads(builtin.read_text(encoding="utf-8"))
            if builtin.exists()
            else {
                "name": BUILTIN,
                "builtin": True,
                "description": f"synthetic Jilin province-year 2014 of {BUILTIN_PEOPLE:,} people (doudi generate "
                f"--people {BUILTIN_PEOPLE} --seed {BUILTIN_SEED}); made when first used",
                "claims": None,
            }
        ]
        if self._datasets.exists():
            for meta in sorted(self._datasets.glob("*.json")):
                if meta.stem != BUILTIN:
                    found.append(json.loads(meta.read_text(encoding="utf-8")))
        return found

    def dataset_path(self, name: str) -> Path:
        return self._datasets / f"{name}.parquet"

    def add_dataset(self, name: str, data: bytes, filename: str) -> str:
        """Check an uploaded claims dataset (Parquet or CSV, by the file's name or its first bytes) and store
        it; DatasetRefused names its bad rows, SimulationRefused a bad name or kind of file."""
        if not _NAME.match(name):
            raise SimulationRefused(
                [f"name: {name!r} is not a dataset name (letters, digits and ._-, at most 64)"],
                [("name", f"{name!r} is not a dataset name (letters, digits and ._-, at most 64)")],
            )
        suffix = Path(filename).suffix.lower()
        if data[:4] == b"PAR1":
            suffix = ".parquet"
        elif data.removeprefix(b"\xef\xbb\xbf").startswith(b"claim_id,"):  # a CSV's header, whatever its name
            suffix = ".csv"
        if suffix not in (".csv", ".parquet"):
            message = f"{filename!r} is neither Parquet nor CSV (name it .parquet or .csv)"
            raise SimulationRefused([f"file: {message}"], [("file", message)])
        with self._lock:  # one upload of a name at a time: the second is told the name is taken
            if name == BUILTIN or (self._datasets / f"{name}.json").exists():
                raise SimulationRefused([f"name: a dataset {name!r} exists already"], [("name", "exists already")])
            return self._store_dataset(name, data, filename, suffix)

    def _store_dataset(self, name: str, data: bytes, filename: str, suffix: str) -> str:
        with tempfile.TemporaryDirectory(prefix="doudi-upload-") as scratch:
            upload = Path(scratch) / f"upload{suffix}"
            upload.write_bytes(data)
            try:
                dataset = load_claims(upload)
            except DatasetError as err:
                raise DatasetRefused([str(p) for p in err.problems], err.count) from None
            self._datasets.mkdir(parents=True, exist_ok=True)
            staged = Path(scratch) / f"{name}.parquet"
            write_claims(dataset, staged)
            os.replace(staged, self.dataset_path(name))
        frame = dataset.frame
        _write_json(
            self._datasets / f"{name}.json",
            {
                "name": name,
                "builtin": False,
                "description": f"uploaded as {Path(filename).name}",
                "claims": len(frame),
                "people": int(frame["person_id"].nunique()),
                "households": int(frame["household_id"].nunique()),
                "uploaded_at": _now(),
            },
        )
        return name

    def add_sheet(self, data: bytes) -> str:
        """Store a parameter sheet (XLSX: policy, path, value) whose rows read as overrides; its id."""
        try:
            sheet_overrides(data, "sheet")
        except ReformError as err:
            problems = [str(p) for p in err.problems]
            raise SimulationRefused(problems, [("sheet", p) for p in problems]) from None
        sheet_id = secrets.token_hex(8)
        path = self.folder / "sheets" / f"{sheet_id}.xlsx"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return sheet_id

    # ---------------------------------------------------------------------------------------------------
    # Jobs
    # ---------------------------------------------------------------------------------------------------

    def _job_dir(self, job_id: str) -> Path:
        if not _ID.match(job_id):
            raise NoSuchJob(job_id)
        return self.folder / "jobs" / job_id

    def prepare(self, request: SimulationRequest) -> tuple[Job, dict[str, Any]]:
        """The job a request describes, checked in full: every problem at once in SimulationRefused."""
        fields: list[tuple[str, str]] = []
        known = {d["name"] for d in self.datasets()}
        if request.dataset not in known:
            fields.append(("dataset", f"no dataset {request.dataset!r} (there is: {', '.join(sorted(known))})"))
        sheet: tuple[str, bytes] | None = None
        if request.sheet is not None:
            path = self.folder / "sheets" / f"{request.sheet}.xlsx"
            if _ID.match(request.sheet) and path.exists():
                sheet = (f"{request.sheet}.xlsx", path.read_bytes())
            else:
                fields.append(("sheet", f"no uploaded sheet {request.sheet!r}"))
        library = self.library()
        baseline = {"*": request.baseline.strip()}
        base = Scenario("baseline", library, baseline)
        fields += [("baseline", p) for p in base.problems()]
        reform_values = [request.reform] if request.reform is not None else []
        if any(v.strip().endswith((".yaml", ".yml")) or "=" in v for v in reform_values):
            fields.append(("reform", "name a policy as POLICY or POLICY@VERSION"))
            reform_values = []
        try:
            reform = build_reform(
                library,
                baseline,
                reform_values,
                request.overrides,
                sheet,
                override_name=lambda i: f"overrides[{i - 1}]",
            )
        except ReformError as err:
            for problem in err.problems:
                field = "overrides" if problem.file.startswith(("overrides[", "reform:")) else None
                field = field or ("sheet" if sheet and problem.file.startswith(sheet[0]) else "reform")
                fields.append((field, str(problem)))
            reform = None
        job = None
        if reform is not None:
            job = Job(base, Scenario("reform", reform.library, reform.policies), request.catastrophic_share)
            fields += [("reform", p) for p in job.reform.problems()]
        try:
            from simulation.tally import share_fraction

            share_fraction(request.catastrophic_share)
        except ValueError as err:
            fields.append(("catastrophic_share", str(err)))
        if fields or job is None:
            raise SimulationRefused([f"{f}: {m}" for f, m in fields], fields)
        meta = labels(self.dataset_path(request.dataset), baseline, reform.label if reform else "")
        return job, meta

    def submit(self, request: SimulationRequest, owner: str) -> str:
        """Queue a checked request; its job id. SimulationRefused (nothing queued) names every problem."""
        self.prepare(request)
        job_id = secrets.token_hex(8)
        status = JobStatus(
            id=job_id,
            owner=owner,
            state="queued",
            stage="queued",
            request=request.model_dump(mode="json"),
            submitted_at=_now(),
        )
        self._save(status, server_pid=os.getpid())
        self._start(job_id)
        return job_id

    def get(self, job_id: str) -> JobStatus:
        path = self._job_dir(job_id) / "job.json"
        if not path.exists():
            raise NoSuchJob(job_id)
        data = json.loads(path.read_text(encoding="utf-8"))
        return JobStatus.model_validate({k: v for k, v in data.items() if k in JobStatus.model_fields})

    def list(self, owner: str | None = None) -> list[JobStatus]:
        """Jobs, newest first; only `owner`'s when given."""
        jobs_dir = self.folder / "jobs"
        found = []
        if jobs_dir.exists():
            for path in jobs_dir.glob("*/job.json"):
                try:
                    status = self.get(path.parent.name)
                except (NoSuchJob, ValueError):
                    continue
                if owner is None or status.owner == owner:
                    found.append(status)
        return sorted(found, key=lambda s: (s.submitted_at, s.id), reverse=True)

    def file_path(self, job_id: str, name: str) -> Path:
        """One of the job's own output files; NoSuchJob for anything else (or before it is written)."""
        status = self.get(job_id)
        if name not in OUTPUT_FILES or name not in status.files:
            raise NoSuchJob(f"{job_id}/{name}")
        path = self._job_dir(job_id) / "out" / name
        if not path.is_file():
            raise NoSuchJob(f"{job_id}/{name}")
        return path

    def wait(self, job_id: str, timeout: float = 120.0) -> JobStatus:
        """The job's status once it is done or failed (for tests and scripts)."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.get(job_id)
            if status.state in ("done", "failed") or time.monotonic() > deadline:
                return status
            time.sleep(0.1)

    def _save(self, status: JobStatus, **extra: Any) -> None:
        path = self._job_dir(status.id) / "job.json"
        previous = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        _write_json(path, {**previous, **status.model_dump(mode="json"), **extra})

    def _raw(self, job_id: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self._job_dir(job_id) / "job.json").read_text(encoding="utf-8"))
        return data

    def _recover(self) -> None:
        """After a restart: a job whose process is gone, or queued by a service that is gone, failed. (Queued
        jobs are not taken over: with several server processes, two could take the same job.)"""
        jobs_dir = self.folder / "jobs"
        if not jobs_dir.exists():
            return
        for path in sorted(jobs_dir.glob("*/job.json")):
            try:
                data = self._raw(path.parent.name)
                status = self.get(path.parent.name)
            except (NoSuchJob, ValueError, OSError):
                continue
            if status.state == "running" and not _alive(data.get("pid")):
                status.state = "failed"
                status.problems = [
                    "the service stopped while this simulation ran (a restart or a crash); submit it again"
                ]
                status.finished_at = _now()
                self._save(status)
            elif status.state == "queued" and not _alive(data.get("server_pid")):
                status.state = "failed"
                status.problems = ["the service stopped before this simulation started; submit it again"]
                status.finished_at = _now()
                self._save(status)

    def _start(self, job_id: str) -> None:
        threading.Thread(target=self._supervise, args=(job_id,), name=f"simulation-{job_id}", daemon=True).start()

    def _supervise(self, job_id: str) -> None:
        with self._slots:
            status = self.get(job_id)
            try:
                request = SimulationRequest.model_validate(status.request)
                job, meta = self.prepare(request)  # the library may have changed while it was queued
                status.stage = "starting"
                status.state = "running"
                self._save(status)
            except SimulationRefused as err:
                self._fail(status, err.problems)
                return
            except Exception as err:  # a broken dataset file, a full disk: the job fails, the service goes on
                self._fail(status, [f"{type(err).__name__}: {err}"])
                return
            # The job goes to its process as a file, and the process is a fresh interpreter running this module:
            # nothing of the server (its main module, its threads, its database connections) is copied in.
            job_dir = self._job_dir(job_id)
            (job_dir / "job.pickle").write_bytes(pickle.dumps((job, request.dataset, meta)))
            process = subprocess.Popen(
                [sys.executable, "-m", "doudi.simulations", str(self.folder), job_id],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            _, errors = process.communicate()  # the process writes its own id into job.json, then its progress
            (job_dir / "job.pickle").unlink(missing_ok=True)
            final = self.get(job_id)
            if final.state not in ("done", "failed"):
                last = errors.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
                self._fail(
                    final,
                    [f"the simulation process ended unexpectedly (exit code {process.returncode}) {last[0]}".strip()],
                )

    def _fail(self, status: JobStatus, problems: builtins.list[str]) -> None:
        status.state = "failed"
        status.problems = problems
        status.finished_at = _now()
        self._save(status)


def visible(status: JobStatus, who: Principal) -> bool:
    """Policy staff see their own jobs; admins see everyone's."""
    return who.role == "admin" or status.owner == who.user


def status_for(jobs: SimulationJobs, job_id: str, who: Principal) -> JobStatus:
    """A job's status as `who` may see it: another's job (unless `who` is an admin) is NotFound, as no job is."""
    try:
        status = jobs.get(job_id)
    except NoSuchJob:
        raise NotFound(f"no simulation {job_id!r}") from None
    if not visible(status, who):
        raise NotFound(f"no simulation {job_id!r}")
    return status


def file_for(jobs: SimulationJobs, job_id: str, name: str, who: Principal) -> Path:
    """One of a job's output files that `who` may see; NotFound otherwise (or before it is written)."""
    status_for(jobs, job_id, who)
    try:
        return jobs.file_path(job_id, name)
    except NoSuchJob:
        raise NotFound(f"simulation {job_id!r} has no file {name!r} (yet)") from None


def _builtin_dataset(folder: Path) -> Path:
    """The built-in synthetic province's file under `folder`/datasets, made the first time it is needed."""
    datasets = folder / "datasets"
    path = datasets / f"{BUILTIN}.parquet"
    if path.exists():
        return path
    from simulation.generate import generate

    dataset = generate(BUILTIN_PEOPLE, BUILTIN_SEED)
    datasets.mkdir(parents=True, exist_ok=True)
    staged = datasets / f".{BUILTIN}-{os.getpid()}.parquet"  # two jobs making it at once each write their own
    write_claims(dataset, staged)
    os.replace(staged, path)
    frame = dataset.frame
    _write_json(
        datasets / f"{BUILTIN}.json",
        {
            "name": BUILTIN,
            "builtin": True,
            "description": f"synthetic Jilin province-year 2014 of {BUILTIN_PEOPLE:,} people (doudi generate "
            f"--people {BUILTIN_PEOPLE} --seed {BUILTIN_SEED})",
            "claims": len(frame),
            "people": int(frame["person_id"].nunique()),
            "households": int(frame["household_id"].nunique()),
        },
    )
    return path


def _run(folder: str, job_id: str) -> None:
    """The job's own process: settle, report progress into job.json, write the report."""
    jobs = Path(folder) / "jobs" / job_id
    path = jobs / "job.json"
    job, name, meta = pickle.loads((jobs / "job.pickle").read_bytes())
    server = os.getppid()

    def follow_the_server() -> None:
        """A job outlives no server: when it is gone, so is the job (the next start marks it failed)."""
        while os.getppid() == server:
            time.sleep(1.0)
        os._exit(3)

    threading.Thread(target=follow_the_server, daemon=True).start()

    def update(**changes: Any) -> None:
        data = json.loads(path.read_text(encoding="utf-8"))
        _write_json(path, {**data, **changes})

    last = [0.0]

    def progress(at: Progress) -> None:
        now = time.monotonic()
        if now - last[0] < 0.5 and at.parts_done < at.parts_total:
            return
        last[0] = now
        update(
            state="running",
            progress=round(0.95 * at.fraction, 4),
            stage=f"settling: {at.line()}",
            claims_done=at.claims_done,
            claims_total=at.claims_total,
        )

    update(state="running", stage="reading the dataset", pid=os.getpid())
    try:
        if name == BUILTIN and not (Path(folder) / "datasets" / f"{BUILTIN}.parquet").exists():
            update(stage=f"making the built-in dataset ({BUILTIN_PEOPLE:,} people)")
        dataset = _builtin_dataset(Path(folder)) if name == BUILTIN else Path(folder) / "datasets" / f"{name}.parquet"
        _, written = simulate(
            dataset, job, jobs / "out", meta, part_claims=PART_CLAIMS, progress=progress, person_ids=identifier
        )
        summary = json.loads((jobs / "out" / "summary.json").read_text(encoding="utf-8"))
        update(
            state="done",
            progress=1.0,
            stage="done",
            files=[p.name for p in written],
            summary=summary,
            finished_at=_now(),
        )
    except (DatasetError, ScenarioError, ValueError, OSError) as err:
        update(state="failed", stage="failed", problems=str(err).splitlines(), finished_at=_now())
    except Exception as err:  # anything else: said in the job, with where it happened
        detail = traceback.format_exception_only(type(err), err)[-1].strip()
        update(state="failed", stage="failed", problems=[f"unexpected error: {detail}"], finished_at=_now())


if __name__ == "__main__":  # the process of one job: python -m doudi.simulations FOLDER JOB_ID
    _run(sys.argv[1], sys.argv[2])
