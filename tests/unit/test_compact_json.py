"""The stored and hashed JSON of claims and records (`ledger.repository.compact_json`) is the text the
standard library writes with sorted keys and no spaces: every settlement recorded before it changed was
stored and hashed with that text, and a repeat of such a claim must still hash the same."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from doudi import services
from doudi.desk import pricing
from ledger.repository import canonical_claim, compact_json
from settlement.claims import parse_claim

ROOT = Path(__file__).resolve().parents[2]


def _stdlib(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


# What claims and records hold: text (control characters, quotes, backslashes, CJK, astral planes
# included), integers, booleans and null, in lists and objects with text keys. Never a float: money is text.
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
leaves = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | text
values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(text, inner, max_size=5))


@given(values)
def test_the_same_text_as_the_standard_library(value: Any) -> None:
    assert compact_json(value) == _stdlib(value)


def _floats(value: Any) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for v in value.values() for f in _floats(v)]
    if isinstance(value, list):
        return [f for v in value for f in _floats(v)]
    return []


def test_the_examples_records_and_claims_hold_no_float_and_are_written_as_before() -> None:
    library = services.open_library()
    seen = 0
    for path in sorted((ROOT / "examples").glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        for raw in document.get("claims", [document]):
            claim = parse_claim(raw)
            record = pricing(library, raw.get("policy") or "jl-meihekou", claim).record({})
            assert _floats(record) == [] and _floats(claim.as_json()) == []
            assert compact_json(record) == _stdlib(record)
            assert canonical_claim(claim) == _stdlib(claim.as_json())
            seen += 1
    assert seen >= 5
