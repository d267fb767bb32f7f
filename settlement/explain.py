"""What a settlement returns: the per-tier trace with clause references, and the national platform's view.

`explain(result, i)` turns claim i of a batch result into a plain record (amounts as yuan text with two
places) that the CLI prints, the service stores and the slip shows. The national view uses the platform's
field names (`setlinfo`, `setldetail`) so that a HIS integrator or a finance clerk recognises every one.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any, Final

from settlement.codes import (
    CATEGORIES,
    EXCLUSIONS,
    HOSPITAL_LEVELS,
    NHSA_FUND_FIELDS,
    REASONS,
    SCHEMES,
    VISIT_TYPES,
)
from settlement.money import NO_CAP, fen_from_decimal, format_yuan, ratio_decimal
from settlement.plan import BucketPlan, ClauseRef, TierPlan
from settlement.tiers import TierColumns
from settlement.waterfall import BatchResult

# The national platform's common codes (provinces may vary; the integration layer maps them).
INSUTYPE: Final = {"employee": "310", "resident": "390", "none": None}
MED_TYPE: Final = {"inpatient": "21", "chronic_outpatient": "14", "outpatient": "11"}
SETL_PROC_INFO_LIMIT: Final = 4000


# A record holds some seventy amounts and a dozen ratios, most of them values every record has (nothing
# paid, a cap, a deductible, a tier's ratio): looked up, a record costs a fifth less to make.
_money = functools.lru_cache(maxsize=16_384)(format_yuan)


def _cap(fen: int) -> str | None:
    return None if fen >= NO_CAP else _money(fen)


@functools.lru_cache(maxsize=1_024)
def _ratio(value: int) -> str:
    return str(ratio_decimal(value))


@functools.lru_cache(maxsize=4096)
def _bands(bucket: BucketPlan, category: int, level: int) -> list[dict[str, str | None]]:
    """A bucket's bands for one category and level (shared between records: never change a record)."""
    return [
        {"from": _money(low), "to": _cap(high), "ratio": _ratio(ratio)}
        for low, high, ratio in zip(
            bucket.band_low.tolist(),
            bucket.band_high.tolist(),
            bucket.ratio[category, level].tolist(),
            strict=True,
        )
    ]


def _tier_record(tier: TierPlan, columns: TierColumns, result: BatchResult, i: int, year: int) -> dict[str, Any]:
    batch = result.batch
    reason = REASONS[columns.reason.item(i)]
    record: dict[str, Any] = {
        "tier": tier.id,
        "name": tier.name,
        "stage": tier.stage,
        "fund_pay_type": tier.fund_pay_type,
        "fund_name": tier.fund_name,
        "policy": f"{tier.policy_id}@{tier.policy_version}",
        "region": tier.region,
        "rounding": tier.rounding,
        "eligible": reason not in EXCLUSIONS,
        "reason": reason,
        "paid": _money(columns.paid.item(i)),
    }
    if columns.base is None:
        return record
    assert columns.bucket is not None and columns.deductible is not None and columns.ratio is not None
    assert columns.claim_cap is not None and columns.cap_left is not None
    record.update(
        scope=tier.scope,
        basis=tier.basis,
        base=_money(columns.base.item(i)),
        deductible=_money(columns.deductible.item(i)),
        ratio=_ratio(columns.ratio.item(i)),
        cap_per_claim=_cap(columns.claim_cap.item(i)),
        annual_cap_left=_cap(columns.cap_left.item(i)),
    )
    references = list(tier.references)
    bucket_index = columns.bucket.item(i)
    if tier.buckets and bucket_index >= 0:
        bucket = tier.buckets[bucket_index]
        category, level = batch.category.item(i), batch.level.item(i)
        references = list(bucket.references)
        record["bucket"] = bucket.id
        record["bucket_name"] = bucket.name
        if bucket.disease_list is not None:
            record["disease_list"] = bucket.disease_list.id
        if tier.basis == "annual":
            record["bands"] = list(_bands(bucket, category, level))
            record["annual_deductible"] = _money(bucket.annual_deductible[category, level])
        if bucket.accumulator is not None and record["eligible"] and reason != "below_threshold":
            assert columns.acc_base_before is not None and columns.acc_base_after is not None
            assert columns.acc_paid_before is not None and columns.acc_paid_after is not None
            spec = bucket.accumulator
            entity = batch.person_ids if spec.per == "person" else batch.household_ids
            code = batch.person if spec.per == "person" else batch.household
            record["accumulator"] = {
                "key": spec.key,
                "per": spec.per,
                "entity": str(entity[code[i]]),
                "year": year,
                "base_before": _money(columns.acc_base_before.item(i)),
                "base_after": _money(columns.acc_base_after.item(i)),
                "paid_before": _money(columns.acc_paid_before.item(i)),
                "paid_after": _money(columns.acc_paid_after.item(i)),
            }
    record["references"] = list(_references(tuple(references)))
    return record


