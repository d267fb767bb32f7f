"""Use cases shared by the CLI (and, later, the HTTP service): quoting claims under a library policy,
and describing and comparing policies. Adapters call these; these call the engine."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from policies.compile import plan_for
from policies.library import LIBRARY_DIR, Library, PolicyError, load_library
from policies.schema import Policy
from settlement.accumulators import AccKey, AccValue, Snapshot, merged
from settlement.claims import Claim, ClaimBatch
from settlement.errors import ClaimError, FieldError
from settlement.explain import explain
from settlement.money import format_yuan
from settlement.waterfall import settle


def open_library(directory: Path | str = LIBRARY_DIR) -> Library:
    """The policy library; refuses to start when any file in it has a problem."""
    library, problems = load_library([directory])
    if problems:
        raise PolicyError(problems)
    return library


def resolve_policy(library: Library, ref: str) -> tuple[Library, str]:
    """A policy named by `id`, `id@version` or a file path -> (library holding it, its reference)."""
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") or path.exists():
        extended, problems = load_library([path], base=library)
        if problems:
            raise PolicyError(problems)
        keys = [key for key, source in extended.sources.items() if Path(source) == path and key in extended.policies]
        if not keys:
            raise PolicyError([])
        return extended, keys[0]
    library.get(ref)  # raises KeyError naming the policy when it does not exist
    return library, ref


def quote_claims(
    library: Library, ref: str, claims: Sequence[Claim], start: Snapshot | None = None
) -> tuple[list[dict[str, Any]], dict[AccKey, AccValue]]:
    """Settle claims in order without recording anything: each under the version of `ref` in force on
    its discharge date, the year-to-date figures carried from one version to the next."""
    state: dict[AccKey, AccValue] = dict(start or {})
    records: dict[str, dict[str, Any]] = {}
    for policy, positions in _by_version(library, ref, claims):
        group = [claims[p] for p in positions]
        plan = plan_for(policy, library)
        try:
            result = settle(plan, ClaimBatch.from_claims(group), state)
        except ClaimError as err:  # name each claim by its place in the caller's list, not in the group
            raise ClaimError([_renumbered(e, positions) for e in err.errors]) from None
        state = merged(state, result.accumulators)
        for i, claim in enumerate(group):
            records[claim.claim_id] = explain(result, i)
    return [records[c.claim_id] for c in claims], state


def _renumbered(error: FieldError, positions: Sequence[int]) -> FieldError:
    match = re.match(r"claims\[(\d+)\](.*)", error.field)
    if match is None:
        return error
    return FieldError(f"claims[{positions[int(match.group(1))]}]{match.group(2)}", error.message)


def _by_version(library: Library, ref: str, claims: Sequence[Claim]) -> Iterator[tuple[Policy, list[int]]]:
    """Positions of the claims under each version of `ref` in force on their discharge dates."""
    groups: dict[str, tuple[Policy, list[int]]] = {}
    for position, claim in enumerate(claims):
        policy = library.get(ref, claim.discharged_on)
        groups.setdefault(policy.key, (policy, []))[1].append(position)
    yield from sorted(groups.values(), key=lambda pg: pg[0].valid_from)


def accumulator_rows(state: dict[AccKey, AccValue]) -> list[dict[str, Any]]:
    return [
        {
            "key": k.key,
            "entity": k.entity,
            "year": k.year,
            "base": format_yuan(v.base),
            "paid": format_yuan(v.paid),
            "claims": v.claims,
        }
        for k, v in sorted(state.items())
    ]


def policy_summary(library: Library) -> list[dict[str, Any]]:
    rows = []
    for key, policy in sorted(library.policies.items()):
        rows.append(
            {
                "policy": key,
                "region": policy.region,
                "valid_from": str(policy.valid_from),
                "valid_until": str(policy.valid_until) if policy.valid_until else "",
                "title": policy.title,
                "tiers": [t.id for _, t in library.composed_tiers(policy)],
            }
        )
    return rows


def composed_view(library: Library, policy: Policy) -> dict[str, Any]:
    """The policy as it settles: dates, and each tier (included ones too) with its parameters."""
    return {
        "policy": policy.key,
        "title": policy.title,
        "region": policy.region,
        "valid_from": str(policy.valid_from),
        "valid_until": str(policy.valid_until) if policy.valid_until else None,
        "rounding": policy.rounding,
        "policy_year_start": policy.policy_year_start,
        "illustrative": policy.illustrative,
        "tiers": {
            tier.id: {
                "from": origin.key,
                **tier.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude={"id"}),
                "references": {
                    k: v.model_dump(mode="json", exclude_none=True)
                    for k, v in origin.references.items()
                    if k in _refs_used(tier.model_dump(mode="json"))
                },
            }
            for origin, tier in library.composed_tiers(policy)
        },
    }


def _refs_used(data: Any) -> set[str]:
    if isinstance(data, dict):
        found = {data["ref"]} if isinstance(data.get("ref"), str) else set()
        for value in data.values():
            found |= _refs_used(value)
        return found
    if isinstance(data, list):
        return set().union(*(_refs_used(v) for v in data)) if data else set()
    return set()


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(data, list) and data and all(isinstance(v, dict) for v in data):
        out = {}
        for i, value in enumerate(data):
            name = value.get("id", i) if isinstance(value, dict) else i
            out.update(_flatten(value, f"{prefix}[{name}]"))
        return out
    return {prefix: data}


ABSENT = object()
"""A parameter one policy does not set at all (as opposed to setting it to `none`)."""

_PROSE = {"title", "title_en", "illustrative", "name", "description", "note", "document", "article", "url"}


def _is_prose(path: str) -> bool:
    parts = path.replace("[", ".").replace("]", "").split(".")
    return parts[-1] in _PROSE or "references" in parts or parts[-1] in ("ref", "from", "policy")


def diff_policies(library: Library, a: Policy, b: Policy, everything: bool = False) -> list[tuple[str, Any, Any]]:
    """Parameter-by-parameter differences between two policies as they settle (includes expanded).
    Titles, notes and references are left out unless `everything`."""
    left = _flatten(composed_view(library, a))
    right = _flatten(composed_view(library, b))
    rows = []
    for path in sorted(set(left) | set(right)):
        if path == "policy" or (not everything and _is_prose(path)):
            continue
        if left.get(path, ABSENT) != right.get(path, ABSENT):
            rows.append((path, left.get(path, ABSENT), right.get(path, ABSENT)))
    return rows
