"""The national platform's transactions mapped onto Doudi's claims and records, and back.

In: the body of 2303/2304/2206/2207 (pre-settlement and settlement, inpatient and outpatient) becomes the
claim a desk would send to /v1/settlements, in Doudi's field names, so that the register completes it and
the same service path settles it; 2305/2208 (reversal) and 5206, 3201, 3202 are read the same way. Out: the
settlement record's own national view (`nhsa.setlinfo`, `nhsa.setldetail`, written by the engine and stored
with the settlement) with the province's codes from the dictionary. Every problem is reported at once, on
the national field that caused it.

The platform keeps the stay's dates and diagnoses from earlier transactions (2401 admission, 2402
discharge, 2203 outpatient visit); Doudi keeps no such record, so each (pre-)settlement carries them in the
same shapes: `input.mdtrtinfo` (`begntime`, `endtime`) and `input.diseinfo[]` (`diag_code`,
`maindiag_flag`, `diag_srt_no`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from interop.dictionary import Dictionary
from interop.envelope import Message, national_time, read_message, read_time
from settlement.codes import NHSA_FUND_FIELDS, VisitType
from settlement.errors import ClaimError, FieldError
from settlement.money import MoneyError, fen_from_decimal, format_yuan, parse_yuan

INPATIENT: Final = {"2303": "quote", "2304": "settle", "2305": "reverse"}
OUTPATIENT: Final = {"2206": "quote", "2207": "settle", "2208": "reverse"}
SETTLING: Final = {**INPATIENT, **OUTPATIENT}

DATA = "input.data"
AMOUNTS: Final = {
    "total": "medfee_sumamt",
    "fully_self_paid": "fulamt_ownpay_amt",
    "over_limit_self_paid": "overlmt_selfpay",
    "pre_self_paid": "preselfpay_amt",
}
"""Doudi's claim amounts and the platform's names for them (医疗费总额, 全自费金额, 超限价自费费用,
先行自付金额)."""

CLAIM_FIELDS: Final = {
    "claim_id": "msgid",
    "person_id": f"{DATA}.psn_no",
    "household_id": f"{DATA}.psn_no",  # the register's household of the person
    "hospital_id": "fixmedins_code",
    "hospital_level": "fixmedins_code",  # the register's level of the hospital
    "insurance_scheme": f"{DATA}.insutype",
    "category": f"{DATA}.psn_idet_type",
    "visit_type": f"{DATA}.med_type",
    "admitted_on": "input.mdtrtinfo.begntime",
    "discharged_on": "input.mdtrtinfo.endtime",
    "settled_at": "inf_time",
    "diagnoses": "input.diseinfo",
    "grants": f"{DATA}.exp_content.grants",
    "third_party_liability": f"{DATA}.exp_content.third_party_liability",
    "assistance_approval": f"{DATA}.exp_content.assistance_approval",
    **{doudi: f"{DATA}.{national}" for doudi, national in AMOUNTS.items()},
}
"""Where each field of Doudi's claim came from in the national request: errors are reported there."""

EXTENSIONS: Final = ("grants", "third_party_liability", "assistance_approval")
"""Facts Doudi needs that the platform's messages do not carry, read from `input.data.exp_content`."""

_WORDS: Final = re.compile(r"\b(" + "|".join(("admitted_on", "discharged_on", "settled_at", *AMOUNTS)) + r")\b")
_WORD_NAMES: Final = {
    "admitted_on": "begntime",
    "discharged_on": "endtime",
    "settled_at": "inf_time",
    **AMOUNTS,
}


