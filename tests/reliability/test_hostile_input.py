"""Hostile input, on SQLite and PostgreSQL: each request is refused with a clear problem naming what is wrong,
or neutralised, and the database is left exactly as it was.

- bodies over the limit (4 MiB for documents, 200 MiB for a hospital's file): 413, before the rest is read;
- JSON nested deeper than the decoder goes, numbers too large or not numbers at all;
- Unicode tricks in names and ids: direction overrides, zero-width characters, NUL, lone surrogates,
  full-width digits;
- path traversal in file names (statement downloads, uploaded files' names);
- formula injection: text that a spreadsheet would run (= + - @) is written inert in CSV and XLSX exports;
- decompression bombs: zip entries and XLSX workbooks that would inflate far beyond their size.
"""

from __future__ import annotations

import csv
import io
import json
import socket
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import openpyxl
import pytest

from tests.e2e.conftest import Service
from tests.e2e.helpers import database_rows, engine_of, stay
from tests.servers import Server

ROOT = Path(__file__).resolve().parents[2]
PERSON = {"household_id": "HOSTILE-H", "name": "测试 (test)", "insurance_scheme": "resident", "region": "220581"}
FOUR_MIB = 4 * 1024 * 1024


@pytest.fixture
def service(shared_service: Service) -> Service:
    """One service per database for the module: every test here leaves the database as it found it, or
    checks only what it adds."""
    return shared_service


def problem_fields(answer: Any) -> list[str]:
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.text[:300]
    return [e["field"] for e in answer.json().get("errors", [])]


def refused(service: Service, method: str, url: str, user: str, status: int = 422, **request: Any) -> list[str]:
    """Send a request that must be refused; the fields its problem names."""
    answer = service.client.request(method, url, headers=service.auth(user), **request)
    assert answer.status_code == status, (method, url, answer.status_code, answer.text[:500])
    return problem_fields(answer)


