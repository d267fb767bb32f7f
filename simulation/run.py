"""Settling a population of past claims under a scenario (a library and which policy governs each insured
area) with the engine's batch path: the same code the billing desk runs, so that each claim's result is
what the desk would have paid, to the fen.

Each area's claims are settled together, person by person in settlement order, across the versions of its
policy in force on their discharge dates (year-to-date figures carried from one version to the next, as
`doudi.services.quote_claims` does for the desk). What comes out is, per claim, each fund's payment, the
family's burden and which funds hit a cap.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from policies.compile import plan_for
from policies.library import Library
from reconciliation.frames import fund_key
from settlement.accumulators import Snapshot, merged
from settlement.claims import ClaimBatch
from settlement.codes import REASON_CODE
from settlement.plan import Plan
from settlement.waterfall import BatchResult, settle

Int64Array = npt.NDArray[np.int64]
Progress = Callable[[str], None]

_CAPPED = (REASON_CODE["capped"], REASON_CODE["cap_reached"])


class ScenarioError(ValueError):
    """The scenario cannot settle these claims (an area without a policy, a date without a version)."""


@dataclass(frozen=True)
class Scenario:
    """Which policy settles each insured area's claims. A policy id follows the versions in force on each
    claim's discharge date, as the desks did; `id@version` applies that one version to every claim,
    whatever its date ("had the 2013 rules stayed in force")."""

    name: str
    library: Library
    policies: Mapping[str, str]  # insured area -> policy id or id@version; "*" for every area not named

    def problems(self) -> list[str]:
        """What would stop this scenario settling any claim: a policy the library does not hold."""
        found = []
        for area, policy in sorted(self.policies.items()):
            where = "every insured area" if area == "*" else f"insured area {area}"
            known = policy in self.library.policies if "@" in policy else bool(self.library.versions(policy))
            if not known:
                have = sorted({p.id for p in self.library.policies.values()})
                found.append(f"{self.name}: no policy {policy!r} for {where} (there is: {', '.join(have)})")
        return found


@dataclass(frozen=True)
class Settled:
    """Per claim (in the dataset's row order): each fund's payment and whether the fund capped it."""

    funds: list[str]  # fund keys in payment order
    paid: Int64Array  # claims x funds, fen
    capped: npt.NDArray[np.bool_]  # claims x funds
    policy: npt.NDArray[np.object_]  # the policy version each claim was settled under

    @property
    def fund_paid(self) -> Int64Array:
        total: Int64Array = self.paid.sum(axis=1)
        return total

    def column(self, fund: str) -> Int64Array:
        if fund not in self.funds:
            return np.zeros(self.paid.shape[0], np.int64)
        result: Int64Array = self.paid[:, self.funds.index(fund)]
        return result

    def capped_in(self, fund: str) -> npt.NDArray[np.bool_]:
        """Claims on which the fund paid less than it would have without a cap."""
        if fund not in self.funds:
            return np.zeros(self.paid.shape[0], np.bool_)
        result: npt.NDArray[np.bool_] = self.capped[:, self.funds.index(fund)]
        return result


def subset(batch: ClaimBatch, rows: Int64Array) -> ClaimBatch:
    """The claims at `rows` (in that order) as a batch of their own."""
    position = np.full(len(batch), -1, np.int64)
    position[rows] = np.arange(len(rows))
    keep = position[batch.dx_claim] >= 0
    columns = {
        name: getattr(batch, name)[rows]
        for name in (
            "claim_id", "person", "household", "scheme", "category", "level", "visit", "discharged_on",
            "settled_at", "total", "fully_self_paid", "over_limit_self_paid", "pre_self_paid", "third_party",
            "approval", "grant_total", "dx_principal",
        )
    }  # fmt: skip
    if len(batch.claim_id) != len(batch):
        columns["claim_id"] = batch.claim_id  # a working copy without ids stays without
    return dataclasses.replace(
        batch,
        dx_claim=position[batch.dx_claim[keep]],
        dx_code=batch.dx_code[keep],
        claims=tuple(batch.claims[i] for i in rows) if batch.claims is not None else None,
        **columns,
    )


def settle_scenario(
    scenario: Scenario,
    regions: npt.NDArray[np.object_] | pd.Series,
    batch: ClaimBatch,
    progress: Progress | None = None,
) -> Settled:
    """Settle every claim under `scenario`; `regions[i]` is claim i's insured area."""
    region_codes, region_values = pd.factorize(
        regions if isinstance(regions, pd.Series) else pd.Series(regions, dtype=object)
    )
    policy_of_region = []
    for region in region_values:
        policy_id = scenario.policies.get(str(region), scenario.policies.get("*"))
        if policy_id is None:
            raise ScenarioError(f"{scenario.name}: no policy is given for insured area {region}")
        policy_of_region.append(policy_id)
    n = len(batch)
    parts: list[tuple[Int64Array, Plan, BatchResult]] = []
    chosen = np.empty(n, dtype=object)
    for policy_id in sorted(set(policy_of_region)):
        regions_here = [i for i, p in enumerate(policy_of_region) if p == policy_id]
        rows = np.flatnonzero(np.isin(region_codes, regions_here))
        if progress:
            progress(f"{scenario.name}: {len(rows):,} claims under {policy_id}")
        state: Snapshot = {}
        versions = _by_version(scenario.library, policy_id, batch.discharged_on[rows], rows)
        for number, (version_rows, plan, key) in enumerate(versions, start=1):
            whole = len(version_rows) == n  # every claim, in order: no copy needed
            result = settle(plan, batch if whole else subset(batch, version_rows), state, trace=True)
            parts.append((version_rows, plan, result))
            chosen[version_rows] = key
            if number < len(versions):  # carried into the next version's claims
                state = merged(state, result.accumulators)
    return _collect(n, parts, chosen)


def _by_version(
    library: Library, policy_id: str, days: npt.NDArray[np.datetime64], rows: Int64Array
) -> list[tuple[Int64Array, Plan, str]]:
    if "@" in policy_id:
        if policy_id not in library.policies:
            raise ScenarioError(f"no policy {policy_id!r} in the library")
        plan = plan_for(library.policies[policy_id], library)
        # One version for every claim: the engine checks a claim's date against the plan's, so the plan
        # says it is in force throughout. Every rule is the version's own.
        always = dataclasses.replace(plan, valid_from=dt.date.min, valid_until=None)
        return [(rows, always, policy_id)]
    versions = library.versions(policy_id)
    if not versions:
        raise ScenarioError(f"no policy {policy_id!r} in the library")
    out = []
    covered = np.zeros(len(rows), bool)
    for policy in versions:
        start = np.datetime64(policy.valid_from, "D")
        inside = days >= start
        if policy.valid_until is not None:
            inside &= days <= np.datetime64(policy.valid_until, "D")
        if inside.any():
            out.append((rows[inside], plan_for(policy, library), policy.key))
            covered |= inside
    if not covered.all():
        first = str(days[~covered][0])
        raise ScenarioError(f"no version of {policy_id} is in force on {first} (claims discharged that day)")
    return out


def _collect(n: int, parts: list[tuple[Int64Array, Plan, BatchResult]], chosen: npt.NDArray[np.object_]) -> Settled:
    funds: list[str] = []
    for _, plan, result in parts:
        for tier, columns in zip(plan.tiers, result.tiers, strict=True):
            for key in _tier_funds(tier.stage, [b.id for b in tier.buckets], columns.bucket):
                if key not in funds:
                    funds.append(key)
    order = {"basic_insurance": 0, "critical_illness": 1, "temporary_aid": 3, "grants": 4}
    funds.sort(key=lambda f: (order.get(f, 2), f))
    paid = np.zeros((n, len(funds)), np.int64)
    capped = np.zeros((n, len(funds)), bool)
    for rows, plan, result in parts:
        for tier, columns in zip(plan.tiers, result.tiers, strict=True):
            bucket_ids = [b.id for b in tier.buckets]
            if tier.stage == "medical_assistance" and columns.bucket is not None:
                keys = np.array([funds.index(fund_key(tier.stage, b)) for b in bucket_ids], np.int64)
                which = keys[np.maximum(columns.bucket, 0)]
            else:
                which = np.full(len(rows), funds.index(fund_key(tier.stage, bucket_ids[0] if bucket_ids else "")))
            np.add.at(paid, (rows, which), columns.paid)
            capped[rows, which] |= np.isin(columns.reason, _CAPPED)
    return Settled(funds, paid, capped, chosen)


def _tier_funds(stage: str, bucket_ids: list[str], used: Int64Array | None) -> list[str]:
    if stage == "medical_assistance":
        return [fund_key(stage, b) for b in bucket_ids]
    return [fund_key(stage, bucket_ids[0] if bucket_ids else "")]
