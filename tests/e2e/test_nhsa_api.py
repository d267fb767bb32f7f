"""The national platform's transactions through HTTP, on SQLite and PostgreSQL: every recorded exchange in
nhsa_exchanges/ (README there) is replayed against a fresh service and each answer compared, field by field,
with the one written down; refusals and pre-settlements must leave the database as it was. Around the
replays: the same settlement through /v1/nhsa and /v1/settlements gives the same national view, a
province's dictionary changes the codes written, and a database outage answers in the envelope."""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from interop.dictionary import load_dictionary
from tests.e2e.conftest import Service
from tests.e2e.helpers import database_rows, engine_of

EXCHANGES = Path(__file__).parent / "nhsa_exchanges"
FILES = sorted(EXCHANGES.glob("*.json"))
REF_MSGID = re.compile(r"^[0-9]{30}$")
VARIABLE = re.compile(r"\{\{(\w+)\}\}")


class Replay:
    """What a conversation remembered so far (`<=name>` in answers, `{{name}}` in later requests)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def fill(self, value: Any) -> Any:
        """A request with remembered values put in and `$zip` files built."""
        if isinstance(value, str):
            return VARIABLE.sub(lambda m: str(self.values[m.group(1)]), value)
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if isinstance(value, dict):
            if set(value) == {"$zip"}:
                spec = value["$zip"]
                return base64.b64encode(zipped(spec["name"], self.fill(spec["lines"]))).decode("ascii")
            return {k: self.fill(v) for k, v in value.items()}
        return value

    def compare(self, expected: Any, found: Any, where: str, wrong: list[str]) -> None:
        if isinstance(expected, str):
            if expected == "<ref_msgid>":
                if not (isinstance(found, str) and REF_MSGID.fullmatch(found)):
                    wrong.append(f"{where}: {found!r} is not a 30-digit message id")
            elif expected == "<text>":
                if not (isinstance(found, str) and found.strip()):
                    wrong.append(f"{where}: {found!r} is not text")
            elif expected.startswith("<=") and expected.endswith(">"):
                name = expected[2:-1]
                if name not in self.values:
                    self.values[name] = found
                elif self.values[name] != found:
                    wrong.append(f"{where}: {found!r}, remembered as {self.values[name]!r}")
            elif self.fill(expected) != found:
                wrong.append(f"{where}: {found!r}, expected {self.fill(expected)!r}")
        elif isinstance(expected, dict) and set(expected) == {"$zip"}:
            spec = expected["$zip"]
            try:
                with zipfile.ZipFile(io.BytesIO(base64.b64decode(found))) as archive:
                    names = archive.namelist()
                    lines = archive.read(names[0]).decode("utf-8").splitlines() if names else []
            except (ValueError, zipfile.BadZipFile) as err:
                wrong.append(f"{where}: not a zipped file in base64 ({err})")
                return
            self.compare([spec["name"]], names, f"{where} (names)", wrong)
            self.compare(spec["lines"], lines, f"{where} (lines)", wrong)
        elif isinstance(expected, dict):
            if not isinstance(found, dict):
                wrong.append(f"{where}: {found!r}, expected an object")
                return
            for key in sorted(set(expected) | set(found)):
                if key not in found:
                    wrong.append(f"{where}.{key}: missing")
                elif key not in expected:
                    wrong.append(f"{where}.{key}: not expected ({found[key]!r})")
                else:
                    self.compare(expected[key], found[key], f"{where}.{key}", wrong)
        elif isinstance(expected, list):
            if not isinstance(found, list) or len(found) != len(expected):
                wrong.append(f"{where}: {found!r}, expected {len(expected)} items")
                return
            for i, (e, f) in enumerate(zip(expected, found, strict=True)):
                self.compare(e, f, f"{where}[{i}]", wrong)
        elif expected != found or type(expected) is not type(found):
            wrong.append(f"{where}: {found!r}, expected {expected!r}")


def zipped(name: str, lines: list[str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, "".join(line + "\n" for line in lines))
    return buffer.getvalue()


def send(service: Service, step: dict[str, Any], replay: Replay) -> Any:
    url = f"/v1/nhsa/{step['transaction']}"
    headers = {**service.auth(step["as"]), "Content-Type": "application/json"}
    if "request_text" in step:
        return service.client.post(url, content=replay.fill(step["request_text"]).encode("utf-8"), headers=headers)
    return service.client.post(
        url, content=json.dumps(replay.fill(step["request"]), ensure_ascii=False), headers=headers
    )


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_a_recorded_exchange_is_answered_as_written(service: Service, path: Path) -> None:
    conversation = json.loads(path.read_text(encoding="utf-8"))
    replay = Replay()
    for number, step in enumerate(conversation["steps"], start=1):
        before = database_rows(engine_of(service))
        answer = send(service, step, replay)
        where = f"{path.name} step {number} ({step['transaction']} as {step['as']})"
        expected = step["response"]
        assert answer.status_code == expected["status"], f"{where}: {answer.status_code} {answer.text}"
        media = "application/problem+json" if expected["status"] in (401, 403) else "application/json"
        assert answer.headers["content-type"].startswith(media), where
        wrong: list[str] = []
        replay.compare(expected["body"], answer.json(), "body", wrong)
        assert wrong == [], f"{where}:\n" + "\n".join(wrong)
        records_nothing = expected["body"].get("infcode", -1) != 0 or step["transaction"] in ("2303", "2206")
        if records_nothing:
            assert database_rows(engine_of(service)) == before, f"{where} changed the database"


def test_every_transaction_has_a_recorded_exchange_and_a_refused_one() -> None:
    sent: dict[str, set[int]] = {}
    for path in FILES:
        for step in json.loads(path.read_text(encoding="utf-8"))["steps"]:
            sent.setdefault(step["transaction"], set()).add(step["response"]["status"])
    assert sorted(sent) == sorted(["2303", "2304", "2305", "2206", "2207", "2208", "5206", "3201", "3202"])
    for transaction, statuses in sent.items():
        assert 200 in statuses and any(s >= 400 for s in statuses), (transaction, statuses)


def leukaemia_request() -> dict[str, Any]:
    steps = json.loads((EXCHANGES / "2304-inpatient-settlement.json").read_text(encoding="utf-8"))["steps"]
    request: dict[str, Any] = steps[0]["request"]
    return request


def test_the_national_view_is_the_settlements_own(service: Service) -> None:
    """/v1/nhsa answers with the national view the settlement stores: GET /v1/settlements/{id} shows the
    same fields and figures (the codes are the national default's)."""
    desk = service.auth("demo-desk")
    answer = service.client.post("/v1/nhsa/2304", json=leukaemia_request(), headers=desk).json()["output"]
    setl_id = answer["setlinfo"]["setl_id"]
    stored = service.client.get(f"/v1/settlements/{setl_id}", headers=desk).json()["nhsa"]
    assert {k: v for k, v in answer["setlinfo"].items() if k != "psn_idet_type"} == stored["setlinfo"]
    assert answer["setldetail"] == stored["setldetail"]


def test_a_provinces_dictionary_changes_the_codes_written(service: Service, tmp_path: Path) -> None:
    province = tmp_path / "province.yaml"
    province.write_text(
        'name: test province\ninsutype: {"391": resident}\npsn_idet_type: {"15": dibao}\n'
        'recode_fund_pay_type: {"390200": "391100", TA0001: "620100"}\n'
        'fund_pay_type: {"391100": 城乡居民大病保险（省）}\n',
        encoding="utf-8",
    )
    app = service.client.app
    app.state.nhsa_dictionary = load_dictionary(province)  # type: ignore[attr-defined]
    request = leukaemia_request()
    request["input"]["data"]["insutype"] = "391"
    answer = service.client.post("/v1/nhsa/2304", json=request, headers=service.auth("demo-desk")).json()
    assert answer["infcode"] == 0, answer
    info, details = answer["output"]["setlinfo"], answer["output"]["setldetail"]
    assert (info["insutype"], info["psn_idet_type"]) == ("391", "15")
    assert [(d["fund_pay_type"], d["fund_pay_type_name"]) for d in details][1:4] == [
        ("391100", "城乡居民大病保险（省）"),
        ("610100", "医疗救助基金"),
        ("620100", "临时救助资金（民政，地方代码）"),
    ]
    # The national code still reads; an unknown one is refused on its field.
    request["msgid"] = "ANOTHER-MSG-1"
    request["input"]["data"]["insutype"] = "399"
    refused = service.client.post("/v1/nhsa/2303", json={**request, "infno": "2303"}, headers=service.auth("demo-desk"))
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "input.data.insutype"


def test_a_database_outage_is_answered_in_the_envelope(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    import api.routes_nhsa as routes

    def down(*_args: Any, **_kwargs: Any) -> Any:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(routes, "settle_claim", down)
    before = database_rows(engine_of(service))
    answer = service.client.post("/v1/nhsa/2304", json=leukaemia_request(), headers=service.auth("demo-desk"))
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    body = answer.json()
    assert body["infcode"] == -4 and "retry" in body["err_msg"] and body["output"] is None
    assert database_rows(engine_of(service)) == before
