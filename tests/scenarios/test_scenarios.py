"""Scenario tests written for policy officers: one YAML file per library policy, each a list of scenarios.

A scenario names a policy (`id@version`, or `id` alone to pick the version by discharge date), the claims
(written out, or loaded from a claim file with `claims_file`), optionally what the people had already used
this year (`start_accumulators`), and what every fund should pay on every claim, each figure with the
arithmetic behind it. Every expectation is computed by hand from the policy file and docs/settlement.md;
the engine must agree to the fen. A scenario the engine gets wrong keeps the hand-computed figures and is
marked `xfail: "<reason>"` (strict: it fails as soon as the engine is fixed, so the mark gets removed).

File layout (see any `*.yaml` beside this file):

    policy: jl-meihekou@2014          # the library policy this file covers; file name <id>-<version>.yaml
    defaults: {...}                   # optional: YAML anchors for claim fields (ignored by the runner)
    scenarios:
      - name: ...
        description: >- plain language
        policy: jl-meihekou@2014
        start_accumulators:           # optional
          - {key: jl_resident_basic, entity: P-1, year: 2014, base: "0", paid: "60000.00", claims: 1}
        claims_file: examples/x.json  # optional, relative to the project; and/or
        claims: [ {claim}, ... ]
        expect:
          CLAIM-ID:
            settled_under: jl-meihekou@2014     # optional
            policy_year: 2014                   # optional
            tiers:
              resident_basic: {paid: "100.00", reason: paid, arithmetic: "..."}
            grants: ["25000.00"]                # optional, what each listed grant paid, in order
            patient_burden: {amount: "0.00", arithmetic: "..."}
        xfail: "why the engine is wrong"        # optional

Every library policy must have its file here with at least MIN_SCENARIOS scenarios.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from doudi.services import open_library, quote_claims
from policies.library import Library
from settlement.accumulators import AccKey, AccValue
from settlement.claims import parse_claims
from settlement.explain import identity_problems
from settlement.money import format_yuan, parse_amount

HERE = Path(__file__).parent
PROJECT = HERE.parent.parent
MIN_SCENARIOS = 3

FILE_KEYS = {"policy", "defaults", "scenarios"}
SCENARIO_KEYS = {"name", "description", "policy", "start_accumulators", "claims_file", "claims", "expect", "xfail"}
CLAIM_EXPECT_KEYS = {"settled_under", "policy_year", "tiers", "grants", "fund_paid", "patient_burden"}
TIER_EXPECT_KEYS = {"paid", "reason", "arithmetic"}
AMOUNT_EXPECT_KEYS = {"amount", "arithmetic"}
ACC_KEYS = {"key", "entity", "year", "base", "paid", "claims"}


# ---------------------------------------------------------------------------------------------------------
# Reading the files


class _Loader(yaml.SafeLoader):
    """YAML with decimals kept as text (never a binary float), dates kept as text (the claim parser reads
    them), and duplicate keys refused instead of silently overwritten. Merge keys (`<<: *anchor`) work."""


def _as_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


def _mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    loader.flatten_mapping(node)
    return dict(loader.construct_pairs(node, deep=True))


_Loader.add_constructor("tag:yaml.org,2002:float", _as_text)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _as_text)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _read(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_Loader)


@dataclass(frozen=True)
class Scenario:
    file: str
    name: str
    data: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.file}::{self.name}"


class ScenarioFileError(Exception):
    pass


def _unknown(where: str, data: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise ScenarioFileError(f"{where}: unknown field(s) {extra}; allowed: {sorted(allowed)}")


def load_file(path: Path) -> tuple[str, list[Scenario]]:
    """The policy a file covers and its scenarios; raises ScenarioFileError on a malformed file."""
    try:
        data = _read(path)
    except yaml.YAMLError as err:
        raise ScenarioFileError(f"{path.name}: not valid YAML: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("scenarios"), list):
        raise ScenarioFileError(f"{path.name}: must be a mapping with `policy` and a list `scenarios`")
    _unknown(path.name, data, FILE_KEYS)
    policy = data.get("policy")
    if not isinstance(policy, str) or "@" not in policy:
        raise ScenarioFileError(f"{path.name}: `policy` must name the policy covered, as id@version")
    scenarios: list[Scenario] = []
    names: set[str] = set()
    for i, item in enumerate(data["scenarios"]):
        where = f"{path.name}: scenarios[{i}]"
        if not isinstance(item, dict):
            raise ScenarioFileError(f"{where}: must be a mapping")
        _unknown(where, item, SCENARIO_KEYS)
        for required in ("name", "description", "policy", "expect"):
            if not item.get(required):
                raise ScenarioFileError(f"{where}: `{required}` is required")
        if "claims" not in item and "claims_file" not in item:
            raise ScenarioFileError(f"{where}: needs `claims` or `claims_file`")
        name = str(item["name"])
        if name in names:
            raise ScenarioFileError(f"{where}: the name {name!r} is used twice in this file")
        names.add(name)
        scenarios.append(Scenario(path.name, name, item))
    return policy, scenarios


def scenario_files() -> list[Path]:
    return sorted(HERE.glob("*.yaml"))


def _collect() -> Iterator[Any]:
    for path in scenario_files():
        try:
            _, scenarios = load_file(path)
        except ScenarioFileError as err:
            yield pytest.param(None, str(err), id=f"{path.name}::<file>")
            continue
        for scenario in scenarios:
            marks = []
            if scenario.data.get("xfail"):
                marks.append(pytest.mark.xfail(strict=True, reason=str(scenario.data["xfail"])))
            yield pytest.param(scenario, None, id=scenario.id, marks=marks)


@cache
def library() -> Library:
    return open_library()


# ---------------------------------------------------------------------------------------------------------
# Running one scenario


def _claim_dicts(scenario: Scenario) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if "claims_file" in scenario.data:
        loaded = json.loads((PROJECT / scenario.data["claims_file"]).read_text(encoding="utf-8"), parse_float=str)
        if isinstance(loaded, dict) and "claims" in loaded:
            loaded = loaded["claims"]
        items.extend(loaded if isinstance(loaded, list) else [loaded])
    items.extend(scenario.data.get("claims") or [])
    return items


def _start(scenario: Scenario) -> dict[AccKey, AccValue] | None:
    rows = scenario.data.get("start_accumulators")
    if not rows:
        return None
    start: dict[AccKey, AccValue] = {}
    for i, row in enumerate(rows):
        _unknown(f"{scenario.id}: start_accumulators[{i}]", row, ACC_KEYS)
        key = AccKey(str(row["key"]), str(row["entity"]), int(row["year"]))
        start[key] = AccValue(
            parse_amount(str(row.get("base", "0")), "base"),
            parse_amount(str(row.get("paid", "0")), "paid"),
            int(row.get("claims", 0)),
        )
    return start


def _yuan(text: Any, what: str) -> str:
    """An expected amount (yuan text) in the engine's form, e.g. "100000" -> "100000.00"."""
    return format_yuan(parse_amount(str(text), what))


