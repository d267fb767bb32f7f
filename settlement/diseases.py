"""Disease lists: which ICD-10 codes put a claim in a medical-assistance bucket.

A list entry names codes (a code matches itself and every code below it: C50 matches C50.9 and
C50.901x001) and inclusive ranges of codes ([Q20, Q26] matches Q20 to Q26.9; [D66, D68.0] stops at D68.0
and what lies below it). Matching is done once per distinct code in a batch, never per claim.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# ICD-10 as the national platform writes it: a letter, two digits, then optionally a dot, one to three
# digits, and the national extension "x" + three digits (e.g. C92.000x001).
ICD10_CODE = re.compile(r"[A-Z][0-9]{2}(\.[0-9]{1,3}(x[0-9]{3})?)?")


def normalise_icd10(code: str) -> str:
    """Upper-case the chapter letter, strip blanks; raise ValueError if the result is not ICD-10."""
    text = code.strip()
    if text:
        text = text[0].upper() + text[1:].replace("X", "x")
    if not ICD10_CODE.fullmatch(text):
        raise ValueError(
            f"{code!r} is not an ICD-10 code (expected a letter, two digits and an optional "
            "subdivision, e.g. C92.0 or C92.000x001)"
        )
    return text


def _below(code: str, parent: str) -> bool:
    """True when `code` is `parent` or a subdivision of it."""
    if not code.startswith(parent):
        return False
    rest = code[len(parent) :]
    return rest == "" or (rest[0] in ".0123456789x" and (("." in parent) or rest[0] == "."))


@dataclass(frozen=True, slots=True)
class DiseaseEntry:
    name: str
    codes: tuple[str, ...] = ()
    ranges: tuple[tuple[str, str], ...] = ()
    confirmed: bool = False

    def matches(self, code: str) -> bool:
        if any(_below(code, parent) for parent in self.codes):
            return True
        return any(low <= code and (code <= high or _below(code, high)) for low, high in self.ranges)


@dataclass(frozen=True, slots=True)
class DiseaseList:
    """A named list of diseases, shared by policies (e.g. Meihekou's 27 catastrophic diseases)."""

    id: str
    title: str
    entries: tuple[DiseaseEntry, ...]
    _known: dict[str, bool] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def entry_for(self, code: str) -> DiseaseEntry | None:
        for entry in self.entries:
            if entry.matches(code):
                return entry
        return None

    def matches(self, code: str) -> bool:
        return self.entry_for(code) is not None

    def match_all(self, codes: Sequence[str]) -> list[bool]:
        """Remembered per code: a desk sees the same few thousand codes all day."""
        known = self._known
        if len(known) > 100_000:
            known.clear()
        return [known[code] if code in known else known.setdefault(code, self.matches(code)) for code in codes]


def codes_in(entries: Iterable[DiseaseEntry]) -> list[str]:
    """Every code and range bound written in the entries, for validation."""
    out: list[str] = []
    for entry in entries:
        out.extend(entry.codes)
        for low, high in entry.ranges:
            out.extend((low, high))
    return out
