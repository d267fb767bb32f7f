"""ICD-10 normalisation and disease-list matching (settlement/diseases.py).

A listed code matches itself and every code below it (C50 matches C50.9 and C50.901x001, not C501);
a range [low, high] is inclusive and takes what lies below `high` too ([Q20, Q26] stops after Q26.9,
[D66, D68.0] after D68.0 and its subcodes).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from policies.library import load_library
from settlement.diseases import DiseaseEntry, DiseaseList, codes_in, normalise_icd10

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("C91.0", "C91.0"),
        ("c91.0", "C91.0"),
        ("  c50 ", "C50"),
        ("Q20", "Q20"),
        ("C50.9", "C50.9"),
        ("C50.901", "C50.901"),
        ("C92.000x001", "C92.000x001"),
        ("c92.000x001", "C92.000x001"),
        ("D68.01", "D68.01"),
    ],
)
def test_normalise_accepts(raw: str, normalised: str) -> None:
    assert normalise_icd10(raw) == normalised


@pytest.mark.parametrize(
    "raw",
    [
        "XYZ",
        "C9",
        "C",
        "",
        "   ",
        "9C1",
        "C9A",
        "C91.",
        "C91.0000",  # at most three digits after the dot
        "C91.000x01",  # the extension is x + three digits
        "C91x001",  # the extension needs a subdivision
        "C91 .0",
        "C91,0",
        "CC91",
    ],
)
def test_normalise_rejects_with_message(raw: str) -> None:
    with pytest.raises(ValueError) as err:
        normalise_icd10(raw)
    assert str(err.value) == (
        f"{raw!r} is not an ICD-10 code (expected a letter, two digits and an optional subdivision, "
        "e.g. C92.0 or C92.000x001)"
    )


C50 = DiseaseEntry("breast cancer", codes=("C50",))
C50_9 = DiseaseEntry("breast, unspecified", codes=("C50.9",))
Q20_Q26 = DiseaseEntry("congenital heart disease", ranges=(("Q20", "Q26"),))
D66_D68_0 = DiseaseEntry("coagulation defects", ranges=(("D66", "D68.0"),))
C91_1_C92 = DiseaseEntry("from a subcode", ranges=(("C91.1", "C92"),))


@pytest.mark.parametrize(
    ("entry", "code", "matches"),
    [
        # a code matches itself and its subcodes
        (C50, "C50", True),
        (C50, "C50.9", True),
        (C50, "C50.901", True),
        (C50, "C50.901x001", True),
        (C50, "C501", False),  # not a valid code, but must not match by prefix either
        (C50, "C51", False),
        (C50, "C5", False),
        (C50, "C49.9", False),
        (C50_9, "C50.9", True),
        (C50_9, "C50.91", True),
        (C50_9, "C50.9x001", True),
        (C50_9, "C50", False),  # the parent is wider than the listed subcode
        (C50_9, "C50.1", False),
        # ranges [Q20, Q26]: Q20 .. Q26.9, not Q27
        (Q20_Q26, "Q20", True),
        (Q20_Q26, "Q20.0", True),
        (Q20_Q26, "Q21.0", True),
        (Q20_Q26, "Q25.401", True),
        (Q20_Q26, "Q26", True),
        (Q20_Q26, "Q26.9", True),
        (Q20_Q26, "Q26.900x001", True),
        (Q20_Q26, "Q27", False),
        (Q20_Q26, "Q27.0", False),
        (Q20_Q26, "Q19.9", False),
        (Q20_Q26, "R20", False),
        # [D66, D68.0]: D66, D67, D68.0 and its subcodes; not D68.1
        (D66_D68_0, "D66", True),
        (D66_D68_0, "D67", True),
        (D66_D68_0, "D67.9", True),
        (D66_D68_0, "D68.0", True),
        (D66_D68_0, "D68.01", True),
        (D66_D68_0, "D68.0x001", True),
        (D66_D68_0, "D68.1", False),
        (D66_D68_0, "D68.10", False),
        (D66_D68_0, "D69", False),
        (D66_D68_0, "D65", False),
        # a range starting at a subcode does not take the parent or earlier siblings
        (C91_1_C92, "C91.0", False),
        (C91_1_C92, "C91.1", True),
        (C91_1_C92, "C91.9", True),
        (C91_1_C92, "C92.000x001", True),
        (C91_1_C92, "C93", False),
    ],
    ids=lambda v: v.name if isinstance(v, DiseaseEntry) else repr(v),
)
def test_entry_matching(entry: DiseaseEntry, code: str, matches: bool) -> None:
    assert entry.matches(code) is matches


def test_list_picks_the_first_matching_entry() -> None:
    listed = DiseaseList("t", "test", (C50, Q20_Q26, D66_D68_0, DiseaseEntry("again", codes=("C50.9",))))
    assert listed.entry_for("C50.9") is C50
    assert listed.entry_for("Q26.9") is Q20_Q26
    assert listed.entry_for("Q27") is None
    assert listed.match_all(["C50.9", "C501", "Q20", "Q27", "D68.01", "D68.1"]) == [
        True,
        False,
        True,
        False,
        True,
        False,
    ]
    assert listed.match_all([]) == []


def test_codes_in_lists_codes_and_range_bounds() -> None:
    assert codes_in([C50, Q20_Q26, D66_D68_0]) == ["C50", "Q20", "Q26", "D66", "D68.0"]


def test_list_file_codes_are_normalised_when_loaded() -> None:
    """The unit list writes `c91`; the loader normalises it, and matching sees the normal form."""
    library, problems = load_library([DATA / "diseases" / "unit-catastrophic.yaml"])
    assert problems == []
    spec = library.disease_lists["unit-catastrophic"]
    assert spec.entries[0].codes == ["C91", "C92"]
    assert spec.entries[1].ranges == [("Q20", "Q26")]
    entries = tuple(DiseaseEntry(e.name, tuple(e.codes), tuple(e.ranges)) for e in spec.entries)
    listed = DiseaseList(spec.id, spec.title, entries)
    claim_codes = [normalise_icd10(c) for c in ["c91.0", "C92.000x001", "q21.0", "Q27", "C90.0"]]
    assert listed.match_all(claim_codes) == [True, True, True, False, False]