def test_bodies_over_the_limit_are_413_and_store_nothing(service: Service) -> None:
    before = database_rows(engine_of(service))
    padding = " " * (FOUR_MIB + 1)
    claim = '{"claim_id": "BIG-1"' + padding + "}"
    for url, user in (
        ("/v1/settlements", "demo-desk"),
        ("/v1/quotes", "demo-desk"),
        ("/v1/people/BIG-P", "demo-admin"),
    ):
        method = "PUT" if "people" in url else "POST"
        assert refused(service, method, url, user, 413, content=claim) == ["body"]
    # Sent in chunks without a Content-Length: counted as it arrives.
    chunks = (b" " * 65536 for _ in range(FOUR_MIB // 65536 + 2))
    assert refused(service, "POST", "/v1/policies/validate", "demo-admin", 413, content=chunks) == ["body"]
    # A hospital's file may be larger than a document: 5 MiB is read (and found unreadable), not refused.
    upload = service.client.post(
        "/v1/reconciliation/2014-12/match",
        params={"hospital_id": "JL-PROV-H001"},
        content=b"x" * (FOUR_MIB + FOUR_MIB // 4),
        headers=service.auth("demo-finance"),
    )
    assert upload.status_code == 200 and upload.json()["verdict"]["balanced"] is False
    assert database_rows(engine_of(service)) == before


def _raw_request(base_url: str, head: str, body: bytes = b"") -> bytes:
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as conn:
        conn.sendall(head.encode() + body)
        received = b""
        while b"\r\n\r\n" not in received:
            piece = conn.recv(65536)
            if not piece:
                break
            received += piece
        return received


def test_a_real_server_answers_413_on_the_declared_length_before_reading_the_body(tmp_path: Path) -> None:
    """Through a socket to `doudi serve`: a Content-Length over the limit is refused at once, though the
    body never comes (the server does not wait for 300 MB it would refuse)."""
    server = Server(f"sqlite:///{tmp_path / 'hostile.sqlite3'}", tmp_path)
    server.start()
    try:
        for path, size, token in (
            ("/v1/settlements", FOUR_MIB + 1, server.tokens["demo-desk"]),
            ("/v1/reconciliation/2014-12/match?hospital_id=MHK-H001", 300 * 1024 * 1024, server.tokens["demo-finance"]),
        ):
            head = (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
            )
            answer = _raw_request(server.base_url, head, b"{")
            assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
            assert b"application/problem+json" in answer
    finally:
        server.stop()
    assert server.tracebacks() == 0, server.log_tail()


DEEP = "[" * 100_000 + "]" * 100_000


MALFORMED = {
    "array-100k-deep": DEEP,  # deeper than the decoder goes
    "array-5k-deep-in-a-field": '{"claim_id": ' + "[" * 5000 + "]" * 5000 + "}",
    "braces-3k-deep": "{" * 3000 + "}" * 3000,  # not even a key
    "duplicate-key": '{"a": 1, "a": 2}',
    "not-utf8": b'{"claim_id": "\xff\xfe"}',
}


def test_deeply_nested_or_malformed_json_is_refused_on_the_body(service: Service) -> None:
    before = database_rows(engine_of(service))
    for what, body in MALFORMED.items():
        for url, user, method in (("/v1/settlements", "demo-desk", "POST"), ("/v1/people/X", "demo-admin", "PUT")):
            assert refused(service, method, url, user, content=body)[:1] == ["body"], what
    assert database_rows(engine_of(service)) == before


def _claim_text(total: str, **more: str) -> str:
    """A claim whose amount (and any other field) is written into the JSON text as given, unquoted."""
    fields = {k: v for k, v in stay("HUGE-1").items() if k != "total"}
    inner = ", ".join(f'"{k}": {v}' for k, v in more.items())
    text = json.dumps(fields)[:-1] + f', "total": {total}'
    return text + (", " + inner if inner else "") + "}"


NOT_AMOUNTS = [
    "1e400",  # a JSON number no float holds
    '"1e400"',
    "99999999999999999999.999",
    '"99999999999999999999.999"',
    '"99999999999999999999.99"',  # two places, but beyond (16,2)
    "NaN",
    "Infinity",
    "-Infinity",
    '"NaN"',
    '"Infinity"',
    "9" * 5000,  # past Python's integer-text limit
    '"' + "9" * 5000 + '"',
    "-0.00",
    '"１２３.００"',  # full-width digits
    "true",
    "[]",
]


def test_huge_and_non_numbers_are_refused_on_their_field(service: Service) -> None:
    before = database_rows(engine_of(service))
    for total in NOT_AMOUNTS:
        for url in ("/v1/settlements", "/v1/quotes"):
            fields = refused(service, "POST", url, "demo-desk", content=_claim_text(total))
            # "body" only where the text is not JSON at all (past Python's integer-text limit)
            assert fields == (["body"] if total == "9" * 5000 else ["total"]), (total, fields)
    assert database_rows(engine_of(service)) == before


def test_huge_numbers_elsewhere_are_refused(service: Service) -> None:
    before = database_rows(engine_of(service))
    assert refused(
        service, "POST", "/v1/settlements", "demo-desk", content=_claim_text('"100.00"', hospital_level="1e400")
    )
    assert refused(service, "GET", "/v1/settlements", "demo-desk", params={"limit": "9" * 40}) == ["limit"]
    assert refused(service, "GET", "/v1/people/MHK-P-0001/accumulators", "demo-desk", params={"year": "1e400"}) == [
        "year"
    ]
    assert refused(service, "GET", "/v1/reconciliation/2014-12/detail", "demo-finance", params={"offset": "-1"})
    hospital = {"name": "x", "level": 10**30, "region": "220581"}
    assert refused(service, "PUT", "/v1/hospitals/HUGE-H", "demo-admin", json=hospital) == ["level"]
    assert database_rows(engine_of(service)) == before


TRICKS = {
    "rtl-override": "MHK\u202eP-0001",
    "zero-width-space": "MHK-P-\u200b0001",
    "zero-width-joiner": "MHK\u200d-P-0001",
    "nul": "MHK-P-0001\x00",
    "bell": "MHK-P\x07-0001",
    "lone-surrogate": "MHK-P-\ud800",
    "full-width-digits": "MHK-P-０００１",
    "byte-order-mark": "\ufeffMHK-P-0001",
}


def test_unicode_tricks_in_ids_are_refused_on_their_field(service: Service) -> None:
    before = database_rows(engine_of(service))
    for trick, value in TRICKS.items():
        for field in ("claim_id", "person_id", "hospital_id"):
            body = json.dumps({**stay("TRICK-1"), field: value})  # \u escapes: a lone surrogate travels as JSON allows
            assert field in refused(service, "POST", "/v1/settlements", "demo-desk", content=body), (trick, field)
        # As a path parameter: refused on it (or, where the id cannot exist, not found), never a 500.
        encoded = quote(value.encode("utf-8", "surrogatepass"), safe="")
        for url, user in ((f"/v1/people/{encoded}", "demo-admin"), (f"/v1/settlements/{encoded}", "demo-desk")):
            answer = service.client.get(url, headers=service.auth(user))
            assert answer.status_code in (404, 422), (trick, url, answer.status_code, answer.text[:300])
            problem_fields(answer)
        put = service.client.put(f"/v1/people/{encoded}", json=PERSON, headers=service.auth("demo-admin"))
        assert put.status_code == 422, (trick, put.text)
    assert database_rows(engine_of(service)) == before


def test_unicode_tricks_in_names_are_refused_on_their_field(service: Service) -> None:
    before = database_rows(engine_of(service))
    admin = "demo-admin"
    for trick, value in TRICKS.items():
        if trick == "full-width-digits":
            continue  # ordinary typography in a name: see the next test
        name = "示例" + value + " (test)"
        person = json.dumps({**PERSON, "name": name})
        assert "name" in refused(service, "PUT", "/v1/people/TRICK-P", admin, content=person), trick
        hospital = json.dumps({"name": name, "level": 1, "region": "220581"})
        assert "name" in refused(service, "PUT", "/v1/hospitals/TRICK-H", admin, content=hospital), trick
        reason = json.dumps({"reason": name})
        url = f"/v1/settlements/{'0' * 32}/reversal"
        assert "reason" in refused(service, "POST", url, "demo-desk", content=reason), trick
        grant = json.dumps(stay("TRICK-G", grants=[{"payer": name, "amount": "10.00"}]))
        assert "grants.0.payer" in refused(service, "POST", "/v1/settlements", "demo-desk", content=grant), trick
    assert database_rows(engine_of(service)) == before


def test_full_width_digits_in_a_name_are_text_and_stored_as_given(service: Service) -> None:
    """Full-width digits are ordinary Chinese typography in a name: kept, and not taken for a number."""
    person = {**PERSON, "name": "张三（第２组）"}
    stored = service.client.put("/v1/people/FW-P", json=person, headers=service.auth("demo-admin"))
    assert stored.status_code == 200 and stored.json()["name"] == "张三（第２组）"


def test_a_policy_document_with_hidden_characters_is_refused_by_line(service: Service) -> None:
    document = (ROOT / "policies/library/jl-meihekou-2014.yaml").read_text(encoding="utf-8")
    before = database_rows(engine_of(service))
    hidden = document.replace("title:", "title: \u202e", 1)
    answer = service.client.post("/v1/policies", content=hidden, headers=service.auth("demo-admin"))
    assert answer.status_code == 422 and "U+202E" in answer.text and "line" in answer.text
    nul = document + "\n# \x00\n"
    assert (
        service.client.post("/v1/policies/validate", content=nul, headers=service.auth("demo-admin")).status_code == 422
    )
    # A byte-order mark at the start, as some editors write, is not a hidden character.
    with_bom = "\ufeff" + document
    again = service.client.post("/v1/policies", content=with_bom.encode(), headers=service.auth("demo-admin"))
    assert again.status_code == 200, again.text  # the same document as published: nothing new
    assert database_rows(engine_of(service)) == before


TRAVERSALS = [
    "../../../etc/passwd",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e/%2e%2e/etc/passwd",
    "national/../../../../etc/passwd",
    "/etc/passwd",
    "summary.csv/../../x",
    "..\\..\\windows\\win.ini",
    "national/..%5C..%5Cx.zip",
]


def test_path_traversal_in_a_statement_file_name_finds_nothing(service: Service) -> None:
    for name in TRAVERSALS:
        answer = service.client.get(f"/v1/reconciliation/2014-11/files/{name}", headers=service.auth("demo-finance"))
        assert answer.status_code in (404, 422), (name, answer.status_code)
        assert "root:" not in answer.text and "[fonts]" not in answer.text
        problem_fields(answer)


def test_an_uploaded_files_name_cannot_point_anywhere(service: Service, tmp_path: Path) -> None:
    before = database_rows(engine_of(service))
    for name in ("../../../../tmp/doudi-owned.csv", "..\\..\\evil.csv", "/etc/passwd", "\u202evsc.exe"):
        answer = service.client.post(
            "/v1/reconciliation/2014-11/match",
            params={"hospital_id": "JL-PROV-H001"},
            content=b"setl_id,medfee_sumamt\n",
            headers={**service.auth("demo-finance"), "X-Filename": name.encode("utf-8")},
        )
        assert answer.status_code == 200, answer.text
        shown = answer.json()["file"]["name"]
        assert "/" not in shown and "\\" not in shown, shown
    assert not Path("/tmp/doudi-owned.csv").exists()
    assert database_rows(engine_of(service)) == before


FORMULAS = ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1:A2)", "=cmd|' /C calc'!A0"]


def _cells_csv(data: bytes) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(data.decode("utf-8-sig"))) for cell in row]


