"""The field-code dictionary: the national default, a province's file laid over it, and bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from interop.dictionary import DEFAULT_PATH, DICTIONARY_ENV, DictionaryError, load_dictionary, parse_dictionary


def test_the_national_default_reads_and_writes_the_common_codes() -> None:
    found = load_dictionary(None)
    assert found.scheme("310") == "employee" and found.scheme("390") == "resident"
    assert found.insutype_of("employee") == "310" and found.insutype_of("resident") == "390"
    assert found.insutype_of("none") is None  # the uninsured have no insurance type
    assert found.scheme("320") is None  # civil servants' subsidy is not a scheme Doudi settles
    assert [found.med_type_of(v) for v in ("inpatient", "outpatient", "chronic_outpatient")] == ["21", "11", "14"]
    assert found.fund("390200", "whatever the policy says") == ("390200", "城乡居民大病医疗保险基金")
    assert found.fund("610100", "x") == ("610100", "医疗救助基金")
    # A code the dictionary does not know is written as the policy gives it.
    assert found.fund("ZZ0001", "本地基金") == ("ZZ0001", "本地基金")
    assert found.clr_type["21"] == ("inpatient",)
    assert found.cum_type("jl_resident_basic") == "jl_resident_basic"


def test_a_province_file_replaces_and_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    province = tmp_path / "jilin.yaml"
    province.write_text(
        """
name: 吉林省 (test)
insutype:
  391: resident          # unquoted: still the text "391"
med_type:
  "2101": inpatient
psn_idet_type:
  "15": dibao
  "11": tekun
fund_pay_type:
  "391100": 城乡居民大病保险（吉林）
recode_fund_pay_type:
  "390200": "391100"
  TA0001: "620100"
cum_type_code:
  jl_resident_basic: C0001
""",
        encoding="utf-8",
    )
    monkeypatch.setenv(DICTIONARY_ENV, str(province))
    found = load_dictionary()
    assert found.name == "吉林省 (test)"
    # The province's code is written; the national one is still read.
    assert found.insutype_of("resident") == "391"
    assert found.scheme("390") == "resident" and found.scheme("391") == "resident"
    assert found.med_type_of("inpatient") == "2101" and found.visit_type("21") == "inpatient"
    assert found.psn_idet_type_of("dibao") == "15" and found.category("11") == "tekun"
    assert found.fund("390200", "x") == ("391100", "城乡居民大病保险（吉林）")
    # Recoded to a code the dictionary has no name for: the policy's name stays.
    assert found.fund("TA0001", "临时救助") == ("620100", "临时救助")
    assert found.fund("390100", "x") == ("390100", "城乡居民基本医疗保险基金")  # untouched
    assert found.cum_type("jl_resident_basic") == "C0001"
    # An explicit path wins over the environment.
    assert load_dictionary(DEFAULT_PATH).insutype_of("resident") == "390"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("name: x\ninsutype:\n  '310': worker\n", "insutype.310"),
        ("name: x\nmed_type:\n  '21': stay\n", "med_type.21"),
        ("name: x\npsn_idet_type:\n  '1': poor\n", "psn_idet_type.1"),
        ("name: x\nclr_type:\n  '21': []\n", "clr_type.21"),
        ("name: x\nfund_pay_type:\n  'bad code!': x\n", "fund_pay_type"),
        ("name: x\nunknown_section: {}\n", "unknown_section"),
        ("insutype: {}\n", "name"),
        ("name: x\ninsutype:\n  '310': employee\n  '310': resident\n", "duplicate key"),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_a_bad_file_is_refused_naming_the_file_and_the_entry(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DictionaryError) as err:
        load_dictionary(path)
    assert str(path) in str(err.value) and named in str(err.value)


def test_a_dictionary_that_cannot_write_a_scheme_or_visit_type_is_refused() -> None:
    with pytest.raises(DictionaryError) as err:
        parse_dictionary("name: alone\ninsutype:\n  '390': resident\n", "alone.yaml")
    message = str(err.value)
    assert "insutype: no code for 'employee'" in message and "med_type: no code for 'inpatient'" in message


def test_a_missing_file_is_refused_by_its_path(tmp_path: Path) -> None:
    with pytest.raises(DictionaryError, match="cannot read"):
        load_dictionary(tmp_path / "nowhere.yaml")
