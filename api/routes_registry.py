"""Reference data: insured areas and their policies, hospitals, people with their category periods.
Everyone signed in reads hospitals and areas; desks, finance and admins read people; admins write."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from api import openapi
from api.auth import require
from api.context import context, json_body, json_object
from doudi import registry
from doudi.accounts import Principal, audit
from doudi.desk import NotFound
from ledger.models import Hospital, Person, Region
from settlement.errors import ClaimError, FieldError

router = APIRouter(prefix="/v1", tags=["reference data"])

Anyone = Annotated[Principal, Depends(require("desk", "finance", "policy", "admin"))]
PeopleReader = Annotated[Principal, Depends(require("desk", "finance", "admin"))]
Admin = Annotated[Principal, Depends(require("admin"))]
Body = Annotated[Any, Depends(json_body)]

_WRITE_ERRORS = openapi.problems(401, 403, 413, 422, 503)
_READ_ERRORS = openapi.problems(401, 403, 404, 422, 503)


def _put(
    request: Request,
    who: Principal,
    body: Any,
    model: type[BaseModel],
    id_field: str,
    id_value: str,
    store: Callable[..., dict[str, Any]],
    action: str,
) -> JSONResponse:
    """Validate `body` as `model` with its id taken from the path, store it and audit it, in one transaction."""
    data = json_object(body)
    if data.setdefault(id_field, id_value) != id_value:
        raise ClaimError([FieldError(id_field, f"{data[id_field]!r} differs from the address ({id_value!r})")])
    item = registry.validated(model, data)
    ctx = context(request)
    with Session(ctx.engine) as session, session.begin():
        stored = store(session, item)
        audit(session, who, action, id_value, stored, ctx.clock())
    return JSONResponse(stored)


@router.get(
    "/regions",
    summary="Insured areas and the policy governing each",
    responses={200: openapi.ok(openapi.REGIONS), **_READ_ERRORS},
)
def list_regions(request: Request, _who: Anyone) -> JSONResponse:
    with Session(context(request).reader) as session:
        rows = session.scalars(select(Region).order_by(Region.region)).all()
        return JSONResponse({"regions": [registry.region_view(r) for r in rows]})


@router.get(
    "/regions/{region}",
    summary="An insured area and its policy",
    responses={200: openapi.ok(openapi.REGION), **_READ_ERRORS},
)
def read_region(request: Request, region: str, _who: Anyone) -> JSONResponse:
    with Session(context(request).reader) as session:
        found = session.get(Region, region)
        if found is None:
            raise NotFound(f"no insured area {region!r}")
        return JSONResponse(registry.region_view(found))


@router.put(
    "/regions/{region}",
    summary="Register an insured area or change its policy",
    openapi_extra=openapi.json_body(registry.RegionIn, openapi.REGION_EXAMPLE),
    responses={
        200: openapi.ok(
            openapi.REGION, "Stored", {"Read": openapi.link("/v1/regions/{region}", "get", region="region")}
        ),
        **_WRITE_ERRORS,
    },
)
def put_region(request: Request, region: str, who: Admin, body: Body) -> JSONResponse:
    published = context(request).catalogue.library()

    def store(session: Session, item: registry.RegionIn) -> dict[str, Any]:
        if not published.versions(item.policy_id):
            raise ClaimError([FieldError("policy_id", f"no policy {item.policy_id!r} is published")])
        return registry.put_region(session, item)

    return _put(request, who, body, registry.RegionIn, "region", region, store, "region.put")


@router.get(
    "/hospitals", summary="Registered hospitals", responses={200: openapi.ok(openapi.HOSPITALS), **_READ_ERRORS}
)
def list_hospitals(request: Request, _who: Anyone) -> JSONResponse:
    with Session(context(request).reader) as session:
        rows = session.scalars(select(Hospital).order_by(Hospital.hospital_id)).all()
        return JSONResponse({"hospitals": [registry.hospital_view(h) for h in rows]})


@router.get(
    "/hospitals/{hospital_id}", summary="A hospital", responses={200: openapi.ok(openapi.HOSPITAL), **_READ_ERRORS}
)
def read_hospital(request: Request, hospital_id: str, _who: Anyone) -> JSONResponse:
    with Session(context(request).reader) as session:
        found = session.get(Hospital, hospital_id)
        if found is None:
            raise NotFound(f"no hospital {hospital_id!r}")
        return JSONResponse(registry.hospital_view(found))


@router.put(
    "/hospitals/{hospital_id}",
    summary="Register or change a hospital",
    openapi_extra=openapi.json_body(registry.HospitalIn, openapi.HOSPITAL_EXAMPLE),
    responses={
        200: openapi.ok(
            openapi.HOSPITAL,
            "Stored",
            {"Read": openapi.link("/v1/hospitals/{hospital_id}", "get", hospital_id="hospital_id")},
        ),
        **_WRITE_ERRORS,
    },
)
def put_hospital(request: Request, hospital_id: str, who: Admin, body: Body) -> JSONResponse:
    return _put(
        request, who, body, registry.HospitalIn, "hospital_id", hospital_id, registry.put_hospital, "hospital.put"
    )


@router.get(
    "/people/{person_id}",
    summary="A person with their category periods",
    responses={200: openapi.ok(openapi.PERSON), **_READ_ERRORS},
)
def read_person(request: Request, person_id: str, _who: PeopleReader) -> JSONResponse:
    with Session(context(request).reader) as session:
        found = session.get(Person, person_id)
        if found is None:
            raise NotFound(f"no person {person_id!r} is registered")
        return JSONResponse(registry.person_view(session, found))


@router.put(
    "/people/{person_id}",
    summary="Register a person or replace their record and category periods",
    openapi_extra=openapi.json_body(registry.PersonIn, openapi.PERSON_EXAMPLE),
    responses={
        200: openapi.ok(
            openapi.PERSON,
            "Stored",
            {
                "Read": openapi.link("/v1/people/{person_id}", "get", person_id="person_id"),
                "YearSoFar": openapi.link("/v1/people/{person_id}/accumulators", "get", person_id="person_id"),
            },
        ),
        **_WRITE_ERRORS,
    },
)
def put_person(request: Request, person_id: str, who: Admin, body: Body) -> JSONResponse:
    return _put(request, who, body, registry.PersonIn, "person_id", person_id, registry.put_person, "person.put")