@dataclass(frozen=True)
class SettlementRequest:
    """A (pre-)settlement request as Doudi's claim body, before the register completes it."""

    message: Message
    claim: dict[str, Any]
    mdtrt_id: str
    diagnosis_at: tuple[int, ...]  # claim.diagnoses[i] came from input.diseinfo[diagnosis_at[i]]
    problems: tuple[FieldError, ...] = ()  # what is wrong in the request itself (the register may add more)
    warnings: tuple[str, ...] = ()
    sources: Mapping[str, str] = field(default_factory=dict)  # claim fields read from elsewhere than CLAIM_FIELDS

    def all_problems(self, *more: Sequence[FieldError]) -> list[FieldError]:
        """The request's problems, then those found later (the register's, the claim's own) on fields not
        already named: a missing amount is said once, not again as the claim's "is required"."""
        found = list(self.problems)
        named = {p.field for p in found}
        for problems in more:
            found += [p for p in problems if p.field not in named]
            named |= {p.field for p in problems}
        return found

    def national_errors(self, err: ClaimError) -> ClaimError:
        """Doudi's problems with the claim, each moved to the national field it came from."""
        return ClaimError([self._moved(e) for e in err.errors])

    def _moved(self, error: FieldError) -> FieldError:
        head = re.split(r"[.\[]", error.field, maxsplit=1)[0]
        rest = error.field[len(head) :]
        message = _WORDS.sub(lambda m: _WORD_NAMES[m.group(1)], error.message)
        if head == "diagnoses":
            found = re.match(r"\[(\d+)\]", rest)
            if found and int(found.group(1)) < len(self.diagnosis_at):
                return FieldError(f"input.diseinfo[{self.diagnosis_at[int(found.group(1))]}].diag_code", message)
            return FieldError("input.diseinfo", message)
        coded = {"insurance_scheme": "insutype", "category": "psn_idet_type"}.get(head)
        if coded is not None and self.message.data.get(coded) is not None:
            # "'employee' contradicts the register…" names the code the sender used: "'310' (employee) …"
            stated = repr(self.claim.get(head))
            if message.startswith(stated):
                message = f"{str(self.message.data[coded])!r} ({self.claim.get(head)}){message[len(stated) :]}"
        if head in self.sources:
            return FieldError(self.sources[head] + rest, message)
        if head in CLAIM_FIELDS:
            return FieldError(CLAIM_FIELDS[head] + rest, message)
        return FieldError(error.field, message)


def settlement_request(body: Any, infno: str, dictionary: Dictionary) -> SettlementRequest:
    """The claim body of a 2303/2304/2206/2207 request (Doudi's field names; the register fills in the
    household, category and hospital level and checks the scheme), with what is wrong in `problems` on the
    national fields. Raises ClaimError only for a body that is not an envelope."""
    message = read_message(body, infno, need_time=True)
    problems = list(message.problems)
    data = message.data
    warnings: list[str] = []
    claim: dict[str, Any] = {"claim_id": message.msgid}

    psn_no = data.get("psn_no")
    if not isinstance(psn_no, str) or not psn_no.strip():
        problems.append(FieldError(f"{DATA}.psn_no", "is required: the person's number (人员编号)"))
    else:
        claim["person_id"] = psn_no.strip()
    mdtrt_id = _text(data, "mdtrt_id", "the visit id (就诊ID)", problems)
    if message.fixmedins_code is not None:
        claim["hospital_id"] = message.fixmedins_code

    insutype = data.get("insutype")
    if insutype is None:
        problems.append(FieldError(f"{DATA}.insutype", "is required: the insurance type (险种类型)"))
    else:
        scheme = dictionary.scheme(str(insutype))
        if scheme is None:
            known = ", ".join(dictionary.insutype)
            problems.append(
                FieldError(f"{DATA}.insutype", f"{insutype!r} is not an insurance type Doudi settles (known: {known})")
            )
        else:
            claim["insurance_scheme"] = scheme

    visit = _visit_type(data.get("med_type"), infno, dictionary, problems)
    if visit is not None:
        claim["visit_type"] = visit
    idet = data.get("psn_idet_type")
    if idet not in (None, ""):
        category = dictionary.category(str(idet))
        if category is None:
            known = ", ".join(dictionary.psn_idet_type)
            problems.append(FieldError(f"{DATA}.psn_idet_type", f"{idet!r} is not in the dictionary (known: {known})"))
        else:
            claim["category"] = category

    for doudi, national in AMOUNTS.items():
        value = data.get(national)
        if value is None:
            problems.append(FieldError(f"{DATA}.{national}", "is required: an amount in yuan to the fen"))
        else:
            claim[doudi] = value
    problems += _scope_problem(data)

    flag = data.get("mid_setl_flag")
    if flag not in (None, "", "0", 0):
        problems.append(
            FieldError(
                f"{DATA}.mid_setl_flag",
                f"{flag!r}: Doudi settles a stay once, at discharge; a mid-stay settlement (中途结算) is not accepted",
            )
        )
    if str(data.get("acct_used_flag", "0")) == "1":
        warnings.append("acct_used_flag: Doudi pays nothing from the personal account; acct_pay is 0.00")

    stay, sources = _stay(message, visit, problems)
    claim.update(stay)
    diagnoses, diagnosis_at = _diagnoses(message.input.get("diseinfo"), problems)
    if diagnoses:
        claim["diagnoses"] = diagnoses
    if message.inf_time is not None:
        claim["settled_at"] = message.inf_time.isoformat()
    claim.update(_extensions(data.get("exp_content"), problems))

    return SettlementRequest(message, claim, mdtrt_id, diagnosis_at, tuple(problems), tuple(warnings), sources)


