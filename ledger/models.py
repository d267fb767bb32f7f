"""Tables of the ledger. Money is `Numeric(16, 2)` on PostgreSQL, as the national platform's money fields
are, and whole fen in an integer column on SQLite, which has no exact decimal type: a NUMERIC column there
stores binary floating point, and its sums drift by fractions of a fen. Either way Python sees `Decimal`."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    cast,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

_CENT = Decimal("0.01")


class Money(TypeDecorator[Decimal]):
    """Yuan to the fen: NUMERIC(16, 2) on PostgreSQL, integer fen on SQLite; Decimal in Python, both ways.
    SQL arithmetic on SQLite therefore works in fen (see `fen_sql`)."""

    impl = Numeric(16, 2, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(16, 2, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        fen = Decimal(value) * 100
        if fen != fen.to_integral_value():
            raise ValueError(f"{value} is not a whole number of fen")
        return int(fen)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return (Decimal(int(value)) / 100).quantize(_CENT)
        return Decimal(value).quantize(_CENT)


def fen_sql(column: Any, dialect_name: str) -> Any:
    """A SQL expression giving a Money column (or a sum of one) as integer fen, on either database."""
    if dialect_name == "sqlite":
        return cast(column, BigInteger)
    return cast(func.round(column * 100), BigInteger)


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Hospital(Base):
    __tablename__ = "hospitals"
    hospital_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[int] = mapped_column(Integer)
    region: Mapped[str] = mapped_column(String(6))


class Region(Base):
    """An insured area (参保地, by its six-digit administrative code) and the policy that governs it: a
    person's stays are settled under their insured area's policy, whichever hospital they are in."""

    __tablename__ = "regions"
    region: Mapped[str] = mapped_column(String(6), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    policy_id: Mapped[str] = mapped_column(String(64))


class Person(Base):
    __tablename__ = "people"
    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    household_id: Mapped[str] = mapped_column(String(64), index=True)
    insurance_scheme: Mapped[str] = mapped_column(String(16))
    region: Mapped[str] = mapped_column(ForeignKey("regions.region"))
    name: Mapped[str] = mapped_column(String(100))


class CategoryPeriod(Base):
    """An assistance category held from one date to another, as the national platform's identity records
    (1101 `idetinfo`) give it."""

    __tablename__ = "category_periods"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.person_id"), index=True)
    category: Mapped[str] = mapped_column(String(32))
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_until: Mapped[dt.date | None] = mapped_column(Date, nullable=True)


class Settlement(Base):
    """One settlement as the desk made it: the claim, the record returned, and the policy that settled it."""

    __tablename__ = "settlements"
    # The settlement key is the hospital's own (医药机构结算ID): unique within a hospital, not across them.
    __table_args__ = (UniqueConstraint("hospital_id", "medins_setl_id", name="uq_settlements_hospital_key"),)
    setl_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    medins_setl_id: Mapped[str] = mapped_column(String(64))
    hospital_id: Mapped[str] = mapped_column(String(64), index=True)
    person_id: Mapped[str] = mapped_column(String(64), index=True)
    household_id: Mapped[str] = mapped_column(String(64), index=True)
    policy: Mapped[str] = mapped_column(String(128))
    request_sha256: Mapped[str] = mapped_column(String(64))
    claim_json: Mapped[str] = mapped_column(Text)
    record_json: Mapped[str] = mapped_column(Text)
    total: Mapped[Decimal] = mapped_column(Money())
    fund_paid: Mapped[Decimal] = mapped_column(Money())
    patient_burden: Mapped[Decimal] = mapped_column(Money())
    settled_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)  # when recorded: its month pays
    # The claim's facts that monthly statements show, as columns so that a month is read without JSON.
    category: Mapped[str] = mapped_column(String(32))
    insurance_scheme: Mapped[str] = mapped_column(String(16))
    visit_type: Mapped[str] = mapped_column(String(32))
    diagnosis: Mapped[str] = mapped_column(String(16))  # the principal one
    admitted_on: Mapped[dt.date] = mapped_column(Date)
    discharged_on: Mapped[dt.date] = mapped_column(Date)
    fully_self_paid: Mapped[Decimal] = mapped_column(Money())
    over_limit_self_paid: Mapped[Decimal] = mapped_column(Money())
    pre_self_paid: Mapped[Decimal] = mapped_column(Money())
    in_scope: Mapped[Decimal] = mapped_column(Money())


class Reversal(Base):
    """结算撤销 of a settlement; at most one per settlement (the primary key refuses a second)."""

    __tablename__ = "reversals"
    setl_id: Mapped[str] = mapped_column(ForeignKey("settlements.setl_id"), primary_key=True)
    reason: Mapped[str] = mapped_column(String(500))
    reversed_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)


class LedgerEntry(Base):
    """One fund's part of a settlement (or its negative, for a reversal), with what it moved in its
    accumulator. Appended, never changed.

    Every writer of an entity's entries holds that entity's lock (`doudi.desk.lock_name`) from before it
    takes the entries' ids to its commit, so one entity's entries are numbered in the order they commit: what
    any snapshot holds of an entity is all of its entries up to some id. The group desk keeps what it has
    summed of an entity and reads only the entries after it, by (entity, id)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (Index("ix_ledger_entries_entity_id", "entity", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    setl_id: Mapped[str] = mapped_column(ForeignKey("settlements.setl_id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # settlement | reversal
    tier: Mapped[str] = mapped_column(String(80))
    stage: Mapped[str] = mapped_column(String(40))
    bucket: Mapped[str] = mapped_column(String(80))
    fund_pay_type: Mapped[str] = mapped_column(String(10))
    amount: Mapped[Decimal] = mapped_column(Money())
    base: Mapped[Decimal] = mapped_column(Money())  # what entered this fund (for assistance: 进入医疗救助金额)
    quota_used: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)  # paid this year so far, this included
    quota_left: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)  # of the annual cap, after; none: no cap
    accumulator: Mapped[str | None] = mapped_column(String(80), nullable=True)
    entity: Mapped[str | None] = mapped_column(String(64), nullable=True)
    policy_year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    base_delta: Mapped[Decimal] = mapped_column(Money())
    paid_delta: Mapped[Decimal] = mapped_column(Money())
    claims_delta: Mapped[int] = mapped_column(Integer)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime)


class PublishedPolicy(Base):
    """A policy version as published, with its document. A version some settlement used is never replaced."""

    __tablename__ = "published_policies"
    policy_key: Mapped[str] = mapped_column(String(130), primary_key=True)  # id@version
    policy_id: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[str] = mapped_column(String(64))
    region: Mapped[str] = mapped_column(String(6))
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_until: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    document: Mapped[str] = mapped_column(Text)  # the YAML as published
    document_sha256: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[dt.datetime] = mapped_column(DateTime)
    published_by: Mapped[str] = mapped_column(String(64))


class User(Base):
    """An account. A `desk` user is bound to one hospital; other roles to none."""

    __tablename__ = "users"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    hospital_id: Mapped[str | None] = mapped_column(ForeignKey("hospitals.hospital_id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    # For signing in to the web pages; None means the account has API tokens only.
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)


class WebSession(Base):
    """A signed-in browser. The cookie carries a random value; only its SHA-256 is stored, as for tokens.
    `csrf_token` is the value every form of this session must echo back."""

    __tablename__ = "web_sessions"
    session_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(ForeignKey("users.name"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class LoginAttempt(Base):
    """One sign-in attempt, kept so that repeated failures for a name or an address can be slowed down."""

    __tablename__ = "login_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    user_name: Mapped[str] = mapped_column(String(64), index=True)
    remote: Mapped[str] = mapped_column(String(64))
    succeeded: Mapped[bool] = mapped_column(Boolean)


class ApiToken(Base):
    """A bearer token, stored as its SHA-256 only (tokens are 256-bit random, so a slow hash adds nothing).
    `token_id` is the token's public prefix, safe to show in lists and the audit log."""

    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("token_sha256"),)
    token_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    user_name: Mapped[str] = mapped_column(ForeignKey("users.name"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class AuditEntry(Base):
    """Who wrote what, when, with which token. Written in the same transaction as the write it records.

    Entries form one chain (ledger/audit_chain.py): entry `seq` carries the hash of entry `seq - 1` and its
    own hash over its content and that link, so that changing, deleting, inserting or reordering entries in
    the database shows (`doudi audit verify`). The database refuses UPDATE and DELETE on this table."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime)
    user_name: Mapped[str] = mapped_column(String(64))
    token_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(200))
    detail: Mapped[str] = mapped_column(Text)  # JSON
    seq: Mapped[int] = mapped_column(Integer, unique=True)  # 1, 2, 3... in chain order
    prev_sha256: Mapped[str] = mapped_column(String(64))
    entry_sha256: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """The chain's last entry, one row: a writer locks it to append (so the chain cannot fork), and it
    tells a deleted last entry from a log that simply ends."""

    __tablename__ = "audit_chain"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    seq: Mapped[int] = mapped_column(Integer)  # 0 before the first entry
    entry_sha256: Mapped[str] = mapped_column(String(64))


class MonthClose(Base):
    """A closed month (月结): its statement files were written once and are frozen; their hashes are here."""

    __tablename__ = "month_closes"
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # YYYY-MM
    closed_at: Mapped[dt.datetime] = mapped_column(DateTime)
    closed_by: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[str] = mapped_column(Text)  # JSON: files with SHA-256, totals, carry-forwards
