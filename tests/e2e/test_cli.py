"""The `doudi` command end to end: what a clerk or a policy officer types, and what they see."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from doudi.cli import app
from settlement.explain import identity_problems

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
runner = CliRunner()


def doudi(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize("case", ["meihekou-leukaemia", "gao-yue", "tian-guangdong"])
def test_quote_settles_each_seed_case_under_meihekou_2014(case: str) -> None:
    code, out = doudi("quote", "--policy", "jl-meihekou@2014", str(EXAMPLES / f"{case}.json"))
    assert code == 0, out
    record = json.loads(out)
    assert record["policy"] == {**record["policy"], "id": "jl-meihekou", "version": "2014"}
    setlinfo = record["nhsa"]["setlinfo"]
    assert identity_problems(setlinfo) == []
    paid = sum(Decimal(t["paid"]) for t in record["tiers"])
    assert Decimal(record["amounts"]["total"]) == paid + Decimal(record["patient_burden"])
    for tier in record["tiers"]:
        if Decimal(tier["paid"]) > 0:
            assert tier["references"], f"{tier['tier']} paid without a clause reference"
    assert all(len(d["setl_proc_info"]) <= 4000 for d in record["nhsa"]["setldetail"])


def test_the_slip_puts_chinese_first_and_says_what_the_family_pays() -> None:
    code, out = doudi("quote", "--policy", "jl-meihekou@2014", str(EXAMPLES / "gao-yue.json"), "--format", "slip")
    assert code == 0, out
    assert out.splitlines()[0].strip().startswith("医疗费用一站式结算单")
    assert "有第三方责任，不予支付 / a liable third party: not paid" in out
    assert "个人负担 THE FAMILY PAYS" in out


def test_a_year_of_claims_picks_each_version_by_discharge_date_and_carries_the_year() -> None:
    code, out = doudi("quote", "--policy", "jl-meihekou", str(EXAMPLES / "family-year.json"))
    assert code == 0, out
    data = json.loads(out)
    versions = [s["policy"]["version"] for s in data["settlements"]]
    assert versions == ["2013", "2014", "2014", "2014", "2014"]
    admissions = {
        (a["entity"], a["year"]): a["claims"] for a in data["accumulators"] if a["key"] == "inpatient_admissions"
    }
    assert admissions[("MHK-P-0001", 2014)] == 3


def test_quote_with_a_policy_file(tmp_path: Path) -> None:
    source = (ROOT / "policies/library/jl-meihekou-2014.yaml").read_text(encoding="utf-8")
    draft = tmp_path / "draft.yaml"
    # A draft of a new version: an own region code, so it does not overlap the library's open-ended 2014
    # version for Meihekou (two versions in force on one day for one region would be refused).
    draft_text = source.replace('version: "2014"', 'version: "2014-draft"').replace(
        'region: "220581"', 'region: "229999"'
    )
    draft.write_text(draft_text.replace("2014-01-01", "2015-01-01"), encoding="utf-8")
    claim = json.loads((EXAMPLES / "tian-guangdong.json").read_text(encoding="utf-8"))
    claim["discharged_on"] = "2015-07-15"
    claim["admitted_on"] = "2015-06-30"
    claim.pop("settled_at")
    claim_file = tmp_path / "claim.json"
    claim_file.write_text(json.dumps(claim))
    code, out = doudi("quote", "--policy", str(draft), str(claim_file))
    assert code == 0, out
    assert json.loads(out)["policy"]["version"] == "2014-draft"


def test_a_bad_claim_file_names_every_problem_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"claim_id": "x", "total": 1e3, "fully_self_paid": "-5"}')
    code, out = doudi("quote", "--policy", "jl-meihekou@2014", str(bad))
    assert code == 1
    assert "claims[0].total: amount '1e3' uses exponent notation" in out
    assert "claims[0].fully_self_paid: amount '-5' must not be negative" in out
    assert "claims[0].person_id: is required" in out


def test_unknown_policy_and_unknown_format_are_usage_problems() -> None:
    claim = str(EXAMPLES / "gao-yue.json")
    code, out = doudi("quote", "--policy", "nowhere@1", claim)
    assert code == 1 and "--policy: no valid policy 'nowhere@1'" in out
    code, out = doudi("quote", "--policy", "jl-meihekou@2014", claim, "--format", "pdf")
    assert code == 1 and "--format" in out


def test_a_claim_outside_the_policy_dates_is_refused(tmp_path: Path) -> None:
    claim = json.loads((EXAMPLES / "gao-yue.json").read_text(encoding="utf-8"))
    claim_file = tmp_path / "claim.json"
    claim_file.write_text(json.dumps(claim))
    code, out = doudi("quote", "--policy", "jl-meihekou@2013", str(claim_file))
    assert code == 1
    assert "claims[0].discharged_on: 2014-03-28 is outside jl-meihekou@2013" in out


def test_policy_list_show_and_diff() -> None:
    code, out = doudi("policy", "list")
    assert code == 0 and "jl-meihekou@2014" in out and "220581" in out
    code, out = doudi("policy", "show", "jl-meihekou@2014")
    assert code == 0 and "seed-meihekou-2014" in out and "meihekou-27-2014" in out
    code, out = doudi("policy", "diff", "jl-meihekou@2013", "jl-meihekou@2014")
    assert code == 0
    assert 'tiers.medical_assistance.buckets[catastrophic].caps.annual.default: "50000.00" → none' in out
    assert 'disease_list: "meihekou-5-pre2014" → "meihekou-27-2014"' in out
    assert "jl-meihekou@2013: in force 2012-01-01 – 2013-12-31" in out


def test_validate_accepts_a_library_file_and_lists_every_problem_of_a_bad_one(tmp_path: Path) -> None:
    code, out = doudi("policy", "validate", str(ROOT / "policies/library/jl-meihekou-2014.yaml"))
    assert code == 0 and "ok: 1 file(s) valid" in out
    source = (ROOT / "policies/library/cn-resident-2025.yaml").read_text(encoding="utf-8")
    broken = source.replace('version: "2025"', 'version: "2025-x"\nunknown_field: 1', 1)
    broken = broken.replace('"0.60"', '"1.2"', 1)
    bad = tmp_path / "bad.yaml"
    bad.write_text(broken, encoding="utf-8")
    code, out = doudi("policy", "validate", str(bad))
    assert code == 1
    assert "unknown_field: unknown field" in out
    assert "must be between 0 and 1" in out


def test_a_claim_outside_the_version_is_named_by_its_place_in_the_file(tmp_path: Path) -> None:
    family = json.loads((EXAMPLES / "family-year.json").read_text(encoding="utf-8"))
    claims_file = tmp_path / "claims.json"
    claims_file.write_text(json.dumps(family), encoding="utf-8")
    # Pinned to 2014, the family's first stay (December 2013) is outside the version's dates.
    code, out = doudi("quote", "--policy", "jl-meihekou@2014", str(claims_file))
    assert code == 1
    assert "claims[0].discharged_on: 2013-12-20 is outside jl-meihekou@2014" in out
