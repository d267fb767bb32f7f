"""The national platform's shapes mapped onto Doudi's claims and back (interop/nhsa.py, interop/statements.py),
without a database: requests written from the interface's field tables, expected claims written by hand."""

from __future__ import annotations

import copy
import datetime as dt
import io
import zipfile
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interop import nhsa, statements
from interop.dictionary import load_dictionary, parse_dictionary
from interop.envelope import INFCODE, STATUS, answer, read_message
from reconciliation.frames import Month
from reconciliation.hospital_file import read_hospital_file
from reconciliation.matching import match
from settlement.claims import parse_claim
from settlement.errors import ClaimError, FieldError
from settlement.explain import identity_problems

NATIONAL = load_dictionary(None)


def request(infno: str = "2304", **data: Any) -> dict[str, Any]:
    """A settlement request as a hospital system sends it (the leukaemia case of examples/)."""
    body: dict[str, Any] = {
        "infno": infno,
        "msgid": "H22010000001201406121020000001",
        "mdtrtarea_admvs": "220100",
        "insuplc_admdvs": "220581",
        "recer_sys_code": "MBS_LOCAL",
        "infver": "V1.0",
        "opter_type": "1",
        "opter": "001",
        "fixmedins_code": "JL-PROV-H001",
        "fixmedins_name": "省级三级医院",
        "inf_time": "2014-06-12 10:20:00",
        "input": {
            "data": {
                "psn_no": "MHK-P-0001",
                "mdtrt_cert_type": "02",
                "mdtrt_cert_no": "220581199001010011",
                "mdtrt_id": "ZY2014050600017",
                "insutype": "390",
                "medfee_sumamt": "236000.00",
                "fulamt_ownpay_amt": "21000.00",
                "overlmt_selfpay": "0.00",
                "preselfpay_amt": "9000.00",
                "inscp_scp_amt": "206000.00",
                "psn_setlway": "01",
                "mid_setl_flag": "0",
                "acct_used_flag": "0",
                "invono": "",
                "exp_content": {"assistance_approval": "MHK-MZ-2014-017", "province_field": "left alone"},
            },
            "mdtrtinfo": {"begntime": "2014-05-06 08:30:00", "endtime": "2014-06-12 09:00:00"},
            "diseinfo": [
                {"diag_code": "D61.9", "maindiag_flag": "0", "diag_srt_no": 3, "diag_name": "再生障碍性贫血"},
                {"diag_code": "C91.0", "maindiag_flag": "1", "diag_srt_no": 1, "diag_name": "急性淋巴细胞白血病"},
                {"diag_code": "J18.9", "maindiag_flag": "0", "diag_srt_no": 2, "diag_name": "肺炎"},
            ],
        },
    }
    body["input"]["data"].update(data)
    return body


def test_a_settlement_request_becomes_the_claim_a_desk_would_send() -> None:
    mapped = nhsa.settlement_request(request(), "2304", NATIONAL)
    assert mapped.problems == ()
    assert mapped.mdtrt_id == "ZY2014050600017"
    assert mapped.claim == {
        "claim_id": "H22010000001201406121020000001",
        "person_id": "MHK-P-0001",
        "hospital_id": "JL-PROV-H001",
        "insurance_scheme": "resident",
        "visit_type": "inpatient",
        "total": "236000.00",
        "fully_self_paid": "21000.00",
        "over_limit_self_paid": "0.00",
        "pre_self_paid": "9000.00",
        "admitted_on": "2014-05-06",
        "discharged_on": "2014-06-12",
        "diagnoses": ["C91.0", "J18.9", "D61.9"],  # the main one first, then by diag_srt_no
        "settled_at": "2014-06-12T10:20:00",
        "assistance_approval": "MHK-MZ-2014-017",  # Doudi's fact from exp_content; the province's is left
    }
    assert mapped.diagnosis_at == (1, 2, 0)


