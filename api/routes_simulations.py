"""Policy simulations for policy staff (and admins): submit a reform over a claims dataset as a background
job, watch its progress, download its report; upload datasets and parameter sheets for it. The work is
`doudi.simulations`; a job runs exactly what `doudi simulate` runs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api import openapi
from api.auth import require
from api.context import context, json_body, json_object
from doudi import simulations
from doudi.accounts import Principal
from doudi.simulations import SimulationJobs, SimulationRefused, SimulationRequest
from settlement.errors import ClaimError, FieldError

router = APIRouter(prefix="/v1/simulations", tags=["simulations"])

Staff = Annotated[Principal, Depends(require("policy", "admin"))]

CONTENT_TYPES = simulations.CONTENT_TYPES

_TEXT: dict[str, Any] = {"type": "string"}
_INT: dict[str, Any] = {"type": "integer"}
JOB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "owner", "state", "progress", "stage", "claims_done", "claims_total", "problems", "files"],
    "properties": {
        "id": _TEXT,
        "owner": _TEXT,
        "state": {"enum": ["queued", "running", "done", "failed"]},
        "progress": {"type": "number", "minimum": 0, "maximum": 1},
        "stage": _TEXT,
        "claims_done": _INT,
        "claims_total": _INT,
        "problems": {"type": "array", "items": _TEXT},
        "files": {"type": "array", "items": _TEXT},
        "summary": {"type": ["object", "null"]},
    },
}
JOBS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["simulations"],
    "properties": {"simulations": {"type": "array", "items": JOB_SCHEMA}},
}
DATASET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "builtin"],
    "properties": {"name": _TEXT, "builtin": {"type": "boolean"}, "claims": {"type": ["integer", "null"]}},
}
DATASETS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["datasets"],
    "properties": {"datasets": {"type": "array", "items": DATASET_SCHEMA}},
}
SHEET_SCHEMA: dict[str, Any] = {"type": "object", "required": ["sheet"], "properties": {"sheet": _TEXT}}

REQUEST_EXAMPLE = {
    "dataset": "jilin-synthetic-2014",
    "baseline": "jl-changchun",
    "reform": "jl-meihekou",
    "overrides": ["jl-meihekou@2014:tiers.medical_assistance.buckets.general.caps.annual.default=none"],
    "catastrophic_share": "0.4",
}


def jobs(request: Request) -> SimulationJobs:
    found: SimulationJobs = context(request).simulations
    return found


def _refused(err: SimulationRefused) -> ClaimError:
    return ClaimError([FieldError(field, message) for field, message in err.fields])


def _upload_name(request: Request) -> str:
    raw = request.headers.get("x-filename", "upload")
    return raw.replace("\\", "/").rsplit("/", 1)[-1][:200] or "upload"


@router.get(
    "/datasets",
    summary="Claims datasets a simulation can run over: the built-in synthetic province and uploaded ones",
    responses={200: openapi.ok(DATASETS_SCHEMA), **openapi.problems(401, 403)},
)
def list_datasets(request: Request, _who: Staff) -> JSONResponse:
    return JSONResponse({"datasets": jobs(request).datasets()})


@router.post(
    "/datasets",
    summary="Upload a claims dataset (Parquet or CSV, docs/claims-dataset.md): checked row by row, stored "
    "only when every row is valid",
    status_code=201,
    openapi_extra={
        "parameters": [
            {"name": "X-Filename", "in": "header", "required": False, "schema": {"type": "string"}},
        ],
        "requestBody": {
            "required": True,
            "description": "The file's bytes: a .parquet or a .csv file.",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        },
    },
    responses={201: openapi.ok(DATASET_SCHEMA, "Stored"), **openapi.problems(401, 403, 413, 422)},
)
async def upload_dataset(
    request: Request,
    _who: Staff,
    name: Annotated[str, Query(description="The dataset's name: letters, digits and ._-", max_length=64)],
) -> JSONResponse:
    data = await request.body()
    filename = _upload_name(request)
    try:
        stored = await run_in_threadpool(jobs(request).add_dataset, name, data, filename)
    except SimulationRefused as err:
        raise _refused(err) from None
    found = next(d for d in jobs(request).datasets() if d["name"] == stored)
    return JSONResponse(found, status_code=201, headers={"Location": "/v1/simulations/datasets"})


@router.post(
    "/sheets",
    summary="Upload a parameter sheet (XLSX: columns policy, path, value; one override a row)",
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The workbook's bytes.",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        },
    },
    responses={201: openapi.ok(SHEET_SCHEMA, "Stored: use its id as `sheet`"), **openapi.problems(401, 403, 413, 422)},
)
async def upload_sheet(request: Request, _who: Staff) -> JSONResponse:
    data = await request.body()
    try:
        sheet_id = await run_in_threadpool(jobs(request).add_sheet, data)
    except SimulationRefused as err:
        raise _refused(err) from None
    return JSONResponse({"sheet": sheet_id}, status_code=201)


@router.post(
    "",
    summary="Run a simulation in the background: the reform is checked in full first, and refused with every "
    "problem named",
    status_code=202,
    openapi_extra=openapi.json_body(
        SimulationRequest,
        REQUEST_EXAMPLE,
        "What to simulate. `reform`, `overrides` and `sheet` stack, in that order, over the baseline.",
    ),
    responses={
        202: openapi.ok(JOB_SCHEMA, "Queued; Location names the job"),
        **openapi.problems(401, 403, 413, 422),
    },
)
async def submit(request: Request, who: Staff) -> JSONResponse:
    body = json_object(await json_body(request))
    try:
        wanted = SimulationRequest.model_validate(body)
    except ValidationError as err:
        raise ClaimError(
            [FieldError(".".join(str(p) for p in e["loc"]) or "body", str(e["msg"])) for e in err.errors()]
        ) from None
    try:
        job_id = await run_in_threadpool(jobs(request).submit, wanted, who.user)
    except SimulationRefused as err:
        raise _refused(err) from None
    status = jobs(request).get(job_id)
    return JSONResponse(
        status.model_dump(mode="json"), status_code=202, headers={"Location": f"/v1/simulations/{job_id}"}
    )


@router.get(
    "",
    summary="Simulations: your own (an admin sees everyone's), newest first",
    responses={200: openapi.ok(JOBS_SCHEMA), **openapi.problems(401, 403)},
)
def list_jobs(request: Request, who: Staff) -> JSONResponse:
    owner = None if who.role == "admin" else who.user
    found = jobs(request).list(owner)
    return JSONResponse({"simulations": [s.model_dump(mode="json", exclude={"summary"}) for s in found]})


@router.get(
    "/{job_id}",
    summary="A simulation's state and progress; its summary and files when it is done",
    responses={200: openapi.ok(JOB_SCHEMA), **openapi.problems(401, 403, 404)},
)
def read_job(request: Request, job_id: str, who: Staff) -> JSONResponse:
    return JSONResponse(simulations.status_for(jobs(request), job_id, who).model_dump(mode="json"))


@router.get(
    "/{job_id}/files/{name}",
    summary="Download a finished simulation's file: summary.json, report.xlsx or report.html",
    responses={
        200: openapi.files("The file", *sorted(set(CONTENT_TYPES.values()))),
        **openapi.problems(401, 403, 404),
    },
)
def download(request: Request, job_id: str, name: str, who: Staff) -> Response:
    return file_response(jobs(request), job_id, name, who)


def file_response(found: SimulationJobs, job_id: str, name: str, who: Principal) -> Response:
    """A finished job's file, as `who` may see it, as an attachment."""
    path = simulations.file_for(found, job_id, name, who)
    return FileResponse(path, media_type=CONTENT_TYPES[name], filename=f"simulation-{job_id}-{name}")