@functools.lru_cache(maxsize=4096)
def _references(refs: tuple[ClauseRef, ...]) -> tuple[dict[str, Any], ...]:
    """The reference records of a tier or bucket, built once (shared between records: never change one)."""
    return tuple(_reference_fields(ref) for ref in refs)


def _reference_fields(ref: ClauseRef) -> dict[str, Any]:
    """A reference as a record cites it: the parameter, the document and article, and whether the number is
    illustrative. Not its `note`: that prose (why an illustrative number was chosen, what an article says)
    stays with the policy version named by the tier's `policy`, which cannot change once it has settled a
    claim. Several parameters share one source and its note, so every record repeated it: a third of a
    Meihekou settlement's 19 kB, stored with every settlement and sent in every answer (BENCHMARKS.md)."""
    out: dict[str, Any] = {"parameter": ref.parameter, "document": ref.document}
    for name in ("article", "url"):
        value = getattr(ref, name)
        if value:
            out[name] = value
    if ref.illustrative:
        out["illustrative"] = True
    return out


def _cites(references: tuple[dict[str, Any], ...]) -> str:
    return "; ".join(
        f"{r['parameter']}: {r['document']}" + (f" {r['article']}" if "article" in r else "") for r in references
    )


def _proc_info(record: dict[str, Any]) -> str:
    """结算过程信息: the tier's trace in one line, for the platform's setl_proc_info field."""
    parts = [f"{record['name']}: {record['reason']}"]
    for label in ("base", "deductible", "ratio", "cap_per_claim", "annual_cap_left", "paid"):
        if record.get(label) is not None:
            parts.append(f"{label} {record[label]}")
    cites = _cites(tuple(record.get("references", ())))
    text = ", ".join(parts) + (f" [{cites}]" if cites else "")
    return text[:SETL_PROC_INFO_LIMIT]


