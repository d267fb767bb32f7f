"""Masking people's identifiers and names where they are not needed: logs, statement files other than the
national detail file, simulation reports, command output. Pure: strings in, strings out.

The rules (docs/operations.md says the same for the county's IT staff):

- An identifier (a person's number 人员编号 psn_no, a household id, a resident identity number 身份证号)
  keeps its last characters only, never more than 4 and never more than a third of it; every other
  character becomes `*`, so the length stays: `220581199001011234` → `**************1234`, `MHK-P-0001` →
  `*******001`, `P1` → `**`.
- A name keeps its first character (the family name, for a Chinese name) when it has two or more:
  `张三丰` → `张**`; a one-character name is `*`.
- Free text (a log line) has masked: anything shaped like a resident identity number (18 characters: a
  six-digit area, a birth date, three digits and a check digit or X); the value after a key that names a
  person's identifier or name (`person_id=…`, `"psn_no": "…"`, PostgreSQL's `Key (person_id)=(…)`); the
  path segment after `/people/`.

Masking is idempotent (masking a masked value changes nothing) and leaves text without identifiers alone.
Full identifiers appear only in the national detail file (3202), and only when DOUDI_FULL_IDENTIFIERS is set
(`full_identifiers`): the national platform's file must carry each row's psn_no.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

MASK: Final = "*"
MOST_SHOWN: Final = 4
FULL_IDENTIFIERS_ENV: Final = "DOUDI_FULL_IDENTIFIERS"

IDENTIFIER_KEYS: Final = ("person_id", "household_id", "psn_no", "certno", "psn_cert_no", "id_number", "idcard")
NAME_KEYS: Final = ("psn_name", "patient_name", "person_name")


def shown(length: int) -> int:
    """How many trailing characters of an identifier of `length` characters stay visible."""
    return min(MOST_SHOWN, length // 3)


def identifier(value: str) -> str:
    keep = shown(len(value))
    return MASK * (len(value) - keep) + (value[len(value) - keep :] if keep else "")


def name(value: str) -> str:
    if len(value) < 2:
        return MASK * len(value)
    return value[0] + MASK * (len(value) - 1)


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def full_identifiers(environ: Mapping[str, str]) -> bool:
    """Whether the national detail files carry full identifiers (DOUDI_FULL_IDENTIFIERS=1); off by default."""
    value = environ.get(FULL_IDENTIFIERS_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{FULL_IDENTIFIERS_ENV}={value!r}: write 1 (national files carry full identifiers) or 0")


_KEYS = "|".join(IDENTIFIER_KEYS + NAME_KEYS)
_QUOTED = re.compile(rf"""(["'])({_KEYS})\1(\s*[:=]\s*)(["'])(.*?)\4""", re.IGNORECASE)
_ASSIGNED = re.compile(rf"""(?<![0-9A-Za-z_])({_KEYS})(=)([^\s&"',;)\]}}]+)""", re.IGNORECASE)
_POSTGRES_KEY = re.compile(rf"\(({_KEYS})\)=\(([^)]*)\)", re.IGNORECASE)
_PEOPLE_PATH = re.compile(r"(/people/)([^/?#\s\"']+)")
_ID_NUMBER = re.compile(
    r"(?<![0-9A-Za-z])[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx]"
    r"(?![0-9A-Za-z])"
)


# What every rule above needs somewhere in the text: a key, the people path, or the seventeen digits that
# begin an identity number. A text without any is left as it is after one search rather than five.
_MAYBE = re.compile(rf"(?i:{_KEYS})|/people/|[0-9]{{17}}")


def _by_key(key: str, value: str) -> str:
    return name(value) if key.lower() in NAME_KEYS else identifier(value)


def scrub(text: str) -> str:
    """`text` with every identifier and name the rules above recognise masked."""
    if not text or _MAYBE.search(text) is None:
        return text
    text = _QUOTED.sub(lambda m: f"{m[1]}{m[2]}{m[1]}{m[3]}{m[4]}{_by_key(m[2], m[5])}{m[4]}", text)
    text = _ASSIGNED.sub(lambda m: f"{m[1]}{m[2]}{_by_key(m[1], m[3])}", text)
    text = _POSTGRES_KEY.sub(lambda m: f"({m[1]})=({_by_key(m[1], m[2])})", text)
    text = _PEOPLE_PATH.sub(lambda m: m[1] + identifier(m[2]), text)
    return _ID_NUMBER.sub(lambda m: identifier(m[0]), text)