def _text(data: Mapping[str, Any], name: str, what: str, problems: list[FieldError]) -> str:
    value = data.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        problems.append(FieldError(f"{DATA}.{name}", f"is required: {what}, text of at most 64 characters"))
        return ""
    return value.strip()


def _visit_type(raw: object, infno: str, dictionary: Dictionary, problems: list[FieldError]) -> VisitType | None:
    inpatient = infno in INPATIENT
    if raw in (None, ""):
        return "inpatient" if inpatient else "outpatient"
    visit = dictionary.visit_type(str(raw))
    if visit is None:
        known = ", ".join(dictionary.med_type)
        problems.append(FieldError(f"{DATA}.med_type", f"{raw!r} is not a medical type Doudi settles (known: {known})"))
        return None
    if (visit == "inpatient") != inpatient:
        use = "2303/2304/2305" if visit == "inpatient" else "2206/2207/2208"
        problems.append(FieldError(f"{DATA}.med_type", f"{raw!r} is {visit}: send it as transaction {use}"))
        return None
    return visit


def _scope_problem(data: Mapping[str, Any]) -> list[FieldError]:
    """符合政策范围金额, when sent, must be the total less the three self-paid parts (the platform's identity)."""
    stated = data.get("inscp_scp_amt")
    if stated is None:
        return []
    try:
        scope = parse_yuan(stated, "inscp_scp_amt")
    except MoneyError as err:
        return [FieldError(f"{DATA}.inscp_scp_amt", str(err))]
    try:
        amounts = [parse_yuan(data.get(name)) for name in AMOUNTS.values()]
    except MoneyError:
        return []  # the amounts' own errors say what is wrong
    expected = amounts[0] - amounts[1] - amounts[2] - amounts[3]
    if scope == expected:
        return []
    return [
        FieldError(
            f"{DATA}.inscp_scp_amt",
            f"is {scope}, but medfee_sumamt − fulamt_ownpay_amt − overlmt_selfpay − preselfpay_amt is {expected}",
        )
    ]


def _stay(message: Message, visit: str | None, problems: list[FieldError]) -> tuple[dict[str, str], dict[str, str]]:
    """The stay's first and last day, from input.mdtrtinfo (2401/2402's block) or input.data, and where
    each was read (so that the claim's problems with them are reported there)."""
    info = message.input.get("mdtrtinfo")
    if info is not None and not isinstance(info, Mapping):
        problems.append(FieldError("input.mdtrtinfo", "must be an object with begntime and endtime"))
        info = None
    source, where = (info, "input.mdtrtinfo") if info is not None else (message.data, DATA)
    out: dict[str, str] = {}
    sources = {"admitted_on": f"{where}.begntime", "discharged_on": f"{where}.endtime"}
    begin = read_time(source.get("begntime"), f"{where}.begntime", problems)
    if begin is not None:
        out["admitted_on"] = begin.date().isoformat()
    if source.get("endtime") in (None, "") and visit != "inpatient":
        sources["discharged_on"] = f"{where}.begntime"
        if begin is not None:
            out["discharged_on"] = begin.date().isoformat()  # an outpatient visit is one day
        return out, sources
    end = read_time(source.get("endtime"), f"{where}.endtime", problems)
    if end is not None:
        out["discharged_on"] = end.date().isoformat()
    return out, sources


