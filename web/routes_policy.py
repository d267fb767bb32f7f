"""Policy staff's pages: the published library (every role reads it, as through the API), one policy as it
settles, a side-by-side diff of two versions; and reforms (roles `policy` and `admin`): build one, run it
over a dataset as a simulation job, watch its progress, see its charts and tables, download its report.

The library pages show `doudi.services.composed_view` and `diff_policies`, what `doudi policy show|diff`
prints. A reform's overrides are checked as they are typed by `simulation.reform.parse_override` and
`apply_overrides`, so the messages are the command line's, word for word. Jobs are `ctx.simulations`
(doudi/simulations.py), the same jobs the API's /v1/simulations routes run.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import ValidationError
from starlette.datastructures import FormData

from api import routes_simulations as api_simulations
from api.context import context
from doudi import services, simulations
from doudi.accounts import ROLES, WebSignIn
from doudi.simulations import DatasetRefused, JobStatus, SimulationJobs, SimulationRefused, SimulationRequest
from simulation.outputs import bars as bar_chart  # the report's own charts, drawn from its summary
from web.pages import PageError, PageRoute, file_field, posting, render, signed_in, text_field

router = APIRouter(route_class=PageRoute, include_in_schema=False)

Anyone = Annotated[WebSignIn, Depends(signed_in(*ROLES))]
Drafter = Annotated[WebSignIn, Depends(signed_in("policy", "admin"))]
DrafterPost = Annotated[tuple[WebSignIn, FormData], Depends(posting("policy", "admin"))]


@router.get("/policy")
def library_page(request: Request, signin: Anyone) -> Response:
    catalogue = context(request).catalogue
    library = catalogue.library()
    rows = catalogue.listing()
    for row in rows:
        policy = library.policies.get(row["policy"])
        row["title"] = policy.title if policy else ""
        row["title_en"] = getattr(policy, "title_en", None) or ""
    return render(request, "policy/library.html", policies=rows)


def _policy(request: Request, ref: str) -> tuple[Any, Any]:
    library = context(request).catalogue.library()
    try:
        return library, library.get(ref)
    except KeyError:
        raise PageError(404, "error.not_found", f"no published policy {ref!r}") from None


@router.get("/policy/show/{policy}")
def policy_page(request: Request, policy: str, signin: Anyone) -> Response:
    library, found = _policy(request, policy)
    view = services.composed_view(library, found)
    versions = [p.key for p in library.versions(found.id)]
    return render(request, "policy/show.html", view=view, versions=versions, policy=found)


@router.get("/policy/diff")
def diff_page(request: Request, signin: Anyone, a: str = "", b: str = "", everything: bool = False) -> Response:
    library = context(request).catalogue.library()
    keys = sorted(library.policies)
    rows: list[dict[str, Any]] = []
    left = right = None
    if a and b:
        _, left = _policy(request, a)
        _, right = _policy(request, b)
        for path, old, new in services.diff_policies(library, left, right, everything):
            rows.append({"path": path, "a": _shown(old), "b": _shown(new)})
    return render(
        request, "policy/diff.html", keys=keys, a=a, b=b, left=left, right=right, rows=rows, everything=everything
    )


def _shown(value: Any) -> str | None:
    """A parameter's value as `doudi policy diff` shows it; None for "not set in this version"."""
    if value is services.ABSENT:
        return None
    return "none" if value is None else json.dumps(value, ensure_ascii=False)


def _jobs(request: Request) -> SimulationJobs:
    jobs: SimulationJobs | None = getattr(context(request), "simulations", None)
    if jobs is None:
        raise PageError(503, "policy.no_simulations")
    return jobs


def _reform_page(request: Request, values: dict[str, Any], errors: dict[str, list[str]], status: int = 200) -> Response:
    library = context(request).catalogue.library()
    ids = sorted({p.id for p in library.policies.values()})
    choices = [*ids, *sorted(library.policies)]
    return render(
        request,
        "policy/reform.html",
        status=status,
        datasets=_jobs(request).datasets(),
        choices=choices,
        values=values,
        errors=errors,
    )


