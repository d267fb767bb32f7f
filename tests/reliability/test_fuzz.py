"""Fuzzing the API with Schemathesis from the service's own OpenAPI document, on SQLite and PostgreSQL.

Every operation in the document is exercised with generated requests, valid ones (positive) and invalid
ones (negative), as every caller: each demo role, no token, a token issued to nobody. Path parameters are
drawn from the document's types and, half the time, from identifiers that exist (settlements, people,
months, users), and claim bodies from stays of registered people, so that requests reach the engine and the
ledger rather than stopping at "not found". Every answer must be:

- never a 5xx;
- a status the document declares for the operation, with a declared content type, and a body (JSON) and
  headers matching the declared schema;
- an error as application/problem+json;
- for a caller whose role may not call the operation, 401 or 403 (tests/e2e/test_access.py's TABLE says
  which roles may).

A stateful run then follows the document's links (a settlement to reading and reversing it, a user to a
token and a revocation, a stored person to their year so far) with the same checks.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.app import create_app
from doudi import accounts, demo, services
from tests.e2e.conftest import NOW, Clock
from tests.e2e.test_access import GARBAGE_TOKEN, TABLE
from tests.reliability import workload
from tests.reliability.conftest import LONG, results_dir, sized

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
CALLERS = {
    "desk": "demo-desk",
    "desk-mhk": "demo-desk-mhk",
    "finance": "demo-finance",
    "policy": "demo-policy",
    "admin": "demo-admin",
    "no token": None,
    "garbage token": GARBAGE_TOKEN,
}
ROLE_OF = {"desk": "desk", "desk-mhk": "desk", "finance": "finance", "policy": "policy", "admin": "admin"}
ALLOWED = {(row.method, row.path.replace(":path", "")): row.allowed for row in TABLE}


@dataclass
class Fuzzed:
    """The app under test, what exists in it, and the tally of answers."""

    app: FastAPI
    engine: Engine
    tokens: dict[str, str]
    known: dict[str, list[str]]  # path parameter -> identifiers that exist
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)

    def headers(self, caller: str) -> dict[str, str]:
        user = CALLERS[caller]
        if user is None:
            return {}
        token = self.tokens.get(user, user)  # the garbage token is its own value
        return {"Authorization": f"Bearer {token}"}

    def reissue_revoked(self) -> None:
        """A generated revocation may hit a demo user (their names are in the known identifiers): give
        each a working token again so that the rest of the run still reaches past the token check."""
        with Session(self.engine) as session, session.begin():
            for user in self.tokens:
                if accounts.authenticate(session, self.tokens[user], NOW) is None:
                    self.tokens[user] = accounts.issue_token(session, user, NOW)


@pytest.fixture
def fuzzed(database_url: str, tmp_path: Path) -> Iterator[Fuzzed]:
    files = services.open_library()
    app = create_app(database_url, files, clock=Clock(), archive=tmp_path / "archive")
    ctx = app.state.context
    tokens = demo.seed(ctx.engine, ctx.catalogue, files, NOW)
    client_headers = {"Authorization": f"Bearer {tokens['demo-desk']}"}
    from fastapi.testclient import TestClient

    client = TestClient(app)
    rng = random.Random(7)
    setl_ids = []
    for n in range(4):
        answer = client.post("/v1/settlements", json=workload.stay(rng, f"FUZZ-SEED-{n}"), headers=client_headers)
        assert answer.status_code == 201, answer.text
        setl_ids.append(answer.json()["setl_id"])
    reversed_ = client.post(f"/v1/settlements/{setl_ids[0]}/reversal", json={"reason": "seed"}, headers=client_headers)
    assert reversed_.status_code == 201
    admin = {"Authorization": f"Bearer {tokens['demo-admin']}"}
    assert client.post("/v1/users", json={"name": "fuzz-target", "role": "policy"}, headers=admin).status_code == 201
    known = {
        "setl_id": setl_ids,
        "person_id": workload.PEOPLE,
        "hospital_id": [h["hospital_id"] for h in demo.HOSPITALS],
        "region": [r["region"] for r in demo.REGIONS],
        "policy": ["jl-meihekou@2014", "jl-meihekou", "cn-resident@2025", "jl-temporary-aid@2014"],
        "name": ["fuzz-target", "demo-policy"],  # users (revoking a demo user's tokens is undone at once)
        "file": ["summary.csv", "statement.xlsx", "national/JL-PROV-H001.zip", "../../../etc/passwd"],
        # 2014-12: this month (not over); 2014-11 and 2014-06: over, so they can be closed; 2013-02: empty.
        "month": ["2014-12", "2014-11", "2014-06", "2013-02"],
    }
    yield Fuzzed(app, ctx.engine, tokens, known)
    ctx.close()


def _allowed(method: str, path: str) -> frozenset[str]:
    return ALLOWED.get((method.upper(), path), frozenset())


def _callers(method: str, path: str) -> st.SearchStrategy[str]:
    """Mostly a caller the operation is for (so that requests get past the guard), sometimes anyone."""
    allowed = _allowed(method, path)
    fitting = [c for c in CALLERS if ROLE_OF.get(c) in allowed or "public" in allowed]
    return st.one_of(st.sampled_from(fitting or list(CALLERS)), st.sampled_from(list(CALLERS)))


def _content_type(response: Any) -> str:
    """Schemathesis keeps each header as a list of its values."""
    values = response.headers.get("content-type") or [""]
    return str(values[0]) if isinstance(values, list) else str(values)


def _problem_for_errors(operation: Any, response: Any) -> str | None:
    """An error the document declares as a problem must be one (a route may declare its own error format,
    as the national platform's interface does; Schemathesis checks that against the document)."""
    declared = operation.definition.raw.get("responses", {}).get(str(response.status_code), {}).get("content", {})
    if "application/problem+json" not in declared:
        return None
    if not _content_type(response).startswith("application/problem+json"):
        return f"{response.status_code} is not application/problem+json"
    return None


def _guarded(method: str, path: str, caller: str, response: Any) -> str | None:
    allowed = _allowed(method, path)
    if not allowed or "public" in allowed:
        return None  # a route test_access.py's TABLE does not list yet: its test fails there, not here
    if response.status_code == 404 and response.text.find('"detail":"Not Found"') >= 0:
        return None  # the path did not reach this route at all (a parameter holding "/"): the router's 404
    if ROLE_OF.get(caller) not in allowed and response.status_code not in (401, 403):
        return f"{caller} may not call it but got {response.status_code}"
    return None


def shadowed(case: Any) -> bool:
    """A generated value that spells another route's fixed path (month "months" in
    /v1/reconciliation/{month}) reaches that route, as the document's paths allow: its answer is the other
    operation's and is not held to this one's contract."""
    sent = case.formatted_path
    fixed = {p for p in case.operation.schema.raw_schema.get("paths", {}) if "{" not in p}
    return sent != case.operation.path and sent in fixed


def exercise(fuzzed: Fuzzed, operation: Any, case: Any, caller: str) -> list[str]:
    """Send `case` as `caller` and return every way the answer breaks the contract."""
    try:
        response = case.call(headers=fuzzed.headers(caller))
    except Exception as err:  # the app raised instead of answering: a 500 to a real client
        return [f"{operation.label} as {caller} raised {err!r}\n{case.as_curl_command()}"]
    fuzzed.statuses[(operation.label, response.status_code)] += 1
    if shadowed(case):
        return []
    problems = []
    try:
        case.validate_response(response, checks=CHECKS, headers=fuzzed.headers(caller))
    except (Exception, BaseExceptionGroup) as err:  # Schemathesis's FailureGroup: every failed check
        problems.append(str(err)[:3000])
    for found in (
        _problem_for_errors(operation, response),
        _guarded(operation.method, operation.path, caller, response),
    ):
        if found:
            problems.append(f"{operation.label} as {caller}: {found}\n{case.as_curl_command()}\n{response.text[:500]}")
    if operation.path.endswith("/revoke") and response.status_code == 200:
        fuzzed.reissue_revoked()
    return problems


def _cases(fuzzed: Fuzzed, operation: Any) -> st.SearchStrategy[Any]:
    """Generated requests: positive and negative; half of them on identifiers that exist; claim bodies
    half the time a stay of a registered person."""
    names = [p.name for p in operation.path_parameters]
    known = {**fuzzed.known, "name": fuzzed.known["file"]} if "/files/" in operation.path else fuzzed.known
    existing = {name: st.sampled_from(known[name]) for name in names if name in known}
    strategies = [operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)]
    if existing:
        strategies.append(
            st.fixed_dictionaries(existing).flatmap(
                lambda path: operation.as_strategy(GenerationMode.POSITIVE, path_parameters=path)
            )
        )
    if operation.path in ("/v1/quotes", "/v1/settlements"):
        strategies.append(
            st.builds(lambda seed: workload.stay(random.Random(seed), f"FUZZ-{seed}"), st.integers(0, 10**9)).flatmap(
                lambda body: operation.as_strategy(GenerationMode.POSITIVE, body=body, media_type="application/json")
            )
        )
    if operation.path == "/v1/people/{person_id}" and operation.method.upper() == "PUT":
        person = st.fixed_dictionaries(
            {
                "household_id": st.sampled_from(["FZ-H-1", "MHK-H-0001"]),
                "name": st.text(min_size=1, max_size=40),  # any Unicode: stored as given or refused, never a 500
                "insurance_scheme": st.sampled_from(["resident", "employee"]),
                "region": st.sampled_from(fuzzed.known["region"]),
            }
        )
        strategies.append(
            st.tuples(person, st.sampled_from(["FZ-P-1", "FZ-P-2"])).flatmap(
                lambda pair: operation.as_strategy(
                    GenerationMode.POSITIVE,
                    body=pair[0],
                    path_parameters={"person_id": pair[1]},
                    media_type="application/json",
                )
            )
        )
    return st.one_of(strategies)