def _diagnoses(raw: object, problems: list[FieldError]) -> tuple[list[str], tuple[int, ...]]:
    """The codes of input.diseinfo[], the main diagnosis (maindiag_flag "1") first, then by diag_srt_no."""
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        problems.append(
            FieldError("input.diseinfo", "is required: the stay's diagnoses (as in 2401/2402), the main one flagged")
        )
        return [], ()
    rows: list[tuple[int, int, int, str]] = []
    for i, item in enumerate(raw):
        where = f"input.diseinfo[{i}]"
        if not isinstance(item, Mapping):
            problems.append(FieldError(where, "must be an object with diag_code"))
            continue
        code = item.get("diag_code")
        if not isinstance(code, str) or not code.strip():
            problems.append(FieldError(f"{where}.diag_code", "is required: an ICD-10 code"))
            continue
        main = str(item.get("maindiag_flag", "0"))
        if main not in ("0", "1"):
            problems.append(FieldError(f"{where}.maindiag_flag", f"{main!r} must be 1 (main diagnosis) or 0"))
        order = item.get("diag_srt_no", i + 1)
        try:
            rank = int(str(order))
        except ValueError:
            problems.append(FieldError(f"{where}.diag_srt_no", f"{order!r} is not a whole number"))
            rank = i + 1
        rows.append((0 if main == "1" else 1, rank, i, code.strip()))
    mains = [r for r in rows if r[0] == 0]
    if len(mains) > 1:
        problems.append(
            FieldError(f"input.diseinfo[{mains[1][2]}].maindiag_flag", "a second main diagnosis: flag only one")
        )
    rows.sort()
    return [r[3] for r in rows], tuple(r[2] for r in rows)


def _extensions(raw: object, problems: list[FieldError]) -> dict[str, Any]:
    """Doudi's own facts from input.data.exp_content (an object, or JSON text of one); other keys there
    belong to the province and are left alone."""
    where = f"{DATA}.exp_content"
    if raw in (None, ""):
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw, parse_float=str)
        except ValueError as err:
            problems.append(FieldError(where, f"is text but not JSON: {err}"))
            return {}
    if not isinstance(raw, Mapping):
        problems.append(FieldError(where, "must be an object (or JSON text of one)"))
        return {}
    return {name: raw[name] for name in EXTENSIONS if name in raw}


# ---------------------------------------------------------------------------------------------------------
# Reversal (2305, 2208)


@dataclass(frozen=True)
class ReversalRequest:
    message: Message
    setl_id: str
    mdtrt_id: str
    psn_no: str
    reason: str  # as recorded: it names the message, so that a repeat of the same message is recognised


def reversal_request(body: Any, infno: str) -> ReversalRequest:
    message = read_message(body, infno)
    problems = list(message.problems)
    data = message.data
    setl_id = _text(data, "setl_id", "the settlement id (结算ID) to reverse", problems)
    mdtrt_id = _text(data, "mdtrt_id", "the visit id (就诊ID)", problems)
    psn_no = _text(data, "psn_no", "the person's number (人员编号)", problems)
    given = _extensions_reason(data.get("exp_content"), problems)
    if problems:
        raise ClaimError(problems)
    reason = reversal_reason(message.infno, message.msgid) + (f": {given}" if given else "")
    return ReversalRequest(message, setl_id, mdtrt_id, psn_no, reason[:500])


def reversal_reason(infno: str, msgid: str) -> str:
    return f"{infno} msgid {msgid}"


def _extensions_reason(raw: object, problems: list[FieldError]) -> str:
    if isinstance(raw, str) and raw.strip() and not raw.strip().startswith("{"):
        return raw.strip()
    if raw in (None, ""):
        return ""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as err:
            problems.append(FieldError(f"{DATA}.exp_content", f"is text but not JSON: {err}"))
            return ""
    reason = raw.get("reason") if isinstance(raw, Mapping) else None
    if reason is not None and not isinstance(reason, str):
        problems.append(FieldError(f"{DATA}.exp_content.reason", "must be text"))
        return ""
    return (reason or "").strip()