def _cells_xlsx(data: bytes) -> list[Any]:
    workbook = openpyxl.load_workbook(io.BytesIO(data))
    cells = []
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", f"a formula cell in {sheet.title}!{cell.coordinate}: {cell.value}"
                cells.append(cell.value)
    return cells


def _dangerous(value: Any) -> bool:
    """Text a spreadsheet would evaluate. Numbers are not text (a negative amount is a number)."""
    if not isinstance(value, str) or not value.startswith(("=", "+", "-", "@")):
        return False
    try:
        float(value)
    except ValueError:
        return True
    return False


def test_formulas_in_a_hospitals_file_come_back_inert_in_the_difference_report(service: Service) -> None:
    """A hospital's file is outside text: whatever its cells hold is echoed in the difference report, where
    a cell starting with = + - @ is written with a leading apostrophe in CSV and as text in XLSX."""
    rows = ["setl_id,medins_setl_id,psn_no,medfee_sumamt,fund_pay_sumamt,acct_pay,refd_setl_flag"]
    for formula in FORMULAS:
        quoted = '"' + formula.replace('"', '""') + '"'
        rows.append(f"{quoted},{quoted},{quoted},100.00,{quoted},0.00,0")
    upload = ("\n".join(rows) + "\n").encode()
    finance = service.auth("demo-finance")
    params = {"hospital_id": "JL-PROV-H001"}
    for fmt, cells in (("csv", _cells_csv), ("xlsx", _cells_xlsx)):
        answer = service.client.post(
            "/v1/reconciliation/2014-11/match", params={**params, "format": fmt}, content=upload, headers=finance
        )
        assert answer.status_code == 200, answer.text
        found = cells(answer.content)
        assert not [c for c in found if _dangerous(c)], [c for c in found if _dangerous(c)][:5]
        echoed = [c for c in found if isinstance(c, str) and c.lstrip("'").startswith(("=HYPERLINK", "@SUM", "+1+1"))]
        assert echoed, "the hostile cells were not echoed at all: the test did not test"


