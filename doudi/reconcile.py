"""Monthly reconciliation on the ledger: read a month into the frames of reconciliation/frames.py, build
the statement, write its files, match a hospital's file, close the month.

Money leaves the database as integer fen computed in SQL (`ledger.models.fen_sql`), exact on both databases.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from doudi import masking
from doudi.accounts import Principal, audit
from doudi.desk import Conflict, NotFound
from ledger.models import LedgerEntry, MonthClose, Reversal, Settlement, fen_sql
from reconciliation.files import Identifiers, manifest, statement_files
from reconciliation.frames import Month
from reconciliation.national import yuan_text
from reconciliation.statement import Statement, Unbalanced, build_statement


class MonthError(Exception):
    """The month cannot be closed (not over yet), or the request names a bad month."""


def read_month(session: Session, month: Month) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(settlements, entries, ledger totals) of `month`, as reconciliation/frames.py describes them."""
    start, end = month.start, month.end
    dialect = session.get_bind().dialect.name

    def _fen(column: Any) -> ColumnElement[int]:
        found: ColumnElement[int] = fen_sql(column, dialect)
        return found

    reversed_in_month = select(Reversal.setl_id).where(Reversal.reversed_at >= start, Reversal.reversed_at < end)
    wanted = or_(
        (Settlement.settled_at >= start) & (Settlement.settled_at < end), Settlement.setl_id.in_(reversed_in_month)
    )
    settlements_query = (
        select(
            Settlement.setl_id,
            Settlement.medins_setl_id,
            Settlement.hospital_id,
            Settlement.person_id,
            Settlement.category,
            Settlement.diagnosis,
            Settlement.admitted_on,
            Settlement.discharged_on,
            Settlement.settled_at,
            Reversal.reversed_at,
            Settlement.policy,
            _fen(Settlement.total).label("total"),
            _fen(Settlement.fully_self_paid).label("fully_self_paid"),
            _fen(Settlement.over_limit_self_paid).label("over_limit_self_paid"),
            _fen(Settlement.pre_self_paid).label("pre_self_paid"),
            _fen(Settlement.in_scope).label("in_scope"),
            _fen(Settlement.fund_paid).label("fund_paid"),
            _fen(Settlement.patient_burden).label("patient_burden"),
        )
        .outerjoin(Reversal, Reversal.setl_id == Settlement.setl_id)
        .where(wanted)
    )
    connection = session.connection()
    settlements = pd.read_sql(settlements_query, connection)
    for column in ("settled_at", "reversed_at"):
        settlements[column] = pd.to_datetime(settlements[column])
    for column in ("admitted_on", "discharged_on"):
        settlements[column] = pd.to_datetime(settlements[column]).dt.date

    entries_query = (
        select(
            LedgerEntry.setl_id,
            LedgerEntry.kind,
            LedgerEntry.stage,
            LedgerEntry.bucket,
            LedgerEntry.fund_pay_type,
            _fen(LedgerEntry.amount).label("amount"),
            _fen(LedgerEntry.base).label("base"),
            _fen(LedgerEntry.quota_used).label("quota_used"),
            _fen(LedgerEntry.quota_left).label("quota_left"),
        )
        .join(Settlement, Settlement.setl_id == LedgerEntry.setl_id)
        .where(wanted, LedgerEntry.stage != "")
    )
    entries = pd.read_sql(entries_query, connection)
    for column in ("quota_used", "quota_left"):
        entries[column] = entries[column].astype("Int64")

    totals_query = (
        select(
            Settlement.hospital_id,
            LedgerEntry.stage,
            LedgerEntry.bucket,
            _fen(func.sum(LedgerEntry.amount)).label("amount"),
        )
        .join(Settlement, Settlement.setl_id == LedgerEntry.setl_id)
        .where(LedgerEntry.recorded_at >= start, LedgerEntry.recorded_at < end, LedgerEntry.stage != "")
        .group_by(Settlement.hospital_id, LedgerEntry.stage, LedgerEntry.bucket)
    )
    totals = pd.read_sql(totals_query, connection)
    return settlements, entries, totals


def closed(session: Session, month: Month) -> MonthClose | None:
    return session.get(MonthClose, str(month))


def carried_into(session: Session, month: Month) -> dict[tuple[str, str], int]:
    """The negative balances carried into `month`: from the closed month before it, or computed from the
    months before (back to the first settlement) when it is still open."""
    previous = month.previous()
    known = closed(session, previous)
    if known is not None:
        carry = json.loads(known.manifest)["carried_out"]
        return {(row["hospital_id"], row["fund"]): int(row["fen"]) for row in carry}
    first = session.scalar(select(func.min(Settlement.settled_at)))
    if first is None or previous < Month.of(first):
        return {}
    return statement(session, previous).carried_out()


