"""A simulation's output folder: `summary.json`, `report.xlsx` and `report.html` (charts drawn as inline
SVG, so the page opens offline with nothing fetched)."""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from reconciliation.writers import Sheet, xlsx_bytes
from simulation.report import Comparison, yuan

FUND_HEADERS = {
    "name": "基金 fund",
    "baseline": "基线 baseline",
    "reform": "改革 reform",
    "difference": "差额 difference",
    "recipients_baseline": "受益人数（基线）recipients, baseline",
    "recipients_reform": "受益人数（改革）recipients, reform",
    "per_recipient_baseline": "人均（基线）per recipient, baseline",
    "per_recipient_reform": "人均（改革）per recipient, reform",
}
GROUP_HEADERS = {"group": "组 group", "claims": "结算数 claims", "baseline": "基线 baseline", "reform": "改革 reform"}
GROUP_HEADERS |= {"difference": "差额 difference"}


def write(
    folder: Path, comparison: Comparison, summary: dict[str, Any], person_ids: Callable[[str], str] = str
) -> list[Path]:
    """The three files; `person_ids` turns each person number the report names (the movers) into what it
    shows, in every file alike (the command and the jobs pass doudi.masking.identifier: a report for policy
    staff needs no one's full number)."""
    folder.mkdir(parents=True, exist_ok=True)
    summary = shown_summary(summary, person_ids)
    written = []
    path = folder / "summary.json"
    path.write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    written.append(path)
    path = folder / "report.xlsx"
    path.write_bytes(workbook(comparison, summary, person_ids))
    written.append(path)
    path = folder / "report.html"
    path.write_text(page(comparison, summary), encoding="utf-8")  # drawn from the summary as shown above
    written.append(path)
    return written


def shown_summary(summary: dict[str, Any], person_ids: Callable[[str], str] = str) -> dict[str, Any]:
    """The summary with each person number among its movers as `person_ids` shows it (a copy)."""
    movers = summary.get("movers")
    if person_ids is str or not isinstance(movers, list):
        return summary
    shown = [{**row, "person_id": person_ids(str(row["person_id"]))} if "person_id" in row else row for row in movers]
    return {**summary, "movers": shown}


def workbook(comparison: Comparison, summary: dict[str, Any], person_ids: Callable[[str], str] = str) -> bytes:
    title = f"政策模拟 policy simulation: {summary.get('baseline_label', '')} → {summary.get('reform_label', '')}"
    money = ("baseline", "reform", "difference", "per_recipient_baseline", "per_recipient_reform")
    sheets = [Sheet("基金 funds", comparison.funds, FUND_HEADERS, money, (), (title,))]
    for dimension, table in comparison.by_group.items():
        sheets.append(Sheet(f"按{dimension}", table, GROUP_HEADERS, ("baseline", "reform", "difference"), ("claims",)))
    sheets.append(
        Sheet(
            "负担 burden",
            comparison.burden,
            {"percentile": "分位 percentile", "baseline": "基线 baseline", "reform": "改革 reform"},
            ("baseline", "reform"),
        )
    )
    movers = {"side": "", "person_id": "人员 person", "category": "救助身份", "baseline": "基线负担"}
    movers |= {"reform": "改革负担", "change": "变化 change"}
    shown = comparison.movers
    if "person_id" in shown.columns and person_ids is not str:
        shown = shown.assign(person_id=shown["person_id"].astype(str).map(person_ids))
    sheets.append(Sheet("变化最大 movers", shown, movers, ("baseline", "reform", "change")))
    caps = {"fund": "基金 fund", "baseline": "封顶结算数（基线）", "reform": "封顶结算数（改革）"}
    sheets.append(Sheet("封顶 caps", comparison.caps, caps))
    return xlsx_bytes(sheets, dt.datetime(2000, 1, 1))


