"""The audit log's hash chain: how one entry's hash is computed. Fixed for good: the migration that chained
the entries written before the chain existed uses it, and `doudi audit verify` recomputes it; a different
formula would be a new `FORMAT` and a new chain, never an edit of this one.

An entry's hash covers its position (`seq`), the previous entry's hash, and everything the entry says
(when, who, with which token, what, on what, the detail as stored). The first entry follows `GENESIS`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Final

import orjson

FORMAT: Final = "doudi-audit-1"
GENESIS: Final = "0" * 64


def entry_sha256(
    seq: int,
    prev_sha256: str,
    at: dt.datetime,
    user_name: str,
    token_id: str | None,
    action: str,
    target: str,
    detail: str,
) -> str:
    """The hex SHA-256 of an entry: over a JSON array (no spaces, UTF-8) of the format, the entry's fields
    in this order and its moment as ISO 8601 with microseconds, so that an auditor can recompute it with any
    JSON library."""
    if at.tzinfo is not None:
        raise ValueError("audit moments are stored without a time zone; convert before hashing")
    content = [FORMAT, seq, prev_sha256, at.isoformat(timespec="microseconds"), user_name, token_id, action]
    content += [target, detail]
    # orjson writes the bytes `json.dumps(content, ensure_ascii=False, separators=(",", ":"))` encodes to
    # UTF-8 (tests/unit/test_group_desk_units.py holds the two equal), a fifth of the time: a busy desk
    # chains an entry for every settlement.
    return hashlib.sha256(orjson.dumps(content)).hexdigest()
