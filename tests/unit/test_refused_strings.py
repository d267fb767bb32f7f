"""A request body's strings are checked for refused characters on the text when it holds no escape
(`api.context.refused_strings`): that must find exactly what the walk over every decoded string finds."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from api.context import refused_strings, unsafe_strings
from settlement.claims import decode_json

# Text with the refused characters (controls, invisible and direction-changing ones, BOM) among ordinary ones.
text = st.text(st.sampled_from('aZ9 .-_\t\n\r\x00\x07\x1f\x7f\x85\u200b\u202e\u2066\ufeff\u061c梅河口\U0001f600"\\/'))
leaves = st.none() | st.booleans() | st.integers() | text
values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4))


@given(values, st.booleans(), st.booleans())
def test_the_text_check_finds_what_the_walk_finds(value: Any, ascii_only: bool, indented: bool) -> None:
    document = json.dumps(value, ensure_ascii=ascii_only, indent=2 if indented else None)
    decoded = decode_json(document)
    assert refused_strings(document, decoded) == unsafe_strings(decoded)


def test_a_plain_claim_is_passed_without_a_walk_and_an_escaped_control_character_is_found() -> None:
    plain = '{"claim_id": "A-1", "person_id": "梅河口-P-1", "total": "100.00"}'
    assert refused_strings(plain, decode_json(plain)) == []
    escaped = '{"claim_id": "A-\\u0000"}'
    found = refused_strings(escaped, decode_json(escaped))
    assert [problem.field for problem in found] == ["claim_id"]
