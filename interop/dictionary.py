"""The field-code dictionary: the national platform's codes that provinces number differently (险种类型
`insutype`, 医疗类别 `med_type`, 人员身份类别 `psn_idet_type`, 基金支付类型 `fund_pay_type`, 清算类别
`clr_type`, 5206's 累计类别 `cum_type_code`), mapped onto Doudi's own vocabulary in both directions.

The common national values ship as `dictionaries/national.yaml`. A province's file (named by
DOUDI_NHSA_DICTIONARY) has the same sections; each entry it lists replaces the default's entry of the same
code and comes first, so where several codes mean one Doudi value the province's is the one written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from policies.library import read_yaml
from settlement.codes import Category, Scheme, VisitType
from settlement.errors import field_errors

DICTIONARY_ENV: Final = "DOUDI_NHSA_DICTIONARY"
DEFAULT_PATH: Final = Path(__file__).parent / "dictionaries" / "national.yaml"

Code = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z_.-]{1,30}$")]
_SECTIONS: Final = (
    "insutype",
    "med_type",
    "psn_idet_type",
    "fund_pay_type",
    "recode_fund_pay_type",
    "clr_type",
    "cum_type_code",
)


class DictionaryError(ValueError):
    """A dictionary file that cannot be used; the message names the file and every bad entry."""


class DictionaryFile(BaseModel):
    """One dictionary file as written. Every section is optional in a province's file."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Annotated[str, Field(min_length=1, max_length=200)]
    insutype: dict[Code, Scheme] = {}
    med_type: dict[Code, VisitType] = {}
    psn_idet_type: dict[Code, Category] = {}
    fund_pay_type: dict[Code, Annotated[str, Field(min_length=1, max_length=100)]] = {}
    recode_fund_pay_type: dict[Code, Code] = {}
    clr_type: dict[Code, Annotated[list[VisitType], Field(min_length=1)]] = {}
    cum_type_code: dict[Annotated[str, Field(min_length=1, max_length=80)], Code] = {}


@dataclass(frozen=True)
class Dictionary:
    """The codes in force: the default's entries with a province's over them."""

    name: str
    insutype: Mapping[str, Scheme]
    med_type: Mapping[str, VisitType]
    psn_idet_type: Mapping[str, Category]
    fund_pay_type: Mapping[str, str]
    recode_fund_pay_type: Mapping[str, str]
    clr_type: Mapping[str, tuple[VisitType, ...]]
    cum_type_code: Mapping[str, str]

    # Reading the platform's codes: None when the code is not in the dictionary.
    def scheme(self, insutype: str) -> Scheme | None:
        return self.insutype.get(insutype)

    def visit_type(self, med_type: str) -> VisitType | None:
        return self.med_type.get(med_type)

    def category(self, psn_idet_type: str) -> Category | None:
        return self.psn_idet_type.get(psn_idet_type)

    # Writing them: the first code listed for a Doudi value (None when the dictionary has none).
    def insutype_of(self, scheme: str) -> str | None:
        return _first(self.insutype, scheme)

    def med_type_of(self, visit_type: str) -> str | None:
        return _first(self.med_type, visit_type)

    def psn_idet_type_of(self, category: str) -> str | None:
        return _first(self.psn_idet_type, category)

    def fund(self, policy_code: str, policy_name: str) -> tuple[str, str]:
        """The (code, name) written for a fund a policy calls `policy_code`: recoded where the province
        says so, named from the dictionary where it knows the code, else by the policy."""
        code = self.recode_fund_pay_type.get(policy_code, policy_code)
        return code, self.fund_pay_type.get(code, policy_name)

    def cum_type(self, accumulator: str) -> str:
        return self.cum_type_code.get(accumulator, accumulator)


def _first(section: Mapping[str, str], value: str) -> str | None:
    return next((code for code, meaning in section.items() if meaning == value), None)


def parse_dictionary(text: str, name: str, over: Dictionary | None = None) -> Dictionary:
    """The dictionary in `text` (the file `name`), laid over `over` when given. Raises DictionaryError
    naming every bad entry."""
    try:
        data = read_yaml(text, name)
    except yaml.YAMLError as err:
        raise DictionaryError(f"{name}: not valid YAML: {err}") from None
    if isinstance(data, dict):
        # YAML reads an unquoted code such as 310 as a number: codes are text.
        data = {
            key: {str(code): value for code, value in section.items()} if isinstance(section, dict) else section
            for key, section in data.items()
        }
    try:
        file = DictionaryFile.model_validate(data)
    except ValidationError as err:
        lines = [f"{name}: {e.field}: {e.message}" for e in field_errors(err, whole="(document)")]
        raise DictionaryError("\n".join(lines)) from None
    merged: dict[str, Any] = {}
    for section in _SECTIONS:
        mine: dict[str, Any] = dict(getattr(file, section))
        below: Mapping[str, Any] = getattr(over, section) if over is not None else {}
        merged[section] = {**mine, **{k: v for k, v in below.items() if k not in mine}}
    merged["clr_type"] = {code: tuple(types) for code, types in merged["clr_type"].items()}
    found = Dictionary(name=file.name, **merged)
    missing = [
        f"{name}: {section}: no code for {value!r}"
        for section, values, write in (
            ("insutype", ("employee", "resident"), found.insutype_of),
            ("med_type", get_args(VisitType), found.med_type_of),
        )
        for value in values
        if write(value) is None
    ]
    if missing:
        raise DictionaryError("\n".join(missing))
    return found


def load_dictionary(path: str | Path | None = None) -> Dictionary:
    """The national default, with the province's file over it: `path`, else DOUDI_NHSA_DICTIONARY, else
    none."""
    default = parse_dictionary(DEFAULT_PATH.read_text(encoding="utf-8"), str(DEFAULT_PATH))
    chosen = path if path is not None else os.environ.get(DICTIONARY_ENV) or None
    if chosen is None:
        return default
    try:
        text = Path(chosen).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DictionaryError(f"{chosen}: cannot read the dictionary file: {err}") from None
    return parse_dictionary(text, str(chosen), over=default)