def _settings(examples: int) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=not LONG,  # CI replays the same requests; the long run explores
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )


def _fuzz(fuzzed: Fuzzed, operation: Any, examples: int, found: list[str]) -> None:
    @_settings(examples)
    @hypothesis.given(case=_cases(fuzzed, operation), caller=_callers(operation.method, operation.path))
    def run(case: Any, caller: str) -> None:
        found.extend(exercise(fuzzed, operation, case, caller))

    run()


def test_every_operation_as_every_caller_answers_within_its_contract(fuzzed: Fuzzed, tmp_path: Path) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed.app)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"an operation the fuzzer cannot read: {result.err()}"
        operations.append(result.ok())
    assert len(operations) >= 29, "the document lost operations"
    examples = sized(10, 120)
    found: list[str] = []

    for operation in operations:
        _fuzz(fuzzed, operation, examples, found)

    total = sum(fuzzed.statuses.values())
    _record(tmp_path, "fuzz", fuzzed, total)
    assert found == [], f"{len(found)} contract breaks in {total} requests:\n\n" + "\n\n".join(found[:10])
    assert not [k for k in fuzzed.statuses if k[1] >= 500]
    # The run reached past validation: each of these answered 2xx at least once.
    succeeded = {label for (label, status) in fuzzed.statuses if 200 <= status < 300}
    for label in (
        "POST /v1/settlements",
        "POST /v1/quotes",
        "GET /v1/settlements/{setl_id}",
        "PUT /v1/people/{person_id}",
    ):
        assert label in succeeded, f"{label} never succeeded: the fuzzing did not reach its logic"


