"""Masking people's identifiers and names (doudi/masking.py): properties over any value (never more shown
than the rule allows, idempotent, the length kept), identity numbers and keyed values found in free text
and nothing else touched, the logging filter on real log records, and a statement's files with person
numbers masked except in the national file when full identifiers are enabled (the golden files, written
with identifiers as given, stay valid: tests/unit/test_statement.py)."""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
import zipfile
from unittest import mock

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from uvicorn.logging import AccessFormatter as UvicornAccessFormatter

from doudi import masking
from doudi.logs import AccessFormatter, MaskingFilter
from doudi.reconcile import IDENTIFIERS
from reconciliation.files import statement_files
from reconciliation.statement import build_statement
from tests.unit.test_statement import GOLDEN, JULY, small_month

MASK = masking.MASK


def shown_characters(original: str, masked: str) -> int:
    """How many characters of `original` `masked` still shows where they were."""
    return sum(1 for a, b in zip(original, masked, strict=True) if b != MASK and a == b)


@given(st.text())
def test_an_identifier_shows_at_most_its_last_four_characters_and_a_third_of_it(value: str) -> None:
    masked = masking.identifier(value)
    assert len(masked) == len(value)
    allowed = min(4, len(value) // 3)
    assert shown_characters(value, masked) <= allowed
    kept = len(value) - masked.count(MASK) if MASK not in value else None
    if kept is not None:
        assert kept <= allowed
    assert set(masked[: len(value) - allowed]) <= {MASK}
    assert masked[len(value) - allowed :] == value[len(value) - allowed :]
    assert masking.identifier(masked) == masked


@given(st.text())
def test_a_name_shows_at_most_its_first_character(value: str) -> None:
    masked = masking.name(value)
    assert len(masked) == len(value)
    assert shown_characters(value, masked) <= (1 if len(value) >= 2 else 0)
    assert set(masked[1:]) <= {MASK}
    assert masking.name(masked) == masked


def test_the_rules_on_examples() -> None:
    assert masking.identifier("220581199001011234") == "**************1234"
    assert masking.identifier("22058119900101123X") == "**************123X"
    assert masking.identifier("MHK-P-0001") == "*******001"
    assert masking.identifier("P1") == "**"
    assert masking.identifier("") == ""
    assert masking.name("张三丰") == "张**"
    assert masking.name("Gao Yue") == "G******"
    assert masking.name("张") == "*"


# Resident identity numbers: six-digit area, birth date, three digits, a check digit or X.
id_numbers = st.builds(
    lambda area, born, serial, check: f"{area}{born:%Y%m%d}{serial:03d}{check}",
    st.integers(110000, 659999).map(str),
    st.dates(dt.date(1900, 1, 1), dt.date(2099, 12, 31)),
    st.integers(0, 999),
    st.sampled_from("0123456789Xx"),
)
separators = st.sampled_from([" ", ",", ";", ":", "=", "/", "(", ")", "'", '"', "\t", "\n", "，", "：", "?", "&"])


@given(st.lists(st.tuples(st.text(max_size=12), id_numbers), max_size=4), separators, st.text(max_size=12))
def test_identity_numbers_in_free_text_are_masked_wherever_they_stand(
    parts: list[tuple[str, str]], separator: str, tail: str
) -> None:
    text = "".join(f"{before}{separator}{number}{separator}" for before, number in parts) + tail
    masked = masking.scrub(text)
    for _, number in parts:
        assert number not in masked
        assert number[:14] not in masked  # area and birth date never shown
    assert masking.scrub(masked) == masked


@given(st.text())
def test_scrubbing_is_idempotent(text: str) -> None:
    once = masking.scrub(text)
    assert masking.scrub(once) == once


# Text in which the rules have something to find: keys in any case, the people path, identity numbers, the
# punctuation around them, and anything else.
pieces = st.one_of(
    st.text(max_size=8),
    st.sampled_from(masking.IDENTIFIER_KEYS + masking.NAME_KEYS).map(lambda k: k.upper() if len(k) % 2 else k),
    st.sampled_from(["/people/", "/PEOPLE/", "=", '"', "'", ":", "(", ")", " "]),
    id_numbers,
    id_numbers.map(lambda number: number[:-1] + "X"),
    st.from_regex(r"[0-9]{15,20}", fullmatch=True),
    st.from_regex(r"/people/[A-Za-z0-9-]{1,12}", fullmatch=True),
    st.sampled_from(masking.IDENTIFIER_KEYS).map(lambda k: f"{k}=P-0001"),
)


@given(st.lists(pieces, max_size=10).map("".join))
def test_the_quick_look_for_something_to_mask_never_skips_what_the_rules_would_mask(text: str) -> None:
    quick = masking.scrub(text)
    with mock.patch.object(masking, "_MAYBE", re.compile("")):  # always found: every rule is applied
        assert quick == masking.scrub(text)


safe_tokens = st.one_of(
    st.from_regex(r"[A-Za-z]{1,12}", fullmatch=True),
    st.from_regex(r"[0-9]{1,17}", fullmatch=True),
    st.from_regex(r"[0-9]{19,30}", fullmatch=True),
    st.from_regex(r"-?[0-9]{1,12}\.[0-9]{2}", fullmatch=True),
    st.datetimes().map(lambda d: d.isoformat()),
    st.uuids().map(lambda u: u.hex),
    st.from_regex(r"[A-Z]{2,4}-H[0-9]{3}", fullmatch=True),  # hospital ids
    st.sampled_from(
        [
            "GET /v1/settlements/abc HTTP/1.1",
            "POST /v1/reconciliation/2014-07/close",
            "/v1/hospitals/MHK-H001?year=2014",
            "hospital_id=MHK-H001",
            '"name": "梅河口市二级医院"',
            "user_name=demo-desk",
            "Key (setl_id)=(0f3a)",
            "200 OK",
            "结算 settlement",
            "people",
            "/people",
        ]
    ),
)


@given(st.lists(safe_tokens, max_size=12), st.lists(separators, min_size=12, max_size=12))
def test_text_without_identifiers_is_left_exactly_as_it_was(tokens: list[str], between: list[str]) -> None:
    text = "".join(token + sep for token, sep in zip(tokens, between, strict=False))
    # "/people" then the separator "/" then a token is a person's path, which is an identifier.
    assume("/people/" not in text.lower())
    assert masking.scrub(text) == text


identifier_values = st.from_regex(r"[0-9A-Za-z][0-9A-Za-z._:/-]{0,30}", fullmatch=True)


@given(st.sampled_from(masking.IDENTIFIER_KEYS), identifier_values.filter(lambda v: "/" not in v and ":" not in v))
def test_a_value_after_an_identifier_key_is_masked_in_every_form(key: str, value: str) -> None:
    hidden = masking.identifier(value)
    assert masking.scrub(f"?{key}={value}&year=2014") == f"?{key}={hidden}&year=2014"
    assert masking.scrub(f'{{"{key}": "{value}", "year": 2014}}') == f'{{"{key}": "{hidden}", "year": 2014}}'
    assert masking.scrub(f"{{'{key}': '{value}'}}") == f"{{'{key}': '{hidden}'}}"
    assert masking.scrub(f"DETAIL:  Key ({key})=({value}) already exists.") == (
        f"DETAIL:  Key ({key})=({hidden}) already exists."
    )


@given(identifier_values.filter(lambda v: "/" not in v))
def test_a_person_in_a_path_is_masked(value: str) -> None:
    hidden = masking.identifier(value)
    assert masking.scrub(f"GET /v1/people/{value}/accumulators?year=2014 HTTP/1.1") == (
        f"GET /v1/people/{hidden}/accumulators?year=2014 HTTP/1.1"
    )


def test_a_name_after_a_name_key_keeps_its_first_character() -> None:
    assert (
        masking.scrub('{"psn_name": "张三丰", "name": "梅河口市二级医院"}')
        == '{"psn_name": "张**", "name": "梅河口市二级医院"}'
    )
    assert masking.scrub("patient_name=Gao%20Yue") == "patient_name=G********"


@pytest.mark.parametrize(
    ("value", "full"),
    [("", False), ("0", False), ("no", False), ("1", True), ("true", True), ("YES", True), (" on ", True)],
)
def test_full_identifiers_are_off_unless_asked_for(value: str, full: bool) -> None:
    assert masking.full_identifiers({masking.FULL_IDENTIFIERS_ENV: value}) is full
    assert masking.full_identifiers({}) is False


def test_a_mistyped_setting_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="DOUDI_FULL_IDENTIFIERS='maybe'"):
        masking.full_identifiers({"DOUDI_FULL_IDENTIFIERS": "maybe"})