def bars(title: str, labels: Sequence[str], series: dict[str, Sequence[float]], unit: str) -> str:
    """A grouped bar chart as SVG (values may be negative)."""
    width, row, left = 760, 26, 230
    colors = ["#4b77a9", "#e07b39", "#5a9e6f"]
    values = [v for s in series.values() for v in s] or [0.0]
    low, high = min(0.0, *values), max(0.0, *values)
    span = (high - low) or 1.0
    scale = (width - left - 90) / span
    zero = left + (-low) * scale
    height = 40 + len(labels) * row * len(series) + 30
    parts = [
        f'<svg role="img" aria-label="{html.escape(title)}" viewBox="0 0 {width} {height}" width="100%">',
        f'<text x="0" y="18" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{zero:.1f}" y1="28" x2="{zero:.1f}" y2="{height - 20}" stroke="#999"/>',
    ]
    y = 34
    for i, label in enumerate(labels):
        parts.append(f'<text x="0" y="{y + 14}" font-size="12">{html.escape(str(label))}</text>')
        for j, (name, data) in enumerate(series.items()):
            value = float(data[i])
            x = min(zero, zero + value * scale)
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{abs(value) * scale:.1f}" height="{row - 6}" '
                f'fill="{colors[j % len(colors)]}"><title>{html.escape(name)}: {value:,.2f} {unit}</title></rect>'
            )
            parts.append(
                f'<text x="{max(x + abs(value) * scale, zero) + 4:.1f}" y="{y + 14}" font-size="11">{value:,.0f}</text>'
            )
            y += row
        y += 4
    legend_x = left
    for j, name in enumerate(series):
        parts.append(
            f'<rect x="{legend_x}" y="{height - 16}" width="12" height="12" fill="{colors[j % len(colors)]}"/>'
        )
        parts.append(f'<text x="{legend_x + 16}" y="{height - 6}" font-size="12">{html.escape(name)}</text>')
        legend_x += 160
    parts.append("</svg>")
    return "\n".join(parts)


def _table(rows: list[dict[str, Any]], headers: dict[str, str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers.values())
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(row.get(k, '')))}</td>" for k in headers) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(comparison: Comparison, summary: dict[str, Any]) -> str:
    funds = comparison.funds[comparison.funds["fund"] != "total"]
    spending = bars(
        "各基金支出 spending by fund (yuan)",
        list(funds["name"]),
        {"baseline": list(funds["baseline"] / 100), "reform": list(funds["reform"] / 100)},
        "yuan",
    )
    burden = bars(
        "个人负担分布 patient burden per claim, percentiles (yuan)",
        [f"p{p}" for p in comparison.burden["percentile"]],
        {"baseline": list(comparison.burden["baseline"] / 100), "reform": list(comparison.burden["reform"] / 100)},
        "yuan",
    )
    category = comparison.by_group["category"]
    gains = bars(
        "按救助身份的基金支出变化 change in fund spending by category (yuan)",
        list(category["group"]),
        {"reform − baseline": list(category["difference"] / 100)},
        "yuan",
    )
    c = comparison.catastrophic
    fund_rows = summary["funds"]
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>Doudi 政策模拟 policy simulation</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1000px; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
</style></head><body>
<h1>政策模拟 Policy simulation</h1>
<p>基线 baseline: {html.escape(str(summary.get("baseline_label", "")))}<br>
改革 reform: {html.escape(str(summary.get("reform_label", "")))}<br>
{comparison.claims:,} claims, {comparison.people:,} people, {comparison.households:,} households
({html.escape(str(summary.get("claims_file", "")))}).</p>
<h2>各基金 By fund</h2>
{_table(fund_rows, FUND_HEADERS)}
{spending}
<h2>个人负担 Burden</h2>
{burden}
<p>灾难性卫生支出 catastrophic health expenditure (household burden ≥ {comparison.threshold:.0%} of annual
income): baseline {c["baseline"]:,} households ({c["share_baseline"]:.2%}), reform {c["reform"]:,}
({c["share_reform"]:.2%}).</p>
<h2>按救助身份 By category</h2>
{gains}
{_table(summary["by"]["category"], GROUP_HEADERS)}
<h2>按医院级别 By hospital level</h2>
{_table(summary["by"]["hospital_level"], GROUP_HEADERS)}
<h2>按地区 By region</h2>
{_table(summary["by"]["region"], GROUP_HEADERS)}
<h2>按救助病种 By assistance bucket</h2>
{_table(summary["by"]["disease"], GROUP_HEADERS)}
<h2>封顶 Caps reached (claims)</h2>
{_table(summary["caps_reached"], {"fund": "fund", "baseline": "baseline", "reform": "reform"})}
<p>Total spending difference: {yuan(int(comparison.funds.iloc[-1]["difference"]))} yuan.</p>
</body></html>
"""
