"""The national platform's message envelope, in and out.

A request is a header (`infno`, `msgid`, `mdtrtarea_admvs`, `insuplc_admdvs`, `fixmedins_code`,
`inf_time`, …) around `input`; an answer is `infcode` (0: success; below 0: refused), `err_msg`,
`inf_refmsgid`, `refmsg_time`, `respond_time` and `output`. Fields a sender adds that Doudi does not use are
ignored, as the platform ignores them; a field Doudi uses and cannot accept is refused by its path
(`input.data.medfee_sumamt`) with the same clear message the rest of the service gives.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from settlement.errors import ClaimError, FieldError

INFCODE: Final = {"ok": 0, "invalid": -1, "conflict": -2, "not_found": -3, "unavailable": -4}
"""The answer's `infcode`: 0 success, and below 0 what kind of refusal (docs/interop.md lists them)."""

STATUS: Final = {"ok": 200, "invalid": 422, "conflict": 409, "not_found": 404, "unavailable": 503}
"""The HTTP status sent with each kind of answer; the body is the envelope whatever the status."""

_MSGID: Final = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._:/-]{0,63}$")
_AREA: Final = re.compile(r"^[0-9]{6}$")
_TIME_FORMATS: Final = ("%Y-%m-%d %H:%M:%S", "%Y%m%d%H%M%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")


@dataclass(frozen=True)
class Message:
    """A request's header and its `input`, read with every problem noted in `problems`."""

    infno: str
    msgid: str
    fixmedins_code: str | None
    inf_time: dt.datetime | None
    mdtrtarea_admvs: str | None
    insuplc_admdvs: str | None
    input: Mapping[str, Any]
    data: Mapping[str, Any]
    problems: tuple[FieldError, ...]


def read_message(body: Any, infno: str, need_time: bool = False) -> Message:
    """The envelope of a request for transaction `infno`. Raises ClaimError only when the body is not an
    envelope at all; other problems are kept in `problems` so that the transaction adds its own and all are
    refused together."""
    if not isinstance(body, Mapping):
        raise ClaimError([FieldError("body", "expected the national platform's request: a JSON object")])
    problems: list[FieldError] = []
    stated = body.get("infno")
    if stated is None:
        problems.append(FieldError("infno", f"is required: {infno!r} for this address"))
    elif str(stated) != infno:
        problems.append(FieldError("infno", f"{stated!r} was sent to the address of transaction {infno}"))
    msgid = body.get("msgid")
    if not isinstance(msgid, str) or not _MSGID.fullmatch(msgid):
        problems.append(
            FieldError(
                "msgid",
                "is required: the sender's message id (letters, digits and ._:/-, at most 64 characters)"
                if msgid is None
                else f"{msgid!r} is not a message id (letters, digits and ._:/-, at most 64 characters)",
            )
        )
        msgid = ""
    fixmedins = body.get("fixmedins_code")
    if fixmedins is not None and (not isinstance(fixmedins, str) or not fixmedins.strip()):
        problems.append(FieldError("fixmedins_code", "must be the hospital's code as text"))
        fixmedins = None
    areas: dict[str, str | None] = {}
    for name in ("mdtrtarea_admvs", "insuplc_admdvs"):
        value = body.get(name)
        if value in (None, ""):
            areas[name] = None
        elif isinstance(value, str) and _AREA.fullmatch(value):
            areas[name] = value
        else:
            problems.append(FieldError(name, f"{value!r} is not a six-digit administrative division code"))
            areas[name] = None
    inf_time = None
    if need_time or body.get("inf_time") is not None:
        inf_time = read_time(body.get("inf_time"), "inf_time", problems)
    payload = body.get("input")
    data: Mapping[str, Any] = {}
    if not isinstance(payload, Mapping):
        problems.append(FieldError("input", "is required: an object holding the transaction's `data`"))
        payload = {}
    else:
        found = payload.get("data")
        if isinstance(found, Mapping):
            data = found
        else:
            problems.append(FieldError("input.data", "is required: an object"))
    return Message(
        infno=infno,
        msgid=msgid,
        fixmedins_code=fixmedins.strip() if isinstance(fixmedins, str) else None,
        inf_time=inf_time,
        mdtrtarea_admvs=areas["mdtrtarea_admvs"],
        insuplc_admdvs=areas["insuplc_admdvs"],
        input=payload,
        data=data,
        problems=tuple(problems),
    )


def read_time(raw: object, where: str, problems: list[FieldError]) -> dt.datetime | None:
    """A time as the platform writes it ("2014-06-12 10:20:00"; ISO 8601 is accepted too)."""
    if raw is None or raw == "":
        problems.append(FieldError(where, 'is required: a time like "2014-06-12 10:20:00"'))
        return None
    if isinstance(raw, str):
        text = raw.strip()
        for pattern in _TIME_FORMATS:
            try:
                return dt.datetime.strptime(text, pattern)
            except ValueError:
                continue
        try:
            return dt.datetime.fromisoformat(text).replace(tzinfo=None)
        except ValueError:
            pass
    problems.append(FieldError(where, f'{raw!r} is not a time like "2014-06-12 10:20:00"'))
    return None


def national_time(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def reference_id(area: str | None, now: dt.datetime) -> str:
    """The answer's own message id (接收方报文ID), shaped like the platform's: area, time, serial."""
    return f"{area or '000000'}{now:%Y%m%d%H%M%S}{secrets.randbelow(10**10):010d}"


def answer(
    kind: str,
    output: Any,
    received: dt.datetime,
    answered: dt.datetime,
    area: str | None = None,
    errors: Sequence[FieldError] = (),
    message: str | None = None,
) -> dict[str, Any]:
    """The response envelope. `errors` (or `message`) make `err_msg`; a refusal has no `output`."""
    err_msg = message if message is not None else "; ".join(str(e) for e in errors) or None
    body: dict[str, Any] = {
        "infcode": INFCODE[kind],
        "inf_refmsgid": reference_id(area, answered),
        "refmsg_time": _millis(received),
        "respond_time": _millis(answered),
        "err_msg": err_msg,
        "warn_msg": None,
        "cainfo": None,
        "signtype": None,
        "output": output,
    }
    if errors:
        # Doudi's addition: the same problems as a list, each on its field, for a program to read.
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    return body


def _millis(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