def logged(name: str, emit: object) -> str:
    """What a handler carrying the filter writes when `emit(logger)` logs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        emit(logger)  # type: ignore[operator]
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_log_lines_and_tracebacks_carry_no_identifier() -> None:
    number = "220581199001011234"

    def emit(logger: logging.Logger) -> None:
        logger.warning('%s - "%s %s HTTP/%s" %d', "10.0.0.1:5000", "GET", f"/v1/people/{number}", "1.1", 200)
        logger.warning("settling person_id=%s", "MHK-P-0001")
        try:
            raise RuntimeError(f"duplicate key: Key (person_id)=({number})")
        except RuntimeError:
            logger.exception("failed for %s", number)

    out = logged("doudi.test.masking", emit)
    assert number not in out and "MHK-P-0001" not in out
    assert "/v1/people/**************1234" in out and "person_id=*******001" in out
    assert "Key (person_id)=(**************1234)" in out and "RuntimeError" in out


def test_uvicorn_access_records_keep_their_arguments() -> None:
    """uvicorn's access formatter unpacks the record's five arguments: they stay five, masked one by one."""
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', None, None)
    record.args = ("10.0.0.1:5000", "GET", "/v1/people/MHK-P-0001?person_id=MHK-P-0001", "1.1", 200)
    assert MaskingFilter().filter(record)
    assert record.args == ("10.0.0.1:5000", "GET", "/v1/people/*******001?person_id=*******001", "1.1", 200)


access_arguments = st.tuples(
    st.text(max_size=20), st.sampled_from(["GET", "POST", "PUT"]), st.text(max_size=40), st.sampled_from(["1.0", "1.1"])
)


@given(access_arguments, st.integers(100, 999), st.sampled_from([logging.INFO, logging.WARNING]))
def test_access_lines_are_written_as_uvicorn_writes_them(
    arguments: tuple[str, str, str, str], status: int, level: int
) -> None:
    fmt = '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s'
    args = (*arguments, status)
    ours, theirs = (make(fmt, use_colors=False) for make in (AccessFormatter, UvicornAccessFormatter))
    record = logging.LogRecord("uvicorn.access", level, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None)
    assert ours.format(record) == theirs.format(record)
    client, method, path, version = arguments
    assert record.args == args and record.getMessage() == f'{client} - "{method} {path} HTTP/{version}" {status}'


def test_coloured_access_lines_are_uvicorns() -> None:
    fmt = '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s'
    args = ("10.0.0.1:5000", "GET", "/healthz", "1.1", 200)
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None)
    coloured = AccessFormatter(fmt, use_colors=True).format(record)
    assert coloured == UvicornAccessFormatter(fmt, use_colors=True).format(record) and "\x1b[" in coloured


def test_statement_files_mask_person_numbers_except_where_the_national_file_must_carry_them() -> None:
    statement = build_statement(JULY, *small_month())
    full = statement_files(statement)
    masked = statement_files(statement, IDENTIFIERS["masked"])
    national = statement_files(statement, IDENTIFIERS["national"])
    assert full["detail.csv"] == (GOLDEN / "detail.csv").read_bytes()  # as given: the golden file

    def national_text(files: dict[str, bytes]) -> str:
        with zipfile.ZipFile(io.BytesIO(files["national/H2.zip"])) as archive:
            return archive.read("H2-2014-07.txt").decode("utf-8")

    golden_detail = (GOLDEN / "detail.csv").read_text(encoding="utf-8-sig")
    expected_detail = golden_detail
    for person in ("P1", "P2", "P3", "P4"):
        expected_detail = expected_detail.replace(f',"{person}",', ',"**",')
    assert masked["detail.csv"].decode("utf-8-sig") == expected_detail
    assert national["detail.csv"] == masked["detail.csv"]
    assert national_text(national) == (GOLDEN / "national-H2.txt").read_text(encoding="utf-8")
    assert national_text(masked) != national_text(national)
    assert "\tP" not in national_text(masked)
    for name in ("summary.csv", "hospitals.csv", "checks.csv"):
        assert masked[name] == full[name]