def reversal_mismatches(
    request: ReversalRequest, person_id: str, stored_mdtrt_id: str, visit_type: str
) -> list[FieldError]:
    """What in a reversal request contradicts the settlement it names."""
    problems = []
    if request.psn_no != person_id:
        problems.append(
            FieldError(f"{DATA}.psn_no", f"{request.psn_no!r} is not the person of settlement {request.setl_id!r}")
        )
    if request.mdtrt_id != stored_mdtrt_id:
        problems.append(
            FieldError(f"{DATA}.mdtrt_id", f"{request.mdtrt_id!r} is not the visit of settlement {request.setl_id!r}")
        )
    inpatient = request.message.infno in INPATIENT
    if (visit_type == "inpatient") != inpatient:
        use = "2305" if visit_type == "inpatient" else "2208"
        problems.append(FieldError("infno", f"settlement {request.setl_id!r} is {visit_type}: reverse it with {use}"))
    return problems


# ---------------------------------------------------------------------------------------------------------
# Out: the settlement record's national view in the province's codes

_SCOPE_MONEY: Final = (
    "medfee_sumamt",
    "fulamt_ownpay_amt",
    "overlmt_selfpay",
    "preselfpay_amt",
    "inscp_scp_amt",
    "act_pay_dedc",
)
_TOTAL_MONEY: Final = ("fund_pay_sumamt", "psn_part_amt", "hosp_part_amt", "acct_pay", "psn_cash_pay")
MONEY_FIELDS: Final = frozenset((*_SCOPE_MONEY, *NHSA_FUND_FIELDS, *_TOTAL_MONEY, "acct_mulaid_pay"))
"""setlinfo's amounts (16,2), negated in a reversal's answer."""

SETLINFO_ORDER: Final = (
    "setl_id",
    "mdtrt_id",
    "psn_no",
    "insutype",
    "med_type",
    "psn_idet_type",
    "medins_setl_id",
    "setl_time",
    "refd_setl_flag",
    *_SCOPE_MONEY,
    *NHSA_FUND_FIELDS,
    "pool_prop_selfpay",
    *_TOTAL_MONEY,
)
"""setlinfo's fields in the order they are answered (the platform's table); any others follow."""
SETLDETAIL_ORDER: Final = (
    "fund_pay_type",
    "fund_pay_type_name",
    "inscp_scp_amt",
    "crt_payb_lmt_amt",
    "fund_payamt",
    "setl_proc_info",
)


def _ordered(fields: Mapping[str, Any], order: Sequence[str]) -> dict[str, Any]:
    """The same fields in the answer's order (a stored record keeps them sorted by name)."""
    rank = {name: i for i, name in enumerate(order)}
    return dict(sorted(fields.items(), key=lambda item: rank.get(item[0], len(order))))


def settlement_output(
    record: Mapping[str, Any], dictionary: Dictionary, setl_id: str | None = None, mdtrt_id: str | None = None
) -> dict[str, Any]:
    """`output` of 2303/2304/2206/2207: the record's `nhsa.setlinfo` and `nhsa.setldetail` (the one national
    view, made by the engine and stored with the settlement), its codes written as the dictionary says."""
    national = record["nhsa"]
    setlinfo: dict[str, Any] = {}
    if setl_id is not None:
        setlinfo["setl_id"] = setl_id
    stored_mdtrt = national["setlinfo"].get("mdtrt_id")
    setlinfo["mdtrt_id"] = stored_mdtrt if stored_mdtrt is not None else mdtrt_id
    for name, value in national["setlinfo"].items():
        if name not in setlinfo:
            setlinfo[name] = value
    setlinfo["insutype"] = dictionary.insutype_of(record["insurance_scheme"])
    setlinfo["med_type"] = dictionary.med_type_of(record["visit_type"])
    # Doudi's addition: the assistance category (救助身份) held on the settlement date.
    setlinfo["psn_idet_type"] = dictionary.psn_idet_type_of(record["category"])
    details = []
    for detail in national["setldetail"]:
        code, name = dictionary.fund(detail["fund_pay_type"], detail["fund_pay_type_name"])
        details.append(_ordered({**detail, "fund_pay_type": code, "fund_pay_type_name": name}, SETLDETAIL_ORDER))
    return {"setlinfo": _ordered(setlinfo, SETLINFO_ORDER), "setldetail": details}