DEFAULTS = {
    "dataset": "",
    "baseline": "jl-meihekou",
    "reform": "",
    "overrides": "",
    "sheet_id": "",
    "catastrophic_share": "0.4",
    "dataset_name": "",
}


@router.get("/policy/reform")
def reform_form(request: Request, signin: Drafter, dataset: str = "") -> Response:
    values = {**DEFAULTS, "dataset": dataset or _jobs(request).datasets()[0]["name"]}
    return _reform_page(request, values, {})


FIELDS = ("dataset", "baseline", "reform", "overrides", "sheet", "catastrophic_share", "file", "dataset_name")


def _add(errors: dict[str, list[str]], fields: list[tuple[str, str]]) -> dict[str, list[str]]:
    """The jobs' (field, message) problems by the form's inputs; any other field goes in the list on top."""
    for field, message in fields:
        errors.setdefault(field if field in FIELDS else "form", []).append(message)
    return errors


@router.post("/policy/reform")
def submit_reform(request: Request, posted: DrafterPost) -> Response:
    """Submit a reform as a simulation job: checked in full by the jobs' own `submit`, every problem shown
    next to the field it is about; nothing is queued then."""
    signin, form = posted
    jobs = _jobs(request)
    values = {name: str(form.get(name) or "").strip() for name in DEFAULTS}
    values["overrides"] = str(form.get("overrides") or "")
    errors: dict[str, list[str]] = {}
    uploaded = file_field(form, "sheet")
    if uploaded is not None:
        try:
            values["sheet_id"] = jobs.add_sheet(uploaded[1])
        except SimulationRefused as err:
            _add(errors, [("sheet", m) for _f, m in err.fields])
    fields = {
        "dataset": values["dataset"],
        "baseline": values["baseline"],
        "reform": values["reform"] or None,
        "overrides": [line.strip() for line in values["overrides"].splitlines() if line.strip()],
        "sheet": values["sheet_id"] or None,
        "catastrophic_share": values["catastrophic_share"] or "0.4",
    }
    try:
        wanted = SimulationRequest.model_validate(fields)
    except ValidationError as err:
        _add(errors, [(str(e["loc"][0]) if e["loc"] else "form", str(e["msg"])) for e in err.errors()])
        return _reform_page(request, values, errors, status=422)
    if errors:
        return _reform_page(request, values, errors, status=422)
    try:
        job_id = jobs.submit(wanted, signin.principal.user)
    except SimulationRefused as err:
        return _reform_page(request, values, _add(errors, err.fields), status=422)
    return RedirectResponse(f"/policy/jobs/{job_id}", status_code=303)


@router.post("/policy/datasets/upload")
def upload_dataset(request: Request, posted: DrafterPost) -> Response:
    """A claims dataset of one's own (Parquet or CSV, as docs/claims-dataset.md describes), checked row by
    row before it is kept."""
    _signin, form = posted
    jobs = _jobs(request)
    name = text_field(form, "dataset_name")
    values = {**DEFAULTS, "dataset_name": name, "dataset": jobs.datasets()[0]["name"]}
    uploaded = file_field(form, "file")
    if uploaded is None:
        return _reform_page(request, values, {"file": ["policy.file_missing"]}, status=422)
    try:
        added = jobs.add_dataset(name, uploaded[1], uploaded[0])
    except DatasetRefused as err:
        more = [f"… {err.count} problems in all"] if err.count > len(err.problems) else []
        errors = {"file": [*err.problems, *more]}
        return _reform_page(request, values, errors, status=422)
    except SimulationRefused as err:
        fields_named = [("dataset_name" if f == "name" else f, m) for f, m in err.fields]
        return _reform_page(request, values, _add({}, fields_named), status=422)
    return RedirectResponse(f"/policy/reform?dataset={added}", status_code=303)


@router.get("/policy/jobs")
def jobs_page(request: Request, signin: Drafter) -> Response:
    owner = None if signin.principal.role == "admin" else signin.principal.user
    return render(request, "policy/jobs.html", jobs=_jobs(request).list(owner))