def test_formulas_in_names_are_inert_in_statement_exports(service: Service) -> None:
    """Free text that reaches a statement (a grant payer, a reversal reason) never starts a formula."""
    desk = service.auth("demo-desk")
    for n, formula in enumerate(FORMULAS):
        claim = stay(f"FORMULA-{n}", grants=[{"payer": formula, "amount": "10.00"}])
        settled = service.client.post("/v1/settlements", json=claim, headers=desk)
        assert settled.status_code == 201, settled.text
        reversal = {"reason": formula}
        assert (
            service.client.post(
                f"/v1/settlements/{settled.json()['setl_id']}/reversal", json=reversal, headers=desk
            ).status_code
            == 201
        )
    finance = service.auth("demo-finance")
    for name in ("summary.csv", "detail.csv", "hospitals.csv", "checks.csv"):
        answer = service.client.get(f"/v1/reconciliation/2014-12/files/{name}", headers=finance)
        assert answer.status_code == 200, (name, answer.text[:300])
        assert not [c for c in _cells_csv(answer.content) if _dangerous(c)], name
    workbook = service.client.get("/v1/reconciliation/2014-12/files/statement.xlsx", headers=finance)
    assert not [c for c in _cells_xlsx(workbook.content) if _dangerous(c)]


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _match(service: Service, data: bytes, name: str) -> Any:
    answer = service.client.post(
        "/v1/reconciliation/2014-11/match",
        params={"hospital_id": "JL-PROV-H001"},
        content=data,
        headers={**service.auth("demo-finance"), "X-Filename": name},
    )
    assert answer.status_code == 200, answer.text[:500]
    return answer.json()