def test_following_the_documents_links_keeps_every_answer_within_its_contract(fuzzed: Fuzzed, tmp_path: Path) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed.app)
    machine_type = schema.as_state_machine()
    found: list[str] = []
    sent: Counter[str] = Counter()
    callers: dict[int, str] = {}

    class Machine(machine_type):  # type: ignore[misc, valid-type]
        def before_call(self, case: Any) -> None:
            # A claim the register knows half the time, so that links from a recorded settlement are followed.
            if case.operation.path in ("/v1/settlements", "/v1/quotes") and random.random() < 0.5:
                case.body = workload.stay(random.Random(random.getrandbits(32)), f"FUZZ-S-{random.getrandbits(40)}")

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            allowed = _allowed(case.operation.method, case.operation.path)
            fitting = [c for c in CALLERS if ROLE_OF.get(c) in allowed or "public" in allowed] or list(CALLERS)
            caller = random.choice(fitting if random.random() < 0.85 else list(CALLERS))
            callers[id(case)] = caller
            return {"headers": fuzzed.headers(caller)}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            caller = callers.pop(id(case), "no token")
            sent[case.operation.label] += 1
            fuzzed.statuses[(case.operation.label, response.status_code)] += 1
            if shadowed(case):
                return
            try:
                case.validate_response(response, checks=CHECKS, headers=kwargs.get("headers"))
            except (Exception, BaseExceptionGroup) as err:
                found.append(str(err)[:3000])
            for problem in (
                _problem_for_errors(case.operation, response),
                _guarded(case.operation.method, case.operation.path, caller, response),
            ):
                if problem:
                    found.append(f"{case.operation.label} as {caller}: {problem}\n{response.text[:500]}")
            if case.operation.path.endswith("/revoke") and response.status_code == 200:
                fuzzed.reissue_revoked()

    # The app's state outlives each scenario, so Hypothesis may find a scenario's draws no longer replay as
    # they did (which links are open depends on earlier answers) and stop a round with
    # FlakyStrategyDefinition. The checks do not depend on Hypothesis (breaks are collected in `found`), so
    # the run goes on in rounds, each a fresh seed, until its scenarios are spent.
    interrupted = 0
    for round_ in range(sized(2, 30)):
        random.seed(round_ if not LONG else None)
        try:
            Machine.run(
                settings=hypothesis.settings(
                    max_examples=sized(4, 10),
                    stateful_step_count=sized(6, 12),
                    deadline=None,
                    database=None,
                    derandomize=not LONG,
                    phases=[Phase.generate],  # no shrinking: a replay could not repeat the app's state
                    suppress_health_check=list(HealthCheck),
                )
            )
        except FlakyStrategyDefinition:
            interrupted += 1
    _record(tmp_path, "fuzz_stateful", fuzzed, sum(sent.values()), {"rounds_interrupted": interrupted})
    assert found == [], "\n\n".join(found[:10])
    followed = {label for (label, status) in fuzzed.statuses if 200 <= status < 300}
    assert "GET /v1/settlements/{setl_id}" in followed or not LONG, "no link from a settlement was followed"


def _record(tmp_path: Path, what: str, fuzzed: Fuzzed, total: int, extra: dict[str, Any] | None = None) -> None:
    """Append this run's tally to reliability_fuzz.json (one entry per test and database)."""
    dialect = fuzzed.engine.dialect.name
    by_class: Counter[str] = Counter()
    for (_label, status), count in fuzzed.statuses.items():
        by_class[f"{status // 100}xx"] += count
    path = results_dir(tmp_path) / "reliability_fuzz.json"
    runs: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    runs[f"{what}/{dialect}"] = {
        "long": LONG,
        "requests": total,
        **(extra or {}),
        "by_status_class": dict(sorted(by_class.items())),
        "by_operation": {
            label: dict(sorted((str(s), n) for (lb, s), n in fuzzed.statuses.items() if lb == label))
            for label in sorted({lb for lb, _ in fuzzed.statuses})
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(runs, indent=1, sort_keys=True) + "\n")