def consistent(engine: Engine) -> Engine:
    """`engine` for reading a month while the desks keep settling: on PostgreSQL every query of a transaction
    then sees one snapshot (REPEATABLE READ), so that a settlement committed between the month's queries
    cannot make its summary disagree with the ledger's totals; a SQLite read transaction is a snapshot already."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="REPEATABLE READ")
    return engine


def month_session(engine: Engine) -> Session:
    """A session for reading a month's statement: one snapshot for all of its queries (see `consistent`).
    Every reader of a statement opens its session here, so that none of them can meet a half-moved month."""
    return Session(consistent(engine))


def statement(session: Session, month: Month, hospital_id: str | None = None) -> Statement:
    settlements, entries, totals = read_month(session, month)
    return build_statement(month, settlements, entries, totals, carried_into(session, month), hospital_id)


def close_month(
    engine: Engine, month: Month, who: Principal, now: dt.datetime, write: Any
) -> tuple[dict[str, Any], bool]:
    """月结: build and check the month's statement, write its files once (`write(statement)` returns the
    manifest of files with their SHA-256), and freeze it. Closing again returns the stored manifest and
    changes nothing: (manifest, newly closed)."""
    if month.end > now:
        last_day = month.end - dt.timedelta(days=1)
        raise MonthError(f"{month} is not over yet (its last day is {last_day:%Y-%m-%d}); close it afterwards")
    with Session(engine) as session, session.begin():
        known = closed(session, month)
        if known is not None:
            return json.loads(known.manifest), False
        built = statement(session, month)
        built.require_balanced()
        manifest = write(built)
        manifest["carried_out"] = [
            {"hospital_id": h, "fund": f, "fen": fen} for (h, f), fen in sorted(built.carried_out().items())
        ]
        session.add(
            MonthClose(
                month=str(month),
                closed_at=now,
                closed_by=who.user,
                manifest=json.dumps(manifest, ensure_ascii=False, sort_keys=True),
            )
        )
        audit(session, who, "month.close", str(month), {"files": manifest.get("files", [])}, now)
    return manifest, True


IDENTIFIERS: dict[str, Identifiers] = {
    # Person numbers masked in every file (the default).
    "masked": Identifiers(masking.identifier, masking.identifier, "masked"),
    # In full in the national detail files only, which must carry them (DOUDI_FULL_IDENTIFIERS=1).
    "national": Identifiers(masking.identifier, str, "national"),
    # In full everywhere: how months closed before masking existed were written.
    "full": Identifiers(str, str, "full"),
}


def identifiers() -> Identifiers:
    """What statement files written now carry (DOUDI_FULL_IDENTIFIERS)."""
    return IDENTIFIERS["national" if masking.full_identifiers(os.environ) else "masked"]


def file_identifiers(session: Session, month: Month) -> Identifiers:
    """What `month`'s files carry: as recorded when it was closed, so that they come out byte for byte as
    archived; for an open month, the current setting."""
    known = closed(session, month)
    if known is None:
        return identifiers()
    return IDENTIFIERS[json.loads(known.manifest).get("identifiers", "full")]


def write_files(statement: Statement, folder: Path, chosen: Identifiers | None = None) -> dict[str, Any]:
    """Write the statement's files into `folder` (made if missing) with `manifest.json`; the manifest.
    Nothing is written unless every balancing check holds."""
    chosen = chosen or identifiers()
    files = statement_files(statement, chosen)  # raises Unbalanced before anything is written
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    found = {**manifest(statement, files), "identifiers": chosen.label}
    (folder / "manifest.json").write_text(json.dumps(found, ensure_ascii=False, indent=2, sort_keys=True) + "\n")
    return found


def archive_folder(month: Month, base: Path | None = None) -> Path:
    """Where a closed month's files live: DOUDI_ARCHIVE_DIR (default var/reconciliation)/YYYY-MM."""
    root = base if base is not None else Path(os.environ.get("DOUDI_ARCHIVE_DIR", "var/reconciliation"))
    return root / str(month)


def months(session: Session) -> list[dict[str, Any]]:
    """Every month with settlements or reversals, newest first, with its state."""
    found: set[str] = set()
    for column in (Settlement.settled_at, Reversal.reversed_at):
        for (moment,) in session.execute(select(column).distinct()):
            found.add(f"{moment:%Y-%m}")
    closes = {c.month: c for c in session.scalars(select(MonthClose))}
    found |= set(closes)
    out = []
    for month in sorted(found, reverse=True):
        close = closes.get(month)
        out.append(
            {
                "month": month,
                "closed": close is not None,
                "closed_at": close.closed_at.isoformat() if close else None,
                "closed_by": close.closed_by if close else None,
            }
        )
    return out


def match_file(session: Session, month: Month, hospital_id: str, data: bytes, name: str) -> Any:
    """Compare a hospital's own detail file for `month` with the ledger (3202): read-only, whatever the file
    holds. Returns reconciliation.matching's Matching."""
    from reconciliation.hospital_file import read_hospital_file
    from reconciliation.matching import match
    from reconciliation.national import detail_rows

    built = statement(session, month, hospital_id)
    ours = detail_rows(built)
    theirs = read_hospital_file(data, name)
    # Ids without a forward row here may have one in another month (e.g. a prior-period reversal's original).
    forward_here = set(ours.loc[ours["refd_setl_flag"] == "0", "setl_id"])
    unknown = sorted(set(theirs.rows["setl_id"]) - forward_here)
    elsewhere: dict[str, str] = {}
    for chunk in range(0, len(unknown), 1000):
        query = select(Settlement.setl_id, Settlement.settled_at).where(
            Settlement.setl_id.in_(unknown[chunk : chunk + 1000])
        )
        found = {setl_id: f"{moment:%Y-%m}" for setl_id, moment in session.execute(query)}
        elsewhere.update({setl_id: m for setl_id, m in found.items() if m != str(month)})
    return match(ours, theirs, month, elsewhere)