def test_an_outpatient_visit_is_one_day_and_its_medical_type_is_read() -> None:
    body = request("2207", med_type="14")
    body["input"].pop("mdtrtinfo")
    body["input"]["data"]["begntime"] = "2014-06-12 08:00:00"
    mapped = nhsa.settlement_request(body, "2207", NATIONAL)
    assert mapped.problems == ()
    assert mapped.claim["visit_type"] == "chronic_outpatient"
    assert (mapped.claim["admitted_on"], mapped.claim["discharged_on"]) == ("2014-06-12", "2014-06-12")
    assert nhsa.settlement_request(request("2206"), "2206", NATIONAL).claim["visit_type"] == "outpatient"


def fields(problems: Any) -> list[str]:
    return [p.field for p in problems]


@pytest.mark.parametrize(
    ("infno", "change", "expected"),
    [
        ("2304", lambda b: b.update(infno="2303"), ["infno"]),
        ("2304", lambda b: b.pop("msgid"), ["msgid"]),
        ("2304", lambda b: b.update(msgid="has spaces"), ["msgid"]),
        ("2304", lambda b: b.update(inf_time="yesterday"), ["inf_time"]),
        ("2304", lambda b: b.update(insuplc_admdvs="22058"), ["insuplc_admdvs"]),
        ("2304", lambda b: b["input"]["data"].pop("psn_no"), ["input.data.psn_no"]),
        ("2304", lambda b: b["input"]["data"].pop("mdtrt_id"), ["input.data.mdtrt_id"]),
        ("2304", lambda b: b["input"]["data"].update(insutype="320"), ["input.data.insutype"]),
        ("2304", lambda b: b["input"]["data"].update(med_type="11"), ["input.data.med_type"]),
        ("2207", lambda b: b["input"]["data"].update(med_type="21"), ["input.data.med_type"]),
        ("2304", lambda b: b["input"]["data"].update(med_type="99"), ["input.data.med_type"]),
        ("2304", lambda b: b["input"]["data"].update(psn_idet_type="poor"), ["input.data.psn_idet_type"]),
        ("2304", lambda b: b["input"]["data"].pop("fulamt_ownpay_amt"), ["input.data.fulamt_ownpay_amt"]),
        ("2304", lambda b: b["input"]["data"].update(inscp_scp_amt="206000.01"), ["input.data.inscp_scp_amt"]),
        ("2304", lambda b: b["input"]["data"].update(mid_setl_flag="1"), ["input.data.mid_setl_flag"]),
        ("2304", lambda b: b["input"]["data"].update(exp_content="{not json"), ["input.data.exp_content"]),
        ("2304", lambda b: b["input"]["data"].update(exp_content=[1]), ["input.data.exp_content"]),
        ("2304", lambda b: b["input"]["mdtrtinfo"].pop("endtime"), ["input.mdtrtinfo.endtime"]),
        ("2304", lambda b: b["input"].update(mdtrtinfo="x"), ["input.mdtrtinfo", "input.data.begntime"]),
        ("2304", lambda b: b["input"].pop("diseinfo"), ["input.diseinfo"]),
        ("2304", lambda b: b["input"]["diseinfo"][0].pop("diag_code"), ["input.diseinfo[0].diag_code"]),
        ("2304", lambda b: b["input"]["diseinfo"][0].update(maindiag_flag="1"), ["input.diseinfo[1].maindiag_flag"]),
        ("2304", lambda b: b["input"]["diseinfo"][2].update(diag_srt_no="two"), ["input.diseinfo[2].diag_srt_no"]),
        ("2304", lambda b: b["input"].pop("data"), ["input.data", *(f"input.data.{n}" for n in ("psn_no",))]),
    ],
)
def test_each_malformed_request_is_refused_on_its_national_field(infno: str, change: Any, expected: list[str]) -> None:
    body = request(infno, **({"med_type": "11"} if infno == "2207" else {}))
    change(body)
    found = fields(nhsa.settlement_request(body, infno, NATIONAL).problems)
    assert found[: len(expected)] == expected or set(expected) <= set(found), found