def _trace(tier: dict[str, Any]) -> str:
    parts = [f"reason {tier.get('reason')}"]
    for label in ("bucket", "base", "deductible", "annual_deductible", "ratio", "cap_per_claim", "annual_cap_left"):
        if tier.get(label) is not None:
            parts.append(f"{label} {tier[label]}")
    if tier.get("accumulator"):
        acc = tier["accumulator"]
        parts.append(
            f"acc {acc['key']}/{acc['entity']}/{acc['year']} base {acc['base_before']}→{acc['base_after']}"
            f" paid {acc['paid_before']}→{acc['paid_after']}"
        )
    return ", ".join(parts)


def check_claim(claim: dict[str, Any], record: dict[str, Any], expect: dict[str, Any], where: str) -> list[str]:
    """Every difference between a claim's expectations and its settlement record, as readable lines."""
    cid = record["claim_id"]
    head = f"claim {cid} ({claim.get('person_id')}, {claim.get('category')}, discharged {claim.get('discharged_on')})"
    problems: list[str] = []
    _unknown(f"{where}: expect[{cid}]", expect, CLAIM_EXPECT_KEYS)
    if "settled_under" in expect:
        got = f"{record['policy']['id']}@{record['policy']['version']}"
        if got != expect["settled_under"]:
            problems.append(f"{head}: settled under {got}, expected {expect['settled_under']}")
    if "policy_year" in expect and int(expect["policy_year"]) != record["policy_year"]:
        problems.append(f"{head}: policy year {record['policy_year']}, expected {expect['policy_year']}")
    tiers = {t["tier"]: t for t in record["tiers"]}
    for tier_id, want in (expect.get("tiers") or {}).items():
        if tier_id not in tiers:
            problems.append(f"{head}: no tier {tier_id!r} in the settlement (tiers: {sorted(tiers)})")
            continue
        _unknown(f"{where}: expect[{cid}].tiers[{tier_id}]", want, TIER_EXPECT_KEYS)
        if "arithmetic" not in want:
            problems.append(f"{head}: tier {tier_id}: the expectation has no `arithmetic`")
        got = tiers[tier_id]
        arithmetic = want.get("arithmetic", "")
        if "paid" in want and _yuan(want["paid"], f"{tier_id}.paid") != got["paid"]:
            problems.append(
                f"{head}: tier {tier_id}: paid {got['paid']}, expected {_yuan(want['paid'], tier_id)}\n"
                f"      expected because: {arithmetic}\n      engine: {_trace(got)}"
            )
        if "reason" in want and want["reason"] != got["reason"]:
            problems.append(
                f"{head}: tier {tier_id}: reason {got['reason']!r}, expected {want['reason']!r}\n"
                f"      expected because: {arithmetic}\n      engine: {_trace(got)}"
            )
    if "grants" in expect:
        want_grants = [_yuan(g, "grants") for g in expect["grants"]]
        got_grants = [g["paid"] for g in record["grants"]]
        if want_grants != got_grants:
            problems.append(f"{head}: grants paid {got_grants}, expected {want_grants}")
    for label in ("fund_paid", "patient_burden"):
        if label not in expect:
            continue
        want = expect[label]
        if not isinstance(want, dict):
            problems.append(f"{head}: {label} must be {{amount, arithmetic}}")
            continue
        _unknown(f"{where}: expect[{cid}].{label}", want, AMOUNT_EXPECT_KEYS)
        if "arithmetic" not in want:
            problems.append(f"{head}: {label}: the expectation has no `arithmetic`")
        if _yuan(want["amount"], label) != record[label]:
            problems.append(
                f"{head}: {label} {record[label]}, expected {_yuan(want['amount'], label)}\n"
                f"      expected because: {want.get('arithmetic', '')}"
            )
    return problems


