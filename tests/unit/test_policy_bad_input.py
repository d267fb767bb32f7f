"""Broken policy and disease-list files: load_library reports each problem with file, path and reason,
every problem of a file in one load, and leaves a policy with any problem out of the library.

Every case starts from MINIMAL (a valid one-tier policy written here) and breaks one thing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from policies.library import Library, Problem, load_library

MINIMAL: dict[str, Any] = {
    "id": "mini",
    "version": "1",
    "title": "Minimal test policy",
    "region": "990001",
    "valid_from": "2014-01-01",
    "valid_until": "2014-12-31",
    "references": {"r1": {"document": "Test rules", "article": "art. 1"}},
    "accumulators": {"acc": {"per": "person"}},
    "tiers": [
        {
            "id": "basic",
            "name": "Basic",
            "stage": "basic_insurance",
            "fund_pay_type": "390100",
            "fund_name": "Basic fund",
            "accumulator": "acc",
            "deductible": {"basis": "per_claim", "default": "500", "ref": "r1"},
            "ratio": {"default": "0.6", "ref": "r1"},
            "caps": {"annual": {"default": "10000", "ref": "r1"}},
        }
    ],
}

DISEASE_LIST: dict[str, Any] = {
    "id": "mini-list",
    "title": "Minimal disease list",
    "reference": {"document": "Test rules, annex"},
    "entries": [{"name": "leukaemia", "codes": ["C91"]}],
}

MA_TIER: dict[str, Any] = {
    "id": "assistance",
    "name": "Assistance",
    "stage": "medical_assistance",
    "fund_pay_type": "610100",
    "fund_name": "Assistance fund",
    "ratio": {"default": "0.5", "ref": "r1"},
}


def write(directory: Path, name: str, content: dict[str, Any] | str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else yaml.safe_dump(content, allow_unicode=True, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def load(*paths: Path) -> tuple[Library, list[tuple[str, str, str]]]:
    library, problems = load_library(paths)
    return library, [(Path(p.file).name, p.path, p.reason) for p in problems]


def changed(edit: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    policy = copy.deepcopy(MINIMAL)
    edit(policy)
    return policy


def tier(policy: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = policy["tiers"][0]
    return result


def annual(policy: dict[str, Any], bands: list[dict[str, str]]) -> None:
    tier(policy).update(
        basis="annual",
        deductible={"basis": "annual", "default": "1000", "ref": "r1"},
        ratio={"bands": bands, "ref": "r1"},
    )


def test_the_minimal_policy_is_valid(tmp_path: Path) -> None:
    library, problems = load(write(tmp_path, "mini.yaml", MINIMAL))
    assert problems == []
    assert list(library.policies) == ["mini@1"]
    assert library.policies["mini@1"].tiers[0].ratio is not None
    assert library.policies["mini@1"].tiers[0].ratio.default == Decimal("0.6")


# (case id, edit of MINIMAL, path, exact reason)
BAD_POLICIES: list[tuple[str, Callable[[dict[str, Any]], object], str, str]] = [
    ("unknown key in a tier", lambda p: tier(p).update(colour="red"), "tiers[0].colour", "unknown field"),
    ("unknown key at the top", lambda p: p.update(colour="red"), "colour", "unknown field"),
    (
        "unknown key in a reference",
        lambda p: p["references"]["r1"].update(page="3"),
        "references.r1.page",
        "unknown field",
    ),
    (
        "ratio 1.2",
        lambda p: tier(p)["ratio"].update(default="1.2"),
        "tiers[0].ratio.default",
        "ratio 1.2 must be between 0 and 1",
    ),
    (
        "ratio with 5 decimals",
        lambda p: tier(p)["ratio"].update(default="0.12345"),
        "tiers[0].ratio.default",
        "ratio 0.12345 has more than four decimal places",
    ),
    (
        "negative deductible",
        lambda p: tier(p)["deductible"].update(default="-5"),
        "tiers[0].deductible.default",
        "amount '-5' must not be negative",
    ),
    (
        "bands out of order",
        lambda p: annual(
            p,
            [
                {"from": "0", "to": "20000", "ratio": "0.5"},
                {"from": "10000", "to": "5000", "ratio": "0.6"},
                {"from": "5000", "ratio": "0.7"},
            ],
        ),
        "tiers[0].ratio.bands",
        "bands out of order: band 1 starts at 10000.00 but band 0 ends at 20000.00; "
        "band 1 ends at 5000.00, not above its start 10000.00",
    ),
    (
        "bands with a gap",
        lambda p: annual(p, [{"from": "0", "to": "1000", "ratio": "0.5"}, {"from": "2000", "ratio": "0.6"}]),
        "tiers[0].ratio.bands",
        "bands out of order: band 1 starts at 2000.00 but band 0 ends at 1000.00",
    ),
    (
        "bands not starting at 0",
        lambda p: annual(p, [{"from": "100", "to": "1000", "ratio": "0.5"}, {"from": "1000", "ratio": "0.6"}]),
        "tiers[0].ratio.bands",
        "the first band must start at 0, not 100.00",
    ),
    (
        "last band closed",
        lambda p: annual(p, [{"from": "0", "to": "1000", "ratio": "0.5"}]),
        "tiers[0].ratio.bands",
        "the last band must be open-ended (no `to`)",
    ),
    (
        "disease list that does not exist",
        lambda p: tier(p).update(
            buckets=[{"id": "cat", "name": "Catastrophic", "disease_list": "nope"}, {"id": "gen", "name": "General"}]
        ),
        "tiers[0].buckets[0].disease_list",
        "disease list 'nope' does not exist",
    ),
    (
        "reference key not in references",
        lambda p: tier(p)["ratio"].update(ref="r2"),
        "tiers[0].ratio.ref",
        "reference 'r2' is not in this file's `references`",
    ),
    (
        "cap reference key not in references",
        lambda p: tier(p)["caps"]["annual"].update(ref="nowhere"),
        "tiers[0].caps.annual.ref",
        "reference 'nowhere' is not in this file's `references`",
    ),
    (
        "illustrative reference without a note",
        lambda p: p["references"].update(r2={"document": "Invented", "illustrative": True}),
        "references.r2",
        "an illustrative reference must say why in `note`",
    ),
    (
        "annual basis without accumulator",
        lambda p: (tier(p).update(basis="annual"), tier(p).pop("accumulator"), tier(p).pop("caps")),
        "tiers[0]",
        "`basis: annual` needs an accumulator",
    ),
    (
        "per-claim cap on an annual tier",
        lambda p: (
            tier(p).update(basis="annual"),
            tier(p)["caps"].update(per_claim={"default": "100", "ref": "r1"}),
        ),
        "tiers[0]",
        "`basis: annual` computes on year-to-date sums; a per-claim cap would break them, so it is not allowed",
    ),
    (
        "banded ratio on a per-claim tier",
        lambda p: tier(p).update(
            ratio={"bands": [{"from": "0", "to": "10", "ratio": "0.5"}, {"from": "10", "ratio": "0.6"}], "ref": "r1"}
        ),
        "tiers[0]",
        "banded ratios need `basis: annual`",
    ),
    (
        "stages out of order",
        lambda p: p["tiers"].insert(0, copy.deepcopy(MA_TIER)),
        "tiers[1].stage",
        "basic_insurance cannot follow a later stage; insurance pays first, then medical assistance, "
        "then temporary aid, then grants",
    ),
    (
        "accumulator used by two tiers",
        lambda p: p["tiers"].append(dict(copy.deepcopy(MA_TIER), accumulator="acc")),
        "accumulators",
        "accumulator 'acc' is used by tiers 'basic' and 'assistance'; give each fund its own",
    ),
    (
        "accumulator not declared",
        lambda p: tier(p).update(accumulator="elsewhere"),
        "tiers[0].accumulator",
        "accumulator 'elsewhere' is not declared",
    ),
    (
        "includes of a missing policy",
        lambda p: p.update(includes=["nothere@1"]),
        "includes[0]",
        "policy 'nothere@1' does not exist",
    ),
    (
        "valid_until before valid_from",
        lambda p: p.update(valid_until="2013-12-31"),
        "valid_until",
        "2013-12-31 is before valid_from 2014-01-01",
    ),
    (
        "no tiers and no includes",
        lambda p: p.update(tiers=[]),
        "tiers",
        "a policy needs at least one tier or an included policy",
    ),
]


@pytest.mark.parametrize(
    ("edit", "path", "reason"),
    [case[1:] for case in BAD_POLICIES],
    ids=[case[0] for case in BAD_POLICIES],
)
def test_bad_policy_is_reported_and_left_out(
    tmp_path: Path, edit: Callable[[dict[str, Any]], object], path: str, reason: str
) -> None:
    file = write(tmp_path, "broken.yaml", changed(edit))
    library, problems = load(file)
    assert problems == [("broken.yaml", path, reason)]
    assert "mini@1" not in library.policies


def test_problem_names_the_full_file_path(tmp_path: Path) -> None:
    file = write(tmp_path, "broken.yaml", changed(lambda p: tier(p)["ratio"].update(default="1.2")))
    _, problems = load_library([file])
    assert problems == [Problem(str(file), "tiers[0].ratio.default", "ratio 1.2 must be between 0 and 1")]
    assert str(problems[0]) == f"{file}: tiers[0].ratio.default: ratio 1.2 must be between 0 and 1"


def test_all_schema_problems_of_a_file_in_one_load(tmp_path: Path) -> None:
    def edit(p: dict[str, Any]) -> None:
        tier(p)["ratio"]["default"] = "1.2"
        tier(p)["deductible"]["default"] = "0.001"
        tier(p)["colour"] = "red"
        p["references"]["r2"] = {"document": "Invented", "illustrative": True}

    library, problems = load(write(tmp_path, "broken.yaml", changed(edit)))
    assert sorted(problems) == sorted(
        [
            ("broken.yaml", "references.r2", "an illustrative reference must say why in `note`"),
            (
                "broken.yaml",
                "tiers[0].deductible.default",
                "amount 0.001 has more than two decimal places; amounts are in yuan to the fen",
            ),
            ("broken.yaml", "tiers[0].ratio.default", "ratio 1.2 must be between 0 and 1"),
            ("broken.yaml", "tiers[0].colour", "unknown field"),
        ]
    )
    assert library.policies == {}


def test_all_cross_file_problems_of_a_file_in_one_load(tmp_path: Path) -> None:
    def edit(p: dict[str, Any]) -> None:
        tier(p)["ratio"]["ref"] = "r2"
        tier(p)["caps"]["annual"]["ref"] = "r3"
        tier(p)["accumulator"] = "elsewhere"
        p["includes"] = ["nothere@1"]
        p["tiers"].append(dict(copy.deepcopy(MA_TIER), buckets=[{"id": "c", "name": "C", "disease_list": "nope"}]))

    library, problems = load(write(tmp_path, "broken.yaml", changed(edit)))
    assert sorted(problems) == sorted(
        [
            ("broken.yaml", "tiers[0].ratio.ref", "reference 'r2' is not in this file's `references`"),
            ("broken.yaml", "tiers[0].caps.annual.ref", "reference 'r3' is not in this file's `references`"),
            ("broken.yaml", "tiers[0].accumulator", "accumulator 'elsewhere' is not declared"),
            ("broken.yaml", "tiers[1].buckets[0].disease_list", "disease list 'nope' does not exist"),
            ("broken.yaml", "includes[0]", "policy 'nothere@1' does not exist"),
        ]
    )
    assert library.policies == {}


def test_a_bad_policy_does_not_take_good_ones_with_it(tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", MINIMAL)
    bad_policy = changed(lambda p: (p.update(id="other", region="990002"), tier(p)["ratio"].update(default="1.2")))
    bad = write(tmp_path, "bad.yaml", bad_policy)
    library, problems = load(good, bad)
    assert problems == [("bad.yaml", "tiers[0].ratio.default", "ratio 1.2 must be between 0 and 1")]
    assert list(library.policies) == ["mini@1"]


def test_a_policy_including_a_bad_policy_is_left_out_too(tmp_path: Path) -> None:
    base = changed(lambda p: (p.update(id="base"), tier(p)["ratio"].update(ref="missing")))
    top = changed(lambda p: (p.update(id="top", region="990002", includes=["base@1"], tiers=[]), p.pop("accumulators")))
    library, problems = load(write(tmp_path, "base.yaml", base), write(tmp_path, "top.yaml", top))
    assert sorted(problems) == [
        ("base.yaml", "tiers[0].ratio.ref", "reference 'missing' is not in this file's `references`"),
        ("top.yaml", "includes", "includes a policy that has problems"),
    ]
    assert library.policies == {}


def test_the_same_id_and_version_twice(tmp_path: Path) -> None:
    library, problems = load(write(tmp_path, "a.yaml", MINIMAL), write(tmp_path, "b.yaml", MINIMAL))
    assert problems == [("b.yaml", "version", "policy mini@1 is defined twice")]
    assert library.sources["mini@1"].endswith("a.yaml")


# ---------------------------------------------------------------------------------------------------------
# Two versions of one policy in force on the same day


def _second_version(valid_from: str) -> dict[str, Any]:
    return changed(lambda p: (p.update(version="2", valid_from=valid_from), p.pop("valid_until")))


def test_overlapping_versions_are_reported(tmp_path: Path) -> None:
    first = write(tmp_path, "v1.yaml", MINIMAL)
    second = write(tmp_path, "v2.yaml", _second_version("2014-07-01"))
    _, problems = load(first, second)
    assert problems == [
        (
            "v2.yaml",
            "valid_from",
            "region 990001, tier 'basic': in force from 2014-07-01, while mini@1 is in force until 2014-12-31",
        )
    ]


def test_versions_sharing_one_day_overlap(tmp_path: Path) -> None:
    _, problems = load(write(tmp_path, "v1.yaml", MINIMAL), write(tmp_path, "v2.yaml", _second_version("2014-12-31")))
    assert [p[1] for p in problems] == ["valid_from"]


def test_consecutive_versions_do_not_overlap(tmp_path: Path) -> None:
    library, problems = load(
        write(tmp_path, "v1.yaml", MINIMAL), write(tmp_path, "v2.yaml", _second_version("2015-01-01"))
    )
    assert problems == []
    assert sorted(library.policies) == ["mini@1", "mini@2"]


def test_overlapping_version_is_left_out(tmp_path: Path) -> None:
    library, problems = load(
        write(tmp_path, "v1.yaml", MINIMAL), write(tmp_path, "v2.yaml", _second_version("2014-07-01"))
    )
    assert problems
    assert sorted(library.policies) == ["mini@1"]  # the later-starting version is refused, never used
    assert "mini@2" not in library.policies


# ---------------------------------------------------------------------------------------------------------
# YAML: duplicate keys are refused, decimals are kept exactly as written

MINIMAL_TEXT = """\
id: mini
version: "1"
title: Minimal test policy
region: "990001"
valid_from: 2014-01-01
valid_until: 2014-12-31
references:
  r1: {document: Test rules, article: art. 1}