def _job(request: Request, job_id: str, signin: WebSignIn) -> JobStatus:
    return simulations.status_for(_jobs(request), job_id, signin.principal)  # the API's visibility rule


@router.get("/policy/jobs/{job_id}")
def job_page(request: Request, job_id: str, signin: Drafter) -> Response:
    status = _job(request, job_id, signin)
    charts = _charts(status.summary) if status.state == "done" and status.summary else []
    return render(request, "policy/job.html", job=status, charts=charts, summary=status.summary or {})


@router.get("/policy/jobs/{job_id}/status")
def job_status(request: Request, job_id: str, signin: Drafter) -> JSONResponse:
    status = _job(request, job_id, signin)
    return JSONResponse(
        {
            "state": status.state,
            "progress": status.progress,
            "stage_text": status.stage,
            "claims_done": status.claims_done,
            "claims_total": status.claims_total,
        }
    )


@router.get("/policy/jobs/{job_id}/files/{name}")
def job_file(request: Request, job_id: str, name: str, signin: Drafter) -> Response:
    return api_simulations.file_response(_jobs(request), job_id, name, signin.principal)


def _yuan_float(text: Any) -> float:
    """Yuan text as a float for drawing a bar (a chart's length, never an amount anyone reads as money)."""
    return float(str(text)) if text not in (None, "") else 0.0


def _charts(summary: dict[str, Any]) -> list[str]:
    """The report's three charts, drawn by simulation.outputs from the job's summary: spending by fund,
    baseline against reform; the burden distribution; the change in fund spending by category."""
    funds = [row for row in summary.get("funds", []) if row.get("fund") != "total"]
    burden = summary.get("burden_percentiles", [])
    category = summary.get("by", {}).get("category", [])
    return [
        bar_chart(
            "各基金支出 spending by fund (yuan)",
            [str(row.get("name", row.get("fund"))) for row in funds],
            {
                "baseline": [_yuan_float(row["baseline"]) for row in funds],
                "reform": [_yuan_float(row["reform"]) for row in funds],
            },
            "yuan",
        ),
        bar_chart(
            "个人负担分布 patient burden per claim, percentiles (yuan)",
            [f"p{row['percentile']}" for row in burden],
            {
                "baseline": [_yuan_float(row["baseline"]) for row in burden],
                "reform": [_yuan_float(row["reform"]) for row in burden],
            },
            "yuan",
        ),
        bar_chart(
            "按救助身份的基金支出变化 change in fund spending by category (yuan)",
            [str(row["group"]) for row in category],
            {"reform − baseline": [_yuan_float(row["difference"]) for row in category]},
            "yuan",
        ),
    ]


@router.post("/policy/reform/check")
def check_reform(request: Request, posted: DrafterPost) -> JSONResponse:
    """The overrides as typed so far, checked as `doudi simulate --set` checks them: each line parsed, then
    all applied to the published library with every policy check. Answers every problem with its line."""
    from simulation.reform import ReformError, apply_overrides, parse_override

    _signin, form = posted
    lines = [line.strip() for line in str(form.get("overrides") or "").splitlines()]
    steps, problems = [], []
    for number, line in enumerate(lines, start=1):
        if not line:
            continue
        try:
            steps.append(parse_override(line, f"--set {number}"))
        except ReformError as err:
            problems += [{"line": number, "message": str(p)} for p in err.problems]
    if steps and not problems:
        try:
            apply_overrides(context(request).catalogue.library(), steps)
        except ReformError as err:
            problems += [{"line": _line_of(p.file), "message": str(p)} for p in err.problems]
    return JSONResponse({"ok": not problems, "problems": problems, "checked": len(steps)})


def _line_of(source: str) -> int | None:
    prefix = "--set "
    return int(source[len(prefix) :]) if source.startswith(prefix) and source[len(prefix) :].isdigit() else None


def _text(form: FormData, name: str) -> str:
    return text_field(form, name)