def run_scenario(scenario: Scenario) -> list[str]:
    items = _claim_dicts(scenario)
    claims, errors = parse_claims(items)
    if errors:
        return [f"claim problems: {e}" for e in errors]
    records, _ = quote_claims(library(), str(scenario.data["policy"]), claims, start=_start(scenario))
    by_id = {r["claim_id"]: r for r in records}
    expect: dict[str, Any] = scenario.data["expect"]
    problems = [f"expectation for {cid!r}, which is not a claim of this scenario" for cid in expect if cid not in by_id]
    for item in items:
        cid = item["claim_id"]
        record = by_id[cid]
        for identity in identity_problems(record["nhsa"]["setlinfo"]):
            problems.append(f"claim {cid}: national identity broken: {identity}")
        paid = sum((Decimal(t["paid"]) for t in record["tiers"]), Decimal(0))
        if paid != Decimal(record["fund_paid"]) or Decimal(record["amounts"]["total"]) != paid + Decimal(
            record["patient_burden"]
        ):
            problems.append(f"claim {cid}: total != Σ tier payments + patient burden")
        if cid not in expect:
            problems.append(f"claim {cid}: no expectation written for it")
            continue
        problems.extend(check_claim(item, record, expect[cid] or {}, scenario.id))
    return problems


# ---------------------------------------------------------------------------------------------------------
# The tests


@pytest.mark.parametrize(("scenario", "file_error"), list(_collect()))
def test_scenario(scenario: Scenario | None, file_error: str | None) -> None:
    if file_error is not None:
        pytest.fail(file_error, pytrace=False)
    assert scenario is not None
    problems = run_scenario(scenario)
    if problems:
        description = " ".join(str(scenario.data.get("description", "")).split())
        pytest.fail(
            f"{scenario.id} (policy {scenario.data['policy']})\n  {description}\n- " + "\n- ".join(problems),
            pytrace=False,
        )


def test_every_library_policy_has_scenarios() -> None:
    """A policy added to the library needs its scenario file here, named <id>-<version>.yaml."""
    covered: dict[str, int] = {}
    problems: list[str] = []
    for path in scenario_files():
        try:
            policy, scenarios = load_file(path)
        except ScenarioFileError as err:
            problems.append(str(err))
            continue
        expected_name = policy.replace("@", "-") + ".yaml"
        if path.name != expected_name:
            problems.append(f"{path.name} covers {policy}: name it {expected_name}")
            continue
        covered[policy] = len(scenarios)
    for key in sorted(library().policies):
        if key not in covered:
            problems.append(f"policy {key} has no scenario file tests/scenarios/{key.replace('@', '-')}.yaml")
        elif covered[key] < MIN_SCENARIOS:
            problems.append(f"policy {key} has {covered[key]} scenario(s); at least {MIN_SCENARIOS} are needed")
    for policy in sorted(set(covered) - set(library().policies)):
        problems.append(f"a scenario file covers {policy}, which is not in the library")
    assert not problems, "\n".join(problems)