def test_every_problem_of_a_request_is_reported_at_once() -> None:
    body = request(insutype="999", medfee_sumamt=None, mid_setl_flag="1")
    body.pop("msgid")
    body["input"]["diseinfo"] = []
    found = fields(nhsa.settlement_request(body, "2304", NATIONAL).problems)
    assert found == [
        "msgid",
        "input.data.insutype",
        "input.data.medfee_sumamt",
        "input.data.mid_setl_flag",
        "input.diseinfo",
    ]


def test_a_body_that_is_not_an_envelope_is_refused_whole() -> None:
    with pytest.raises(ClaimError) as err:
        nhsa.settlement_request([1, 2], "2304", NATIONAL)
    assert fields(err.value.errors) == ["body"]


def test_the_claims_own_problems_are_moved_to_the_national_fields() -> None:
    body = request(medfee_sumamt="1e3", fulamt_ownpay_amt="-5.00", overlmt_selfpay="1.234")
    body["input"]["diseinfo"][2]["diag_code"] = "not-a-code"
    body["input"]["mdtrtinfo"]["endtime"] = "2014-05-01 00:00:00"
    mapped = nhsa.settlement_request(body, "2304", NATIONAL)
    assert mapped.problems == ()  # inscp_scp_amt is not checked against amounts that are themselves wrong
    claim = {**mapped.claim, "household_id": "MHK-H-0001", "category": "dibao", "hospital_level": 3}
    with pytest.raises(ClaimError) as err:
        parse_claim(claim)
    moved = mapped.national_errors(err.value).errors
    by_field = {e.field: e.message for e in moved}
    assert set(by_field) == {
        "input.data.medfee_sumamt",
        "input.data.fulamt_ownpay_amt",
        "input.data.overlmt_selfpay",
        "input.diseinfo[2].diag_code",  # the claim's second diagnosis (by diag_srt_no) is diseinfo[2]
        "input.mdtrtinfo.endtime",
    }
    assert "begntime" in by_field["input.mdtrtinfo.endtime"]  # Doudi's own names are not shown
    assert "admitted_on" not in by_field["input.mdtrtinfo.endtime"]


def test_national_errors_translate_the_registers_fields() -> None:
    mapped = nhsa.settlement_request(request(psn_idet_type="tekun"), "2304", NATIONAL)
    register = ClaimError(
        [
            FieldError("category", "'tekun' contradicts the register: person 'MHK-P-0001' is 'dibao'"),
            FieldError("hospital_id", "a desk of 'X' cannot settle stays at 'JL-PROV-H001'"),
            FieldError("insurance_scheme", "'resident' contradicts the register"),
            FieldError("total", "fully_self_paid + over_limit_self_paid + pre_self_paid (3) exceeds total (2)"),
            FieldError("grants[0].amount", "is required"),
        ]
    )
    moved = mapped.national_errors(register).errors
    assert [e.field for e in moved] == [
        "input.data.psn_idet_type",
        "fixmedins_code",
        "input.data.insutype",
        "input.data.medfee_sumamt",
        "input.data.exp_content.grants[0].amount",
    ]
    assert moved[3].message == "fulamt_ownpay_amt + overlmt_selfpay + preselfpay_amt (3) exceeds medfee_sumamt (2)"


def test_problems_found_later_are_not_said_twice() -> None:
    body = request()
    body["input"]["data"].pop("medfee_sumamt")
    mapped = nhsa.settlement_request(body, "2304", NATIONAL)
    later = [FieldError("input.data.medfee_sumamt", "is required"), FieldError("input.data.psn_no", "no person")]
    assert [(p.field, p.message) for p in mapped.all_problems(later)] == [
        ("input.data.medfee_sumamt", "is required: an amount in yuan to the fen"),
        ("input.data.psn_no", "no person"),
    ]


fen_values = st.integers(0, 99_999_999_99)


