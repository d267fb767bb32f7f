"""The published policies: list and show for everyone signed in; validate a draft (policy staff and
admins); publish a version (admins). A policy document is the same YAML as the files in policies/library/."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from api import openapi
from api.auth import require
from api.context import context, text_body
from doudi import services
from doudi.accounts import Principal
from doudi.desk import NotFound
from policies.library import Problem

router = APIRouter(prefix="/v1/policies", tags=["policies"])

Anyone = Annotated[Principal, Depends(require("desk", "finance", "policy", "admin"))]
Drafter = Annotated[Principal, Depends(require("policy", "admin"))]
Admin = Annotated[Principal, Depends(require("admin"))]
Document = Annotated[str, Depends(text_body)]

_EXAMPLE = """id: jl-meihekou
version: "2015"
title: 梅河口市医疗救助 (2015 draft)
region: "220581"
valid_from: 2015-01-01
includes: [jl-resident-insurance@2012, jl-temporary-aid@2014, grants@2012]
# ... tiers and references as in policies/library/jl-meihekou-2014.yaml
"""
_SHOW = {"Show": openapi.link("/v1/policies/{policy}", "get", policy="policy")}
_DOCUMENT_BODY = openapi.yaml_body("A policy document (YAML; see docs/policy-format.md).", _EXAMPLE)


def problem_rows(problems: list[Problem]) -> list[dict[str, str]]:
    return [{"field": p.path or "(document)", "message": f"{p.reason} ({p.file})"} for p in problems]


@router.get(
    "",
    summary="Published policy versions",
    responses={200: openapi.ok(openapi.POLICY_LIST), **openapi.problems(401, 403, 503)},
)
def list_policies(request: Request, _who: Anyone) -> JSONResponse:
    return JSONResponse({"policies": context(request).catalogue.listing()})


@router.get(
    "/{policy}",
    summary="A policy as it settles (every fund, included ones too, with references) and its document",
    responses={200: openapi.ok(openapi.POLICY), **openapi.problems(401, 403, 404, 422, 503)},
)
def show_policy(request: Request, policy: str, _who: Anyone) -> JSONResponse:
    catalogue = context(request).catalogue
    library = catalogue.library()
    try:
        found = library.get(policy)
    except KeyError:
        raise NotFound(f"no published policy {policy!r}") from None
    return JSONResponse({**services.composed_view(library, found), "document": catalogue.document(found.key)})


@router.post(
    "/validate",
    summary="Check a draft against everything published; nothing is stored",
    openapi_extra=_DOCUMENT_BODY,
    responses={
        200: openapi.ok(openapi.POLICY_CHECKED, "The verdict and every problem"),
        **openapi.problems(401, 403, 413, 422, 503),
    },
)
def validate_policy(request: Request, _who: Drafter, document: Document) -> JSONResponse:
    key, problems = context(request).catalogue.check(document)
    return JSONResponse({"policy": key, "valid": not problems, "errors": problem_rows(problems)})


@router.post(
    "",
    summary="Publish a policy version (a version that settled claims is never replaced)",
    openapi_extra=_DOCUMENT_BODY,
    responses={
        200: openapi.ok(openapi.PUBLISHED, "The same document was published before; nothing changed", _SHOW),
        201: openapi.ok(openapi.PUBLISHED, "Published", _SHOW),
        **openapi.problems(401, 403, 409, 413, 422, 503),
    },
    status_code=201,
)
def publish_policy(request: Request, who: Admin, document: Document) -> JSONResponse:
    ctx = context(request)
    published = ctx.catalogue.publish(document, who, ctx.clock())  # PublishRefused: 422, or 409 when in use
    return JSONResponse(
        {"policy": published.key, "published": published.changed}, status_code=201 if published.changed else 200
    )
