"""Published policies: the versions the service settles with, kept in the database with their documents.

Publishing checks the new version together with everything already published (references, disease lists,
includes, and no two versions of one region and tier in force on the same day); a version that any
settlement used, directly or through an including policy, is never replaced. The library the service
settles with is rebuilt from the database whenever what is published changes, so a version published from
another process is used from the next request on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from doudi.accounts import Principal, audit
from doudi.desk import reader
from ledger.models import PublishedPolicy, Settlement
from policies.library import Library, Problem, load_library, read_yaml


class PublishRefused(Exception):
    """The version cannot be published: its problems, or why it is immutable."""

    def __init__(self, problems: list[Problem], immutable: bool = False):
        self.problems = problems
        self.immutable = immutable
        super().__init__("; ".join(str(p) for p in problems))


@dataclass(frozen=True)
class Published:
    key: str
    changed: bool  # False: the same document was published before; nothing was written


def _sha256(document: str) -> str:
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


PUBLISHED_STAMP = select(PublishedPolicy.policy_key, PublishedPolicy.document_sha256)
"""What is published, by content: a replaced version changes its hash whatever the clocks say."""


class Catalogue:
    """The published policies over the shipped disease lists (`lists`: a library holding only lists)."""

    def __init__(self, engine: Engine, lists: Library):
        self._engine = engine
        self._reader = reader(engine)
        self._lists = Library(disease_lists=dict(lists.disease_lists), sources=dict(lists.sources))
        self._lock = threading.Lock()
        self._stamp: tuple[Any, ...] | None = None
        self._library = self._lists

    def library(self, session: Session | None = None) -> Library:
        """The library of published policies, rebuilt when the database's set has changed."""
        if session is None:
            with Session(self._reader) as own:
                return self.library(own)
        stamp = tuple(sorted(tuple(row) for row in session.execute(PUBLISHED_STAMP)))
        with self._lock:
            if stamp != self._stamp:
                self._library = self._load(session)
                self._stamp = stamp
            return self._library

    def cached(self, stamp: list[tuple[str, str]]) -> Library | None:
        """The library already built, if what is published is still `stamp` ((policy_key, document_sha256)
        rows, as `library` reads them); None when it has changed and `library` must rebuild it."""
        with self._lock:
            return self._library if tuple(sorted(stamp)) == self._stamp else None

    def _documents(self, session: Session) -> list[tuple[str, str]]:
        rows = session.execute(select(PublishedPolicy.policy_key, PublishedPolicy.document)).all()
        return [(f"published:{key}", document) for key, document in rows]

    def _load(self, session: Session, extra: tuple[str, str] | None = None, replaces: str | None = None) -> Library:
        """The published library, with `extra` (name, document) added in place of the version `replaces`."""
        documents = self._documents(session)
        if extra is not None:
            documents = [d for d in documents if d[0] != f"published:{replaces}"] + [extra]
        library, problems = load_library([], base=self._lists, documents=documents)
        if problems and extra is None:
            # Everything in the table was checked together when it was published.
            raise RuntimeError("published policies have problems: " + "; ".join(map(str, problems)))
        if problems:
            raise PublishRefused(problems)
        return library

    def check(self, document: str, name: str = "document") -> tuple[str | None, list[Problem]]:
        """Validate a draft against what is published, storing nothing: (its id@version, problems)."""
        key = _key_of(document)
        with Session(self._reader) as session:
            try:
                self._load(session, (f"draft:{key}" if key else name, document), replaces=key)
            except PublishRefused as refused:
                return key, refused.problems
        return key, []

    def publish(self, document: str, who: Principal, now: dt.datetime) -> Published:
        key = _key_of(document)
        if key is None:
            _, problems = self.check(document)
            raise PublishRefused(problems or [Problem("document", "", "not a policy document")])
        with Session(self._engine) as session, session.begin():
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(hashtext('doudi.publish'))"))
            library = self._load(session, (f"published:{key}", document), replaces=key)
            policy = library.policies[key]
            known = session.get(PublishedPolicy, key)
            if known is not None and known.document_sha256 == _sha256(document):
                return Published(key, changed=False)
            if known is not None and key in used_policies(session, library):
                raise PublishRefused(
                    [Problem(f"published:{key}", "version", f"{key} settled claims already; publish a new version")],
                    immutable=True,
                )
            row = known or PublishedPolicy(policy_key=key)
            row.policy_id, row.version, row.region = policy.id, policy.version, policy.region
            row.valid_from, row.valid_until = policy.valid_from, policy.valid_until
            row.document, row.document_sha256 = document, _sha256(document)
            row.published_at, row.published_by = now, who.user
            session.add(row)
            audit(session, who, "policy.publish", key, {"sha256": row.document_sha256, "replaced": bool(known)}, now)
        return Published(key, changed=True)

    def publish_library(self, files: Library, who: Principal, now: dt.datetime) -> list[str]:
        """Publish the shipped policies not yet published (in include order); the keys published."""
        with Session(self._reader) as session:
            published = set(session.scalars(select(PublishedPolicy.policy_key)))
        done = []
        for key in _include_order(files):
            if key not in published:
                self.publish(Path(files.sources[key]).read_text(encoding="utf-8"), who, now)
                done.append(key)
        return done

    def listing(self) -> list[dict[str, Any]]:
        with Session(self._reader) as session:
            rows = session.scalars(select(PublishedPolicy).order_by(PublishedPolicy.policy_key)).all()
            used = used_policies(session, self.library(session))
            return [
                {
                    "policy": row.policy_key,
                    "region": row.region,
                    "valid_from": row.valid_from.isoformat(),
                    "valid_until": row.valid_until.isoformat() if row.valid_until else None,
                    "published_at": row.published_at.isoformat(),
                    "published_by": row.published_by,
                    "document_sha256": row.document_sha256,
                    "used": row.policy_key in used,
                }
                for row in rows
            ]

    def document(self, key: str) -> str | None:
        with Session(self._reader) as session:
            row = session.get(PublishedPolicy, key)
            return row.document if row else None


def used_policies(session: Session, library: Library) -> set[str]:
    """Every policy version some settlement used, including the versions its policy includes."""
    used: set[str] = set()
    pending = list(session.scalars(select(Settlement.policy).distinct()))
    while pending:
        key = pending.pop()
        if key not in used:
            used.add(key)
            if key in library.policies:
                pending.extend(library.policies[key].includes)
    return used


def _key_of(document: str) -> str | None:
    try:
        data = read_yaml(document)
    except Exception:
        return None
    if isinstance(data, dict) and isinstance(data.get("id"), str) and isinstance(data.get("version"), str | int):
        return f"{data['id']}@{data['version']}"
    return None


def _include_order(library: Library) -> list[str]:
    order: list[str] = []

    def visit(key: str) -> None:
        if key not in order:
            for include in library.policies[key].includes:
                visit(include)
            order.append(key)

    for key in sorted(library.policies):
        visit(key)
    return order