# What the API and finance's pages both hand out: the same bytes, names and checks from one place.
CONTENT_TYPES = {
    ".csv": "text/csv; charset=utf-8",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".zip": "application/zip",
    ".json": "application/json",
}


@dataclass(frozen=True)
class Download:
    filename: str
    data: bytes
    media_type: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def statement_download(reader: Engine, month: Month, name: str, hospital_id: str | None = None) -> Download:
    """One file of `month`'s statement (all hospitals, or one). A closed month's file is regenerated from the
    ledger and must match the hash stored when it closed (Conflict otherwise); an unknown name is NotFound."""
    with month_session(reader) as session:
        built = statement(session, month, hospital_id)
        chosen = file_identifiers(session, month)  # masked, unless the month says otherwise
        known = closed(session, month) if hospital_id is None else None
    try:
        files = statement_files(built, chosen)
    except Unbalanced as err:
        raise Conflict(str(err)) from None
    if name not in files:
        raise NotFound(f"no file {name!r} in the statement of {month}; there are: {', '.join(sorted(files))}")
    data = files[name]
    if known is not None:
        stored = {f["name"]: f["sha256"] for f in json.loads(known.manifest)["files"]}
        if stored.get(name) != hashlib.sha256(data).hexdigest():
            raise Conflict(
                f"{month} is closed, and {name} regenerated from the ledger no longer matches its stored hash"
            )
    suffix = name[name.rfind(".") :]
    filename = f"{month}-{hospital_id + '-' if hospital_id else ''}{name.replace('/', '-')}"
    return Download(filename, data, CONTENT_TYPES.get(suffix, "application/octet-stream"))


def difference_report(matching: Any, hospital_id: str, format: str) -> Download:
    """A matching's differences as a file: `csv` (the differences sheet) or `xlsx` (every sheet)."""
    from reconciliation.matching import difference_sheets
    from reconciliation.writers import csv_bytes, xlsx_bytes

    sheets = difference_sheets(matching)
    month: Month = matching.month
    if format == "csv":
        data = csv_bytes(sheets[-1])
    elif format == "xlsx":
        data = xlsx_bytes(sheets, month.start)
    else:
        raise ValueError(f"format: {format!r} is not csv or xlsx")
    return Download(f"{month}-{hospital_id}-differences.{format}", data, CONTENT_TYPES[f".{format}"])


def upload_name(raw: str) -> str:
    """Only the last part of an uploaded file's name, as printable text: it is shown, never opened."""
    last = raw.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in last if ch.isprintable())[:200]
    return cleaned or "upload"


def json_rows(frame: pd.DataFrame, money: tuple[str, ...] | list[str]) -> list[dict[str, Any]]:
    """A frame's rows as JSON values: money (integer fen) as yuan text, dates as ISO text, missing as None."""
    rows: list[dict[str, Any]] = [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]
    for row in rows:
        for key, value in row.items():
            if key in money:
                row[key] = None if value is None or value != value else yuan_text(int(value))  # NaN/NA: none
            elif hasattr(value, "isoformat"):
                row[key] = value.isoformat()
            elif value is not None and not isinstance(value, str | int | float | bool):
                row[key] = None if str(value) in ("<NA>", "NaT", "nan") else str(value)
    return rows


def matching_body(matching: Any) -> dict[str, Any]:
    """A matching (reconciliation.matching's Matching) as JSON: the file, the verdict, every difference."""
    verdict = matching.verdict
    file = matching.file

    def side(totals: Any) -> dict[str, Any]:
        return {
            "rows": totals.rows,
            "settlements": totals.settlements,
            "reversals": totals.reversals,
            "medfee_sumamt": yuan_text(totals.medfee_sumamt),
            "fund_pay_sumamt": yuan_text(totals.fund_pay_sumamt),
            "acct_pay": yuan_text(totals.acct_pay),
        }

    return {
        "month": str(matching.month),
        "file": {
            "name": file.name,
            "format": file.format,
            "encoding": file.encoding,
            "zipped": file.zipped,
            "problems": len(file.problems),
            "notes": list(file.notes),
        },
        "verdict": {
            "stmt_rslt": verdict.stmt_rslt,
            "stmt_rslt_dscr": verdict.stmt_rslt_dscr,
            "balanced": verdict.balanced,
            "doudi": side(verdict.doudi),
            "hospital": side(verdict.hospital),
        },
        "counts": matching.counts,
        "differences": json_rows(matching.differences, ("doudi", "hospital", "difference")),
    }