def reversal_output(settled: Mapping[str, Any], reversed_at: dt.datetime) -> dict[str, Any]:
    """`output` of 2305/2208: the settlement's view with every amount negated (the reverse row of the 3202
    detail file), `refd_setl_flag` "1" and the reversal's time."""
    setlinfo = {
        name: negated(value) if name in MONEY_FIELDS and isinstance(value, str) else value
        for name, value in settled["setlinfo"].items()
    }
    setlinfo["setl_time"] = national_time(reversed_at)
    setlinfo["refd_setl_flag"] = "1"
    setlinfo = _ordered(setlinfo, SETLINFO_ORDER)
    details = [
        {
            **detail,
            "inscp_scp_amt": negated(detail["inscp_scp_amt"]),
            "fund_payamt": negated(detail["fund_payamt"]),
        }
        for detail in settled["setldetail"]
    ]
    return {"setlinfo": setlinfo, "setldetail": details}


def negated(amount: str) -> str:
    return format_yuan(-fen_from_decimal(Decimal(amount)))


# ---------------------------------------------------------------------------------------------------------
# 5206: a person's year-to-date figures


@dataclass(frozen=True)
class CumulativeRequest:
    message: Message
    psn_no: str
    year: int | None  # None: the year of the service's clock


def cumulative_request(body: Any) -> CumulativeRequest:
    message = read_message(body, "5206")
    problems = list(message.problems)
    psn_no = _text(message.data, "psn_no", "the person's number (人员编号)", problems)
    year = None
    raw = message.data.get("cum_ym")
    if raw not in (None, ""):
        text = str(raw)
        if re.fullmatch(r"(19|20|21)\d{2}(0[1-9]|1[0-2])", text):
            year = int(text[:4])
        else:
            problems.append(FieldError(f"{DATA}.cum_ym", f"{raw!r} is not a year and month like 201412"))
    if problems:
        raise ClaimError(problems)
    return CumulativeRequest(message, psn_no, year)


def cumulative_output(
    rows: Sequence[Mapping[str, Any]], person_id: str, region: str, dictionary: Dictionary
) -> dict[str, Any]:
    """`output` of 5206: one `cuminfo` row per accumulator of the person and their household (the
    household's rows say so in `cum_obj`), `cum` being what the fund paid this year."""
    return {
        "cuminfo": [
            {
                "insuplc_admdvs": region,
                "cum_type_code": dictionary.cum_type(str(row["key"])),
                "year": row["year"],
                "cum": row["paid"],
                # Doudi's additions: whose figure it is, what entered the fund, and how many settlements.
                "cum_obj": "person" if row["entity"] == person_id else "household",
                "cum_obj_id": row["entity"],
                "cum_base": row["base"],
                "cum_cnt": row["claims"],
            }
            for row in rows
        ]
    }


# ---------------------------------------------------------------------------------------------------------
# 3201 and 3202: the month's totals and details


@dataclass(frozen=True)
class StatementRequest:
    """3201 (totals) or 3202 (details): the month, filters and the hospital's own figures."""

    message: Message
    month: str  # YYYY-MM
    schemes: tuple[str, ...] | None  # None: every scheme
    visit_types: tuple[str, ...] | None  # None: every visit type
    refd_setl_flag: str | None  # None: forward and reverse rows; "0" forward only; "1" reverse only
    totals: Mapping[str, int] = field(default_factory=dict)  # fen; fixmedins_setl_cnt a count
    setl_optins: str | None = None
    filename: str = ""
    file: bytes = b""


TOTAL_FIELDS: Final = ("medfee_sumamt", "fund_pay_sumamt", "acct_pay")


