"""The OpenAPI document's request bodies, error responses and examples.

Bodies are read as raw JSON (numbers kept as text), so FastAPI cannot derive their schemas from the route
signatures; each route declares its body here, from the same pydantic model that validates it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

_DEFS: dict[str, Any] = {}

PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

_PROBLEM_EXAMPLES = {
    401: ("Unauthenticated", "the token is unknown, expired or revoked"),
    403: ("Forbidden", "the 'finance' role cannot do this; it needs desk"),
    404: ("Not found", "no settlement 'f3c1…'"),
    409: ("Conflict", "settlement key 'MHK-2014-0612-001' was already used for a different claim"),
    422: ("Invalid request", "the request has problems; nothing was recorded"),
    503: ("Database unavailable", "the database did not answer; nothing was recorded; retry with the same key"),
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Response entries for these error statuses, each an application/problem+json example."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        title, detail = _PROBLEM_EXAMPLES[status]
        example: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
        if status == 422:
            example["errors"] = [{"field": "total", "message": "amount '1e3' uses exponent notation"}]
        out[status] = {
            "description": title,
            "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA, "example": example}},
        }
    return out


def json_body(
    model: type[BaseModel], example: dict[str, Any], description: str = "", optional: tuple[str, ...] = ()
) -> dict[str, Any]:
    """`openapi_extra` declaring a JSON request body validated by `model` (`optional`: required fields
    the service fills in itself when absent)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    _DEFS.update(schema.pop("$defs", {}))
    schema["required"] = [name for name in schema.get("required", []) if name not in optional]
    _DEFS[model.__name__] = schema
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{model.__name__}"},
                    "example": example,
                }
            },
        }
    }


def yaml_body(description: str, example: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/yaml": {"schema": {"type": "string"}, "example": example}},
        }
    }


def install(app: FastAPI) -> None:
    """Generate the document once, with the request-body models among its components."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(_DEFS)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]  # FastAPI's documented way to customise


CLAIM_EXAMPLE: dict[str, Any] = {
    "claim_id": "MHK-2014-0612-001",
    "person_id": "MHK-P-0001",
    "hospital_id": "JL-PROV-H001",
    "visit_type": "inpatient",
    "admitted_on": "2014-05-20",
    "discharged_on": "2014-06-12",
    "settled_at": "2014-06-12T10:20:00",
    "diagnoses": ["C92.0"],
    "total": "236000.00",
    "fully_self_paid": "6000.00",
    "over_limit_self_paid": "0.00",
    "pre_self_paid": "0.00",
}
"""A stay as a hospital system sends it: household, scheme, category on the settlement date and hospital
level come from the register (a claim may state them; a contradiction is refused on its field)."""

PERSON_EXAMPLE: dict[str, Any] = {
    "person_id": "MHK-P-0001",
    "household_id": "MHK-H-0001",
    "name": "示例患者 (demo)",
    "insurance_scheme": "resident",
    "region": "220581",
    "categories": [{"category": "dibao", "valid_from": "2013-01-01", "valid_until": None}],
}

HOSPITAL_EXAMPLE: dict[str, Any] = {
    "hospital_id": "MHK-H001",
    "name": "梅河口市中心医院 (demo)",
    "level": 2,
    "region": "220581",
}

REGION_EXAMPLE: dict[str, Any] = {"region": "220581", "name": "梅河口市", "policy_id": "jl-meihekou"}

USER_EXAMPLE: dict[str, Any] = {"name": "desk-mhk-1", "role": "desk", "hospital_id": "MHK-H001"}