def _workbook_with_sheet(sheet_xml: bytes) -> bytes:
    """A minimal XLSX (a zip of XML parts) whose one sheet is `sheet_xml`."""
    parts = {
        "[Content_Types].xml": (
            b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            b'<Default Extension="xml" ContentType="application/xml"/>'
            b'<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.'
            b'spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" '
            b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>'
        ),
        "_rels/.rels": (
            b'<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
            b'relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            b'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            b'<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
            b'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>'
            b'<sheet name="s" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            b'<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
            b'relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            b'relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
        ),
        "xl/worksheets/sheet1.xml": sheet_xml,
    }
    return _zip(parts)


def _billion_laughs() -> bytes:
    """A sheet whose one cell is an entity that expands to 10**9 'lol's, in under a kilobyte."""
    entities = ['<!ENTITY lol0 "lol">']
    for level in range(1, 10):
        entities.append(f'<!ENTITY lol{level} "{f"&lol{level - 1};" * 10}">')
    return (
        b'<?xml version="1.0"?><!DOCTYPE lolz [' + "".join(entities).encode() + b"]>"
        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1">'
        b'<c r="A1" t="inlineStr"><is><t>&lol9;</t></is></c></row></sheetData></worksheet>'
    )


def test_zip_and_xml_bombs_are_refused_with_a_reason(service: Service) -> None:
    before = database_rows(engine_of(service))
    # A zipped detail file that inflates a thousand times over (64 MiB of zeros in about 64 KiB); its
    # directory tells, and nothing is inflated.
    bomb = _zip({"detail.txt": b"0" * (64 * 1024 * 1024)})
    assert len(bomb) < 256 * 1024
    verdict = _match(service, bomb, "detail.zip")
    assert verdict["verdict"]["balanced"] is False and verdict["file"]["problems"] >= 1
    assert any(w in " ".join(verdict["file"]["notes"]) + str(verdict["differences"]) for w in ("MB", "refused"))
    # A workbook whose sheet inflates the same way.
    padded = b'<?xml version="1.0"?><worksheet>' + b" " * (64 * 1024 * 1024) + b"</worksheet>"
    verdict = _match(service, _workbook_with_sheet(padded), "big.xlsx")
    assert verdict["verdict"]["balanced"] is False and verdict["file"]["problems"] >= 1
    # A workbook whose sheet is a billion-laughs entity expansion: not expanded (refused as unreadable).
    verdict = _match(service, _workbook_with_sheet(_billion_laughs()), "laughs.xlsx")
    assert verdict["verdict"]["balanced"] is False
    assert "lollollol" not in str(verdict)
    # Zips within zips are not opened.
    nested = _zip({"inner.zip": _zip({"detail.txt": b"0" * 1024})})
    assert _match(service, nested, "nested.zip")["verdict"]["balanced"] is False
    assert database_rows(engine_of(service)) == before
