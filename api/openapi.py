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
    413: ("Request body too large", "the request body is larger than 4194304 bytes, this address's limit"),
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
            _complete_errors(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]  # FastAPI's documented way to customise


def _complete_errors(schema: dict[str, Any]) -> None:
    """Declare on every operation the errors the app's handlers give every route (api/app.py), as
    application/problem+json, whether or not the route lists them: 401 and 403 where a token is needed, 413
    where there is a body, 422 where there are parameters or a body, 503 wherever the database is used."""
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            wanted = set()
            if operation.get("security"):
                wanted |= {401, 403, 503}
            if "requestBody" in operation:
                wanted |= {413, 422}
            if operation.get("parameters"):
                wanted.add(422)
            for status in sorted(wanted):
                responses.setdefault(str(status), problems(status)[status])
            # FastAPI's own 422 (its validation-error schema) is answered as a problem by api/app.py.
            default = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if default.get("$ref", "").endswith("/HTTPValidationError"):
                responses["422"] = problems(422)[422]


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


# Response bodies. Each success answer is declared with its schema, so that a client (and the fuzzing suite in
# tests/reliability) can check every answer against the document. Objects list what they always carry and
# allow more: a field added later is not a breaking change.

MONEY: dict[str, Any] = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$", "description": "yuan to the fen"}
_TEXT: dict[str, Any] = {"type": "string"}
_TEXT_OR_NULL: dict[str, Any] = {"type": ["string", "null"]}
_INT: dict[str, Any] = {"type": "integer"}
_BOOL: dict[str, Any] = {"type": "boolean"}
_DATE: dict[str, Any] = {"type": "string", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
_MOMENT: dict[str, Any] = {"type": "string", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}"}


def _obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": {**required, **(optional or {})}}


def _list_of(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


_ACCUMULATOR = _obj(
    {"key": _TEXT, "entity": _TEXT, "year": _INT},
    {"per": _TEXT, "base_before": MONEY, "base_after": MONEY, "paid_before": MONEY, "paid_after": MONEY},
)
_TIER = _obj(
    {"tier": _TEXT, "stage": _TEXT, "fund_pay_type": _TEXT, "eligible": _BOOL, "reason": _TEXT, "paid": MONEY},
    {"accumulator": {"oneOf": [{"type": "null"}, _ACCUMULATOR]}, "references": _list_of({"type": "object"})},
)
SETTLEMENT_RECORD = _obj(
    {
        "claim_id": _TEXT,
        "person_id": _TEXT,
        "household_id": _TEXT,
        "category": _TEXT,
        "insurance_scheme": _TEXT,
        "visit_type": _TEXT,
        "hospital_level": _INT,
        "policy": _obj({"id": _TEXT, "version": _TEXT}),
        "policy_year": _INT,
        "amounts": _obj({"total": MONEY}),
        "tiers": _list_of(_TIER),
        "grants": _list_of(_obj({"payer": _TEXT, "granted": MONEY, "paid": MONEY})),
        "fund_paid": MONEY,
        "patient_burden": MONEY,
        "nhsa": _obj(
            {
                "setlinfo": _obj({"medfee_sumamt": MONEY, "fund_pay_sumamt": MONEY, "psn_cash_pay": MONEY}),
                "setldetail": _list_of(_obj({"fund_pay_type": _TEXT, "fund_payamt": MONEY})),
            }
        ),
    }
)
SETTLED = {**SETTLEMENT_RECORD, "required": ["setl_id", *SETTLEMENT_RECORD["required"]]}
SETTLED["properties"] = {"setl_id": _TEXT, **SETTLEMENT_RECORD["properties"]}
SETTLEMENT_READ = {**SETTLED, "required": [*SETTLED["required"], "reversed"]}
SETTLEMENT_READ["properties"] = {
    **SETTLED["properties"],
    "reversed": {"oneOf": [{"type": "null"}, _obj({"reason": _TEXT, "reversed_at": _MOMENT})]},
}
SETTLEMENT_LIST = _obj(
    {
        "settlements": _list_of(
            _obj(
                {
                    "setl_id": _TEXT,
                    "medins_setl_id": _TEXT,
                    "hospital_id": _TEXT,
                    "person_id": _TEXT,
                    "policy": _TEXT,
                    "settled_at": _MOMENT,
                    "total": MONEY,
                    "fund_paid": MONEY,
                    "patient_burden": MONEY,
                    "reversed": _BOOL,
                }
            )
        )
    }
)
REVERSED = _obj({"setl_id": _TEXT, "reversed": {"const": True}})
ACCUMULATORS = _obj(
    {
        "person_id": _TEXT,
        "household_id": _TEXT,
        "year": _INT,
        "accumulators": _list_of(
            _obj({"key": _TEXT, "entity": _TEXT, "year": _INT, "base": MONEY, "paid": MONEY, "claims": _INT})
        ),
    }
)
REGION = _obj({"region": _TEXT, "name": _TEXT, "policy_id": _TEXT})
HOSPITAL = _obj({"hospital_id": _TEXT, "name": _TEXT, "level": {"enum": [1, 2, 3]}, "region": _TEXT})
PERSON = _obj(
    {
        "person_id": _TEXT,
        "household_id": _TEXT,
        "name": _TEXT,
        "insurance_scheme": _TEXT,
        "region": _TEXT,
        "categories": _list_of(
            _obj({"category": _TEXT, "valid_from": _DATE, "valid_until": {"oneOf": [{"type": "null"}, _DATE]}})
        ),
    }
)
REGIONS = _obj({"regions": _list_of(REGION)})
HOSPITALS = _obj({"hospitals": _list_of(HOSPITAL)})
POLICY_LIST = _obj(
    {
        "policies": _list_of(
            _obj({"policy": _TEXT, "region": _TEXT, "valid_from": _DATE, "document_sha256": _TEXT, "used": _BOOL})
        )
    }
)
POLICY = _obj({"policy": _TEXT, "title": _TEXT, "region": _TEXT, "valid_from": _DATE, "tiers": {"type": "object"}})
_ROWS = _list_of(_obj({"field": _TEXT, "message": _TEXT}))
POLICY_CHECKED = _obj({"policy": _TEXT_OR_NULL, "valid": _BOOL, "errors": _ROWS})
PUBLISHED = _obj({"policy": _TEXT, "published": _BOOL})
USERS = _obj(
    {
        "users": _list_of(
            _obj(
                {
                    "name": _TEXT,
                    "role": {"enum": ["desk", "finance", "policy", "admin"]},
                    "hospital_id": _TEXT_OR_NULL,
                    "tokens": _list_of(
                        _obj(
                            {
                                "token_id": _TEXT,
                                "created_at": _MOMENT,
                                "expires_at": {"oneOf": [{"type": "null"}, _MOMENT]},
                                "revoked_at": {"oneOf": [{"type": "null"}, _MOMENT]},
                            }
                        )
                    ),
                }
            )
        )
    }
)
_NEW_TOKEN = {"token": {"type": "string", "pattern": "^doudi_"}, "token_id": _TEXT}
USER_CREATED = _obj({"name": _TEXT, "role": _TEXT, "hospital_id": _TEXT_OR_NULL, **_NEW_TOKEN})
TOKEN_CREATED = _obj({"name": _TEXT, **_NEW_TOKEN})
REVOKED = _obj({"name": _TEXT, "revoked": {"type": "integer", "minimum": 0}})
AUDIT = _obj(
    {
        "entries": _list_of(
            _obj(
                {
                    "id": _INT,
                    "at": _MOMENT,
                    "user": _TEXT,
                    "token_id": _TEXT_OR_NULL,
                    "action": _TEXT,
                    "target": _TEXT,
                    "detail": {"type": "object"},
                }
            )
        )
    }
)
MONTHS = _obj(
    {
        "months": _list_of(
            _obj(
                {
                    "month": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
                    "closed": _BOOL,
                    "closed_at": {"oneOf": [{"type": "null"}, _MOMENT]},
                    "closed_by": _TEXT_OR_NULL,
                }
            )
        )
    }
)
STATEMENT = _obj(
    {
        "month": _TEXT,
        "hospital_id": _TEXT_OR_NULL,
        "closed": _BOOL,
        "balanced": _BOOL,
        "funds": _list_of({}),
        "summary": _list_of({"type": "object"}),
        "hospitals": _list_of({"type": "object"}),
        "checks": _obj({"count": _INT, "failed": _list_of({"type": "object"})}),
        "detail_rows": _INT,
    }
)
DETAIL = _obj({"total_rows": _INT, "offset": _INT, "rows": _list_of({"type": "object"})})
CLOSED = _obj({"month": _TEXT, "closed": {"const": True}, "manifest": {"type": "object"}})
_SIDE = _obj({"rows": _INT, "medfee_sumamt": MONEY, "fund_pay_sumamt": MONEY})
MATCHING = _obj(
    {
        "month": _TEXT,
        "file": _obj({"name": _TEXT, "format": _TEXT_OR_NULL, "problems": _INT}),
        "verdict": _obj({"stmt_rslt": _TEXT, "balanced": _BOOL, "doudi": _SIDE, "hospital": _SIDE}),
        "counts": {"type": "object", "additionalProperties": _INT},
        "differences": _list_of(_obj({"kind": _TEXT})),
    }
)
HEALTH = _obj({"status": {"const": "ok"}})


def ok(schema: dict[str, Any], description: str = "Done", links: dict[str, Any] | None = None) -> dict[str, Any]:
    """A success response whose JSON body follows `schema` (and, for the stateful fuzzing and for clients,
    OpenAPI `links` naming the operations its values lead to)."""
    out: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if links:
        out["links"] = links
    return out


def files(description: str, *media_types: str) -> dict[str, Any]:
    """A success response that is a file of one of `media_types`."""
    binary = {"type": "string", "format": "binary"}
    return {"description": description, "content": {media: {"schema": binary} for media in media_types}}


def link(path: str, method: str, **parameters: str) -> dict[str, Any]:
    """An OpenAPI link to the operation at `path` with each parameter taken from the answer's body field."""
    ref = "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method
    return {"operationRef": ref, "parameters": {name: f"$response.body#/{field}" for name, field in parameters.items()}}