accumulators:
  acc: {per: person}
tiers:
  - id: basic
    name: Basic
    stage: basic_insurance
    fund_pay_type: "390100"
    fund_name: Basic fund
    accumulator: acc
    deductible:
      basis: per_claim
      default: "500"
      ref: r1
    ratio:
      default: "0.6"
      ref: r1
    caps:
      annual: {default: "10000", ref: r1}
"""


def test_minimal_text_is_valid(tmp_path: Path) -> None:
    library, problems = load(write(tmp_path, "mini.yaml", MINIMAL_TEXT))
    assert problems == []
    assert list(library.policies) == ["mini@1"]


@pytest.mark.parametrize(
    ("old", "new", "key", "line"),
    [
        ("title: Minimal test policy\n", "title: Minimal test policy\ntitle: Again\n", "title", 4),
        ('      default: "0.6"\n', '      default: "0.6"\n      default: "0.7"\n', "default", 24),
        ("tiers:\n", "valid_from: 2015-01-01\ntiers:\n", "valid_from", 11),
    ],
    ids=["top level", "nested in a tier", "a date"],
)
def test_duplicate_yaml_keys_are_refused(tmp_path: Path, old: str, new: str, key: str, line: int) -> None:
    assert old in MINIMAL_TEXT
    library, problems = load(write(tmp_path, "dup.yaml", MINIMAL_TEXT.replace(old, new)))
    assert len(problems) == 1
    file, path, reason = problems[0]
    assert (file, path) == ("dup.yaml", "")
    assert reason.startswith(f"not valid YAML: duplicate key {key!r}")
    assert f"line {line}," in reason
    assert library.policies == {}


@pytest.mark.parametrize(
    ("ratio_literal", "deductible_literal", "ratio", "deductible"),
    [
        ("0.6", '"500"', Decimal("0.6"), Decimal("500")),
        ("0.655", "500.5", Decimal("0.655"), Decimal("500.50")),
        ("0.1", "0.1", Decimal("0.1"), Decimal("0.10")),
        ("1", "500", Decimal("1"), Decimal("500")),
        ("0.3333", "1234.56", Decimal("0.3333"), Decimal("1234.56")),
    ],
)
def test_yaml_floats_are_kept_exactly(
    tmp_path: Path, ratio_literal: str, deductible_literal: str, ratio: Decimal, deductible: Decimal
) -> None:
    text = MINIMAL_TEXT.replace('default: "0.6"', f"default: {ratio_literal}").replace(
        'default: "500"', f"default: {deductible_literal}"
    )
    library, problems = load(write(tmp_path, "floats.yaml", text))
    assert problems == []
    parsed = library.policies["mini@1"].tiers[0]
    assert parsed.ratio is not None and parsed.deductible is not None
    assert parsed.ratio.default == ratio
    assert parsed.deductible.default == deductible


@pytest.mark.parametrize(
    ("literal", "reason"),
    [
        ("0.12345", "ratio 0.12345 has more than four decimal places"),
        ("1.5", "ratio 1.5 must be between 0 and 1"),
        ("6.0e-1", "ratio '6.0e-1' uses exponent notation; write plain digits like 1000.00"),
        (".nan", "ratio '.nan' is not a finite number"),
        ("yes", "ratio must be a number, not true/false"),
    ],
)
def test_yaml_ratio_literals_rejected(tmp_path: Path, literal: str, reason: str) -> None:
    text = MINIMAL_TEXT.replace('default: "0.6"', f"default: {literal}")
    library, problems = load(write(tmp_path, "bad.yaml", text))
    assert problems == [("bad.yaml", "tiers[0].ratio.default", reason)]
    assert library.policies == {}


@pytest.mark.parametrize(
    ("literal", "acceptable"),
    [
        ("0600", Decimal("600")),  # 600 yuan as written, or a refusal; never octal 384
        ("0x258", None),  # only a refusal (YAML 1.1 reads hex 600)
        ("10:00", None),  # only a refusal (YAML 1.1 reads sexagesimal 600)
    ],
)
def test_yaml_integer_forms_are_not_reinterpreted(tmp_path: Path, literal: str, acceptable: Decimal | None) -> None:
    text = MINIMAL_TEXT.replace('default: "500"', f"default: {literal}")
    library, problems = load(write(tmp_path, "ints.yaml", text))
    if problems:  # refusing the literal is always fine
        assert [p[1] for p in problems] == ["tiers[0].deductible.default"]
        assert library.policies == {}
        return
    parsed = library.policies["mini@1"].tiers[0].deductible
    assert parsed is not None
    assert parsed.default == acceptable


@pytest.mark.parametrize(
    ("text", "reason_start"),
    [
        ("id: [\n", "not valid YAML: "),
        ("- a list\n", "expected a mapping at the top of the file"),
        ("", "expected a mapping at the top of the file"),
    ],
    ids=["broken YAML", "a list", "empty file"],
)
def test_unreadable_files(tmp_path: Path, text: str, reason_start: str) -> None:
    _, problems = load(write(tmp_path, "odd.yaml", text))
    assert len(problems) == 1
    assert problems[0][:2] == ("odd.yaml", "")
    assert problems[0][2].startswith(reason_start)


# ---------------------------------------------------------------------------------------------------------
# Disease-list files


@pytest.mark.parametrize(
    ("entry", "path", "reason"),
    [
        (
            {"name": "a", "codes": ["XYZ"]},
            "entries[0].codes[0]",
            "'XYZ' is not an ICD-10 code (expected a letter, two digits and an optional subdivision, "
            "e.g. C92.0 or C92.000x001)",
        ),
        (
            {"name": "a", "codes": ["C50", "c5"]},
            "entries[0].codes[1]",
            "'c5' is not an ICD-10 code (expected a letter, two digits and an optional subdivision, "
            "e.g. C92.0 or C92.000x001)",
        ),
        ({"name": "a", "ranges": [["Q26", "Q20"]]}, "entries[0]", "range [Q26, Q20] ends before it starts"),
        ({"name": "a"}, "entries[0]", "a: give at least one code or range"),
        ({"name": "a", "codes": ["C50"], "icd": "x"}, "entries[0].icd", "unknown field"),
    ],
    ids=["bad code", "second code bad", "reversed range", "no codes", "unknown key"],
)
def test_bad_disease_list(tmp_path: Path, entry: dict[str, Any], path: str, reason: str) -> None:
    data = dict(copy.deepcopy(DISEASE_LIST), entries=[entry])
    library, problems = load(write(tmp_path, "diseases/mini-list.yaml", data))
    assert problems == [("mini-list.yaml", path, reason)]
    assert library.disease_lists == {}


def test_policy_using_a_broken_disease_list_is_left_out(tmp_path: Path) -> None:
    broken_list = dict(copy.deepcopy(DISEASE_LIST), entries=[{"name": "a", "codes": ["XYZ"]}])
    policy = changed(
        lambda p: p["tiers"].append(
            dict(
                copy.deepcopy(MA_TIER),
                buckets=[{"id": "cat", "name": "C", "disease_list": "mini-list"}, {"id": "gen", "name": "G"}],
            )
        )
    )
    library, problems = load(write(tmp_path, "diseases/mini-list.yaml", broken_list), write(tmp_path, "p.yaml", policy))
    assert ("p.yaml", "tiers[1].buckets[0].disease_list", "disease list 'mini-list' does not exist") in problems
    assert library.policies == {}


def test_disease_list_defined_twice(tmp_path: Path) -> None:
    _, problems = load(
        write(tmp_path, "diseases/a.yaml", DISEASE_LIST), write(tmp_path, "diseases/b.yaml", DISEASE_LIST)
    )
    assert problems == [("b.yaml", "id", "disease list 'mini-list' is defined twice")]