def yuan_text(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


@settings(max_examples=200, deadline=None)
@given(fen_values, fen_values, fen_values, fen_values, st.integers(-3, 3))
def test_amounts_are_carried_exactly_and_the_scope_identity_is_checked(
    total: int, fully: int, over: int, pre: int, off: int
) -> None:
    scope = total - fully - over - pre + off
    body = request(
        medfee_sumamt=yuan_text(total),
        fulamt_ownpay_amt=yuan_text(fully),
        overlmt_selfpay=yuan_text(over),
        preselfpay_amt=yuan_text(pre),
        inscp_scp_amt=("-" if scope < 0 else "") + yuan_text(abs(scope)),
    )
    mapped = nhsa.settlement_request(body, "2304", NATIONAL)
    assert [mapped.claim[k] for k in ("total", "fully_self_paid", "over_limit_self_paid", "pre_self_paid")] == [
        yuan_text(total),
        yuan_text(fully),
        yuan_text(over),
        yuan_text(pre),
    ]
    named = fields(mapped.problems)
    if off == 0 and scope >= 0:
        assert named == []
    else:
        assert "input.data.inscp_scp_amt" in named


# ------------------------------------------------------------------------------------------------- out


def record() -> dict[str, Any]:
    """A settlement record's national view as the engine writes it (figures of the leukaemia case)."""
    return {
        "insurance_scheme": "resident",
        "visit_type": "inpatient",
        "category": "dibao",
        "nhsa": {
            "setlinfo": {  # stored records keep their keys sorted by name
                "acct_pay": "0.00",
                "act_pay_dedc": "800.00",
                "cvlserv_pay": "0.00",
                "fulamt_ownpay_amt": "21000.00",
                "fund_pay_sumamt": "236000.00",
                "hifes_pay": "0.00",
                "hifmi_pay": "54200.00",
                "hifob_pay": "0.00",
                "hifp_pay": "100000.00",
                "hosp_part_amt": "0.00",
                "inscp_scp_amt": "206000.00",
                "insutype": "390",
                "maf_pay": "51800.00",
                "mdtrt_id": "ZY2014050600017",
                "med_type": "21",
                "medfee_sumamt": "236000.00",
                "medins_setl_id": "H22010000001201406121020000001",
                "oth_pay": "30000.00",
                "overlmt_selfpay": "0.00",
                "pool_prop_selfpay": "0.5500",
                "preselfpay_amt": "9000.00",
                "psn_cash_pay": "0.00",
                "psn_no": "MHK-P-0001",
                "psn_part_amt": "0.00",
                "setl_id": "s1",
                "setl_time": "2014-06-12 10:20:00",
            },
            "setldetail": [
                {
                    "crt_payb_lmt_amt": "100000.00",
                    "fund_pay_type": "390100",
                    "fund_pay_type_name": "城乡居民基本医疗保险基金",
                    "fund_payamt": "100000.00",
                    "inscp_scp_amt": "206000.00",
                    "setl_proc_info": "…",
                },
                {
                    "crt_payb_lmt_amt": "106000.00",
                    "fund_pay_type": "390200",
                    "fund_pay_type_name": "城乡居民大病医疗保险基金",
                    "fund_payamt": "54200.00",
                    "inscp_scp_amt": "106000.00",
                    "setl_proc_info": "…",
                },
                {
                    "crt_payb_lmt_amt": "5000.00",
                    "fund_pay_type": "TA0001",
                    "fund_pay_type_name": "临时救助资金（民政，地方代码）",
                    "fund_payamt": "5000.00",
                    "inscp_scp_amt": "30000.00",
                    "setl_proc_info": "…",
                },
            ],
        },
    }


PROVINCE = parse_dictionary(
    """
name: test province
insutype: {"391": resident}
med_type: {"2101": inpatient}
psn_idet_type: {"15": dibao}
fund_pay_type: {"391100": 大病保险（省）}
recode_fund_pay_type: {"390200": "391100", "TA0001": "620100"}
""",
    "province.yaml",
    over=NATIONAL,
)


def test_the_answer_is_the_records_national_view_in_the_provinces_codes() -> None:
    output = nhsa.settlement_output(record(), PROVINCE, setl_id="s1")
    info = output["setlinfo"]
    assert list(info)[:9] == [
        "setl_id",
        "mdtrt_id",
        "psn_no",
        "insutype",
        "med_type",
        "psn_idet_type",
        "medins_setl_id",
        "setl_time",
        "medfee_sumamt",
    ]
    assert (info["insutype"], info["med_type"], info["psn_idet_type"]) == ("391", "2101", "15")
    assert identity_problems(info) == []
    assert [(d["fund_pay_type"], d["fund_pay_type_name"]) for d in output["setldetail"]] == [
        ("390100", "城乡居民基本医疗保险基金"),
        ("391100", "大病保险（省）"),
        ("620100", "临时救助资金（民政，地方代码）"),
    ]
    assert list(output["setldetail"][0]) == [
        "fund_pay_type",
        "fund_pay_type_name",
        "inscp_scp_amt",
        "crt_payb_lmt_amt",
        "fund_payamt",
        "setl_proc_info",
    ]
    # The national default: the codes as the engine wrote them; the category is Doudi's own placeholder.
    national = nhsa.settlement_output(record(), NATIONAL)["setlinfo"]
    assert (national["insutype"], national["med_type"], national["psn_idet_type"]) == ("390", "21", "dibao")


def test_a_quote_carries_the_requests_visit_id() -> None:
    unrecorded = copy.deepcopy(record())
    del unrecorded["nhsa"]["setlinfo"]["mdtrt_id"], unrecorded["nhsa"]["setlinfo"]["setl_id"]
    info = nhsa.settlement_output(unrecorded, NATIONAL, mdtrt_id="V9")["setlinfo"]
    assert info["mdtrt_id"] == "V9" and "setl_id" not in info


def test_a_reversal_answers_the_settlement_negated_and_its_identities_still_hold() -> None:
    settled = nhsa.settlement_output(record(), NATIONAL, setl_id="s1")
    reversed_ = nhsa.reversal_output(settled, dt.datetime(2014, 12, 1, 9, 30))
    info = reversed_["setlinfo"]
    assert info["refd_setl_flag"] == "1" and info["setl_time"] == "2014-12-01 09:30:00"
    assert (info["medfee_sumamt"], info["fund_pay_sumamt"], info["hifmi_pay"]) == (
        "-236000.00",
        "-236000.00",
        "-54200.00",
    )
    assert (info["overlmt_selfpay"], info["psn_part_amt"], info["pool_prop_selfpay"]) == ("0.00", "0.00", "0.5500")
    assert identity_problems(info) == []
    assert [d["fund_payamt"] for d in reversed_["setldetail"]] == ["-100000.00", "-54200.00", "-5000.00"]
    assert [d["crt_payb_lmt_amt"] for d in reversed_["setldetail"]] == ["100000.00", "106000.00", "5000.00"]


def test_reversal_requests_and_what_they_must_match() -> None:
    body = {"infno": "2305", "msgid": "R1", "input": {"data": {"psn_no": "P", "mdtrt_id": "V", "setl_id": "S"}}}
    parsed = nhsa.reversal_request(body, "2305")
    assert (parsed.setl_id, parsed.reason) == ("S", "2305 msgid R1")
    body["input"]["data"]["exp_content"] = {"reason": "wrong patient"}
    assert nhsa.reversal_request(body, "2305").reason == "2305 msgid R1: wrong patient"
    assert nhsa.reversal_mismatches(parsed, "P", "V", "inpatient") == []
    assert fields(nhsa.reversal_mismatches(parsed, "Q", "W", "outpatient")) == [
        "input.data.psn_no",
        "input.data.mdtrt_id",
        "infno",
    ]
    with pytest.raises(ClaimError) as err:
        nhsa.reversal_request({"infno": "2208", "msgid": "R2", "input": {"data": {}}}, "2208")
    assert fields(err.value.errors) == ["input.data.setl_id", "input.data.mdtrt_id", "input.data.psn_no"]


def test_year_to_date_rows_in_the_5206_shape() -> None:
    body = {"infno": "5206", "msgid": "Q1", "input": {"data": {"psn_no": "P1", "cum_ym": "201406"}}}
    assert nhsa.cumulative_request(body).year == 2014
    body["input"]["data"]["cum_ym"] = "2014-06"
    with pytest.raises(ClaimError) as err:
        nhsa.cumulative_request(body)
    assert fields(err.value.errors) == ["input.data.cum_ym"]
    rows = [
        {"key": "basic", "entity": "P1", "year": 2014, "base": "10.00", "paid": "5.00", "claims": 1},
        {"key": "aid", "entity": "H1", "year": 2014, "base": "3.00", "paid": "3.00", "claims": 1},
    ]
    dictionary = parse_dictionary("name: t\ncum_type_code: {basic: C01}\n", "t.yaml", over=NATIONAL)
    out = nhsa.cumulative_output(rows, "P1", "220581", dictionary)["cuminfo"]
    assert [(r["cum_type_code"], r["cum"], r["cum_obj"], r["cum_obj_id"]) for r in out] == [
        ("C01", "5.00", "person", "P1"),
        ("aid", "3.00", "household", "H1"),
    ]


def test_envelopes_answer_with_the_kind_of_refusal() -> None:
    received = dt.datetime(2014, 12, 1, 9, 0, 0, 123000)
    done = answer("ok", {"x": 1}, received, received, "220100")
    assert (done["infcode"], done["err_msg"], done["output"], done["refmsg_time"]) == (
        0,
        None,
        {"x": 1},
        "2014-12-01 09:00:00.123",
    )
    assert len(done["inf_refmsgid"]) == 30 and done["inf_refmsgid"].startswith("22010020141201090000")
    refused = answer("invalid", None, received, received, errors=[FieldError("a", "b"), FieldError("c", "d")])
    assert (refused["infcode"], refused["err_msg"]) == (-1, "a: b; c: d")
    assert refused["errors"] == [{"field": "a", "message": "b"}, {"field": "c", "message": "d"}]
    assert {kind: (INFCODE[kind], STATUS[kind]) for kind in INFCODE} == {
        "ok": (0, 200),
        "invalid": (-1, 422),
        "conflict": (-2, 409),
        "not_found": (-3, 404),
        "unavailable": (-4, 503),
    }
    assert read_message({"infno": 2304, "msgid": "m", "input": {"data": {}}}, "2304").problems == ()


# ---------------------------------------------------------------------------------------- 3201 and 3202


def statement_body(infno: str, **data: Any) -> dict[str, Any]:
    return {
        "infno": infno,
        "msgid": "S1",
        "fixmedins_code": "H1",
        "input": {"data": {"stmt_begndate": "2014-12-01", "stmt_enddate": "2014-12-31", **data}},
    }


def test_statement_requests_cover_one_calendar_month() -> None:
    parsed = nhsa.statement_request(
        statement_body("3201", medfee_sumamt="-10.50", fund_pay_sumamt="0", fixmedins_setl_cnt="2", clr_type="21"),
        "3201",
        NATIONAL,
    )
    assert (parsed.month, parsed.visit_types, parsed.schemes) == ("2014-12", ("inpatient",), None)
    assert parsed.totals == {"medfee_sumamt": -1050, "fund_pay_sumamt": 0, "acct_pay": 0, "fixmedins_setl_cnt": 2}
    for dates, named in [
        (("2014-12-02", "2014-12-31"), "input.data.stmt_begndate"),
        (("2014-12-01", "2014-12-30"), "input.data.stmt_enddate"),
        (("2014-02-01", "2014-02-29"), "input.data.stmt_enddate"),
        (("20141201", "2015-01-31"), "input.data.stmt_enddate"),
    ]:
        body = statement_body("3201", medfee_sumamt="0", fund_pay_sumamt="0", fixmedins_setl_cnt=0)
        body["input"]["data"].update(stmt_begndate=dates[0], stmt_enddate=dates[1])
        with pytest.raises(ClaimError) as err:
            nhsa.statement_request(body, "3201", NATIONAL)
        assert fields(err.value.errors) == [named], dates
    assert (
        nhsa.statement_request(
            {**statement_body("3201", medfee_sumamt="0", fund_pay_sumamt="0", fixmedins_setl_cnt=0)}, "3201", NATIONAL
        ).month
        == "2014-12"
    )
    body = statement_body("3201", medfee_sumamt="1e3", clr_type="99", refd_setl_flag="2")
    body.pop("fixmedins_code")
    with pytest.raises(ClaimError) as err:
        nhsa.statement_request(body, "3201", NATIONAL)
    assert fields(err.value.errors) == [
        "fixmedins_code",
        "input.data.clr_type",
        "input.data.refd_setl_flag",
        "input.data.medfee_sumamt",
        "input.data.fund_pay_sumamt",
        "input.data.fixmedins_setl_cnt",
    ]


def detail(rows: list[tuple[str, str, int, int]]) -> pd.DataFrame:
    """Rows of the national detail file as reconciliation.national.detail_rows gives them (money in fen)."""
    return pd.DataFrame(
        [
            {
                "setl_id": s,
                "mdtrt_id": f"key-{s}",
                "psn_no": "P1",
                "medfee_sumamt": total,
                "fund_pay_sumamt": fund,
                "acct_pay": 0,
                "refd_setl_flag": flag,
                "exp_content": "hospital=H1",
            }
            for s, flag, total, fund in rows
        ]
    )


def test_3201_compares_totals_of_the_rows_asked_about() -> None:
    rows = detail([("a", "0", 100_00, 80_00), ("b", "0", 50_00, 10_00), ("b", "1", -50_00, -10_00)])
    kinds = {"a": ("resident", "inpatient"), "b": ("employee", "outpatient")}
    asked = nhsa.statement_request(
        statement_body("3201", medfee_sumamt="100.00", fund_pay_sumamt="80.00", fixmedins_setl_cnt=3),
        "3201",
        NATIONAL,
    )
    ours = statements.totals_of(statements.selected_rows(rows, kinds, asked))
    assert ours == {"medfee_sumamt": 100_00, "fund_pay_sumamt": 80_00, "acct_pay": 0, "fixmedins_setl_cnt": 3}
    out = statements.totals_output(asked, ours)
    assert out["stmtinfo"]["stmt_rslt"] == "0"
    # Only inpatient rows, only forward rows, only employees: each a different selection.
    for data, expected in [
        ({"clr_type": "21"}, (100_00, 1)),
        ({"refd_setl_flag": "0"}, (150_00, 2)),
        ({"refd_setl_flag": "1"}, (-50_00, 1)),
        ({"insutype": "310"}, (0, 2)),
    ]:
        body = statement_body("3201", medfee_sumamt="0", fund_pay_sumamt="0", fixmedins_setl_cnt=0, **data)
        chosen = statements.totals_of(
            statements.selected_rows(rows, kinds, nhsa.statement_request(body, "3201", NATIONAL))
        )
        assert (chosen["medfee_sumamt"], chosen["fixmedins_setl_cnt"]) == expected, data
    wrong = nhsa.statement_request(
        statement_body("3201", medfee_sumamt="100.01", fund_pay_sumamt="80.00", fixmedins_setl_cnt=2),
        "3201",
        NATIONAL,
    )
    verdict = statements.totals_output(wrong, ours)
    assert verdict["stmtinfo"]["stmt_rslt"] == "1"
    assert "medfee_sumamt: Doudi 100.00, hospital 100.01, difference 0.01" in verdict["stmtinfo"]["stmt_rslt_dscr"]
    assert "fixmedins_setl_cnt: Doudi 3, hospital 2" in verdict["stmtinfo"]["stmt_rslt_dscr"]
    assert verdict["stmt_totals"]["hospital"]["medfee_sumamt"] == "100.01"


def national_file(lines: list[str]) -> bytes:
    text = "setl_id\tmdtrt_id\tpsn_no\tmedfee_sumamt\tfund_pay_sumamt\tacct_pay\trefd_setl_flag\texp_content\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("detail.txt", text + "".join(line + "\n" for line in lines))
    return buffer.getvalue()


def test_3202_result_rows_say_which_rows_agree() -> None:
    ours = detail([("a", "0", 100_00, 80_00), ("b", "0", 50_00, 10_00), ("b", "1", -50_00, -10_00)])
    theirs = read_hospital_file(
        national_file(
            [
                "a\tZY-a\tP1\t100.00\t80.00\t0.00\t0\tnull",
                "b\tZY-b\tP1\t50.00\t10.01\t0.00\t0\tnull",
                "c\tZY-c\tP2\t7.00\t7.00\t0.00\t0\tnull",
                "d\tZY-d\tP2\tlots\t7.00\t0.00\t0\tnull",
            ]
        ),
        "their.zip",
    )
    matching = match(ours, theirs, Month(2014, 12))
    rows = statements.result_rows(ours, matching)
    summary = [(r["setl_id"], r["refd_setl_flag"], r["stmt_rslt"], r["mdtrt_id"], r["msgid"]) for r in rows]
    assert summary == [
        ("a", "0", "0", "ZY-a", "key-a"),  # agrees; the hospital's own visit id is shown
        ("b", "0", "1", "ZY-b", "key-b"),  # fund_pay_sumamt differs
        ("b", "1", "1", "key-b", "key-b"),  # the hospital lacks the reverse row
        ("c", "0", "1", "ZY-c", None),  # only the hospital has it: its amounts
        ("d", None, "1", None, None),  # a row that could not be read
    ]
    assert rows[0]["memo"] is None and "金额不符" in rows[1]["memo"]
    assert (rows[3]["medfee_sumamt"], rows[3]["fund_pay_sumamt"]) == (700, 700)
    assert "medfee_sumamt" in rows[4]["memo"]
    text = statements.result_text(rows).decode("utf-8").splitlines()
    assert text[0].split("\t") == list(statements.RESULT_COLUMNS)
    assert text[1].split("\t") == ["P1", "ZY-a", "a", "key-a", "0", "0", "null", "100.00", "80.00", "0.00"]
    assert text[3].split("\t")[7:] == ["-50.00", "-10.00", "0.00"]
    zipped = statements.result_file(rows, Month(2014, 12), "r.txt")
    assert zipped == statements.result_file(rows, Month(2014, 12), "r.txt")  # byte for byte the same
    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        assert archive.read("r.txt") == statements.result_text(rows)
    out = statements.details_output(matching, rows, "r.zip", "QUJD")
    assert out["stmtinfo"]["stmt_rslt"] == "1" and out["fileinfo"]["rows"] == 5


def test_3202_carries_the_file_as_9101s_upload_block() -> None:
    body = statement_body("3202")
    body["input"]["fsUploadIn"] = {"filename": "f.zip", "in": "UEsDBA=="}
    parsed = nhsa.statement_request(body, "3202", NATIONAL)
    assert (parsed.filename, parsed.file) == ("f.zip", b"PK\x03\x04")
    body["input"]["fsUploadIn"] = {"filename": "", "in": "not base64!"}
    with pytest.raises(ClaimError) as err:
        nhsa.statement_request(body, "3202", NATIONAL)
    assert fields(err.value.errors) == ["input.fsUploadIn.filename", "input.fsUploadIn.in"]
    body["input"].pop("fsUploadIn")
    with pytest.raises(ClaimError) as err:
        nhsa.statement_request(body, "3202", NATIONAL)
    assert fields(err.value.errors) == ["input.fsUploadIn"]


def test_negated_amounts_never_give_a_negative_zero() -> None:
    assert [nhsa.negated(a) for a in ("0.00", "12.30", "-5.01")] == ["0.00", "-12.30", "5.01"]
    assert Decimal(nhsa.negated("99999999.99")) == Decimal("-99999999.99")