def statement_request(body: Any, infno: str, dictionary: Dictionary) -> StatementRequest:
    message = read_message(body, infno)
    problems = list(message.problems)
    data = message.data
    if message.fixmedins_code is None:
        problems.append(FieldError("fixmedins_code", "is required: the hospital whose month this is"))
    month = _month(data, problems)
    schemes = None
    if data.get("insutype") not in (None, ""):
        scheme = dictionary.scheme(str(data["insutype"]))
        if scheme is None:
            problems.append(FieldError(f"{DATA}.insutype", f"{data['insutype']!r} is not in the dictionary"))
        else:
            schemes = (scheme,)
    visits = None
    if data.get("clr_type") not in (None, ""):
        found = dictionary.clr_type.get(str(data["clr_type"]))
        if found is None:
            known = ", ".join(dictionary.clr_type)
            problems.append(FieldError(f"{DATA}.clr_type", f"{data['clr_type']!r} is not known (known: {known})"))
        else:
            visits = found
    flag = data.get("refd_setl_flag")
    if flag not in (None, "") and str(flag) not in ("0", "1"):
        problems.append(FieldError(f"{DATA}.refd_setl_flag", f"{flag!r} must be 0 (settlements) or 1 (reversals)"))
    totals: dict[str, int] = {}
    filename, file = "", b""
    if infno == "3201":
        for name in TOTAL_FIELDS:
            raw = data.get(name, "0" if name == "acct_pay" else None)
            try:
                totals[name] = _signed_fen(raw, name)
            except MoneyError as err:
                problems.append(FieldError(f"{DATA}.{name}", str(err)))
        count = data.get("fixmedins_setl_cnt")
        if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
            totals["fixmedins_setl_cnt"] = count
        elif isinstance(count, str) and count.isdigit():
            totals["fixmedins_setl_cnt"] = int(count)
        else:
            problems.append(
                FieldError(f"{DATA}.fixmedins_setl_cnt", f"{count!r}: the number of rows is required, a whole number")
            )
    else:
        filename, file = _uploaded(message.input.get("fsUploadIn"), problems)
    if problems:
        raise ClaimError(problems)
    return StatementRequest(
        message=message,
        month=month,
        schemes=schemes,
        visit_types=visits,
        refd_setl_flag=None if flag in (None, "") else str(flag),
        totals=totals,
        setl_optins=str(data["setl_optins"]) if data.get("setl_optins") not in (None, "") else None,
        filename=filename,
        file=file,
    )


def _month(data: Mapping[str, Any], problems: list[FieldError]) -> str:
    """Doudi's statements are by calendar month: stmt_begndate and stmt_enddate are its first and last day."""
    begin = _day(data.get("stmt_begndate"), f"{DATA}.stmt_begndate", problems)
    end = _day(data.get("stmt_enddate"), f"{DATA}.stmt_enddate", problems)
    if begin is None or end is None:
        return ""
    if begin.day != 1:
        problems.append(FieldError(f"{DATA}.stmt_begndate", f"{begin} is not the first day of a month"))
        return ""
    last = (begin.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    if end != last:
        problems.append(
            FieldError(f"{DATA}.stmt_enddate", f"{end}: statements cover one calendar month, so it must be {last}")
        )
        return ""
    return f"{begin:%Y-%m}"


def _day(raw: object, where: str, problems: list[FieldError]) -> dt.date | None:
    if isinstance(raw, str):
        for pattern in ("%Y-%m-%d", "%Y%m%d"):
            try:
                return dt.datetime.strptime(raw.strip(), pattern).date()
            except ValueError:
                continue
    problems.append(FieldError(where, f'{raw!r}: a date like "2014-12-01" is required'))
    return None


def _signed_fen(raw: object, what: str) -> int:
    """A total in yuan, which may be negative (a month of reversals), as fen."""
    if isinstance(raw, str) and raw.strip().startswith("-"):
        return -_signed_fen(raw.strip()[1:], what)
    if raw is None:
        raise MoneyError(f"{what} is required: the hospital's total in yuan to the fen")
    return fen_from_decimal(parse_yuan(raw, what))


def _uploaded(raw: object, problems: list[FieldError]) -> tuple[str, bytes]:
    """The detail file, carried as 9101's upload block: {"filename": …, "in": base64 of the bytes}."""
    where = "input.fsUploadIn"
    if not isinstance(raw, Mapping):
        problems.append(FieldError(where, 'is required: {"filename": …, "in": the detail file in base64}'))
        return "", b""
    name = raw.get("filename")
    if not isinstance(name, str) or not name.strip():
        problems.append(FieldError(f"{where}.filename", "is required: the file's name"))
        name = ""
    content = raw.get("in")
    if not isinstance(content, str) or not content:
        problems.append(FieldError(f"{where}.in", "is required: the file's bytes in base64"))
        return name, b""
    try:
        return name, base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as err:
        problems.append(FieldError(f"{where}.in", f"is not base64: {err}"))
        return name, b""