def explain(result: BatchResult, i: int) -> dict[str, Any]:
    """Claim i of a batch result as a settlement record (amounts as yuan text)."""
    batch = result.batch
    plan = result.plan
    year = result.year.item(i)
    tiers = [
        _tier_record(tier, columns, result, i, year) for tier, columns in zip(plan.tiers, result.tiers, strict=True)
    ]
    total = batch.total.item(i)
    in_scope = batch.in_scope.item(i)
    fund_paid = sum(c.paid.item(i) for c in result.tiers)
    by_field = dict.fromkeys(NHSA_FUND_FIELDS, 0)
    deductible_paid = 0
    pool_ratio = 0
    first_basic = True
    for tier, columns in zip(plan.tiers, result.tiers, strict=True):
        by_field[tier.nhsa_field] += columns.paid.item(i)
        if tier.stage == "basic_insurance" and columns.deductible is not None and columns.ratio is not None:
            deductible_paid += columns.deductible.item(i)
            if first_basic:
                pool_ratio = columns.ratio.item(i) if columns.paid.item(i) > 0 else 0
                first_basic = False
    burden = total - fund_paid
    scheme = SCHEMES[batch.scheme.item(i)]
    setlinfo = {
        "psn_no": str(batch.person_ids[batch.person[i]]),
        "insutype": INSUTYPE[scheme],
        "med_type": MED_TYPE[VISIT_TYPES[batch.visit.item(i)]],
        "medins_setl_id": str(batch.claim_id[i]),
        "setl_time": str(batch.settled_at[i].astype("datetime64[s]")).replace("T", " "),
        "medfee_sumamt": _money(total),
        "fulamt_ownpay_amt": _money(batch.fully_self_paid.item(i)),
        "overlmt_selfpay": _money(batch.over_limit_self_paid.item(i)),
        "preselfpay_amt": _money(batch.pre_self_paid.item(i)),
        "inscp_scp_amt": _money(in_scope),
        "act_pay_dedc": _money(deductible_paid),
        **{name: _money(by_field[name]) for name in NHSA_FUND_FIELDS},
        "pool_prop_selfpay": _ratio(pool_ratio),
        "fund_pay_sumamt": _money(fund_paid),
        "psn_part_amt": _money(burden),
        "hosp_part_amt": "0.00",
        "acct_pay": "0.00",
        "psn_cash_pay": _money(burden),
    }
    setldetail = []
    for tier, columns, record in zip(plan.tiers, result.tiers, tiers, strict=True):
        if columns.paid.item(i) == 0:
            continue
        limit = columns.paid.item(i)
        if columns.base is not None and columns.claim_cap is not None and columns.cap_left is not None:
            limit = min(columns.base.item(i), columns.claim_cap.item(i), columns.cap_left.item(i))
        setldetail.append(
            {
                "fund_pay_type": tier.fund_pay_type,
                "fund_pay_type_name": tier.fund_name,
                "inscp_scp_amt": _money(columns.base.item(i)) if columns.base is not None else _money(in_scope),
                "crt_payb_lmt_amt": _money(limit),
                "fund_payamt": _money(columns.paid.item(i)),
                "setl_proc_info": _proc_info(record),
            }
        )
    grants = []
    claims = batch.claims
    if claims is not None:
        left = next((c.paid.item(i) for t, c in zip(plan.tiers, result.tiers, strict=True) if t.stage == "grants"), 0)
        for grant in claims[i].grants:
            share = min(left, fen_from_decimal(grant.amount))
            left -= share
            grants.append({"payer": grant.payer, "granted": f"{grant.amount}", "paid": _money(share)})
    return {
        "claim_id": str(batch.claim_id[i]),
        "person_id": str(batch.person_ids[batch.person[i]]),
        "household_id": str(batch.household_ids[batch.household[i]]),
        "category": CATEGORIES[batch.category.item(i)],
        "insurance_scheme": scheme,
        "visit_type": VISIT_TYPES[batch.visit.item(i)],
        "hospital_level": HOSPITAL_LEVELS[batch.level.item(i)],
        "policy": {"id": plan.policy_id, "version": plan.version, "region": plan.region, "title": plan.title},
        "policy_year": year,
        "inpatient_admissions_before": result.admissions_before.item(i),
        "amounts": {
            "total": _money(total),
            "fully_self_paid": _money(batch.fully_self_paid.item(i)),
            "over_limit_self_paid": _money(batch.over_limit_self_paid.item(i)),
            "pre_self_paid": _money(batch.pre_self_paid.item(i)),
            "in_scope": _money(in_scope),
        },
        "tiers": tiers,
        "grants": grants,
        "fund_paid": _money(fund_paid),
        "patient_burden": _money(burden),
        "nhsa": {"setlinfo": setlinfo, "setldetail": setldetail},
    }


def identity_problems(setlinfo: dict[str, Any]) -> list[str]:
    """The national interface's identities on a setlinfo record; an empty list when all hold."""

    def d(name: str) -> Decimal:
        return Decimal(setlinfo[name])

    problems = []
    if d("medfee_sumamt") != d("fund_pay_sumamt") + d("psn_part_amt") + d("hosp_part_amt"):
        problems.append("medfee_sumamt != fund_pay_sumamt + psn_part_amt + hosp_part_amt")
    if d("fund_pay_sumamt") != sum((d(name) for name in NHSA_FUND_FIELDS), Decimal(0)):
        problems.append("fund_pay_sumamt != hifp + cvlserv + hifes + hifmi + hifob + maf + oth")
    if d("psn_part_amt") != d("acct_pay") + d("psn_cash_pay"):
        problems.append("psn_part_amt != acct_pay + psn_cash_pay")
    scope = d("medfee_sumamt") - d("fulamt_ownpay_amt") - d("overlmt_selfpay") - d("preselfpay_amt")
    if d("inscp_scp_amt") != scope:
        problems.append("inscp_scp_amt != medfee_sumamt − fulamt_ownpay_amt − overlmt_selfpay − preselfpay_amt")
    return problems
