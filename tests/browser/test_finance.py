"""Finance in a browser: the month and its hospitals, downloads, a hospital's own file with differences
(grouped by kind, each row linked to its settlement), and closing the month with confirmation."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from decimal import Decimal
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser import a11y
from tests.browser.conftest import ROOT, Server, screenshot, sign_in

FAMILY = json.loads((ROOT / "examples/family-year.json").read_text(encoding="utf-8"))["claims"]


def _hospital_file_with_differences(national_zip: bytes, folder: Path) -> tuple[Path, str]:
    """The hospital's own version of its national file, as a GBK CSV: one row dropped, one amount a fen off,
    one row the ledger never saw. Returns the file and the settlement id whose amount differs."""
    with zipfile.ZipFile(io.BytesIO(national_zip)) as archive:
        lines = archive.read(archive.namelist()[0]).decode("utf-8").splitlines()
    header, rows = lines[0].split("\t"), [line.split("\t") for line in lines[1:]]
    rows.pop(2)  # a settlement the hospital left out
    rows[0][4] = str(Decimal(rows[0][4]) + Decimal("0.01"))
    rows.append(["F" * 32, "HIS-X", "MHK-P-0001", "100.00", "50.00", "0.00", "0", "null"])
    path = folder / "JL-PROV-H001-2014-06.csv"
    path.write_bytes(("\n".join(",".join(r) for r in [header, *rows]) + "\n").encode("gbk"))
    return path, rows[0][0]


def test_month_download_match_and_close(page: Page, server: Server, tmp_path: Path) -> None:
    # June at the provincial hospital: three settlements, one reversed; then July has begun.
    server.set_clock(dt.datetime(2014, 6, 15, 9, 0))
    settled = [server.api("POST", "/v1/settlements", "demo-desk", json=FAMILY[i]).json() for i in (0, 1, 2)]
    server.set_clock(dt.datetime(2014, 6, 20, 9, 0))
    reversal = server.api(
        "POST", f"/v1/settlements/{settled[0]['setl_id']}/reversal", "demo-desk", json={"reason": "x"}
    )
    assert reversal.status_code == 201, reversal.text
    server.set_clock(dt.datetime(2014, 7, 2, 9, 0))

    sign_in(page, "demo-finance", server.passwords["demo-finance"])
    expect(page.get_by_role("heading", level=1)).to_have_text("月度对账")
    a11y.check(page)
    screenshot(page, "finance-months")
    page.get_by_role("link", name="2014-06").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("2014-06 对账单")
    hospitals = page.locator("table").first
    expect(hospitals).to_contain_text("JL-PROV-H001")
    expect(hospitals).to_contain_text("平衡")
    a11y.check(page)
    screenshot(page, "finance-month")

    with page.expect_download() as download:
        page.get_by_role("link", name="完整对账单（Excel）").click()
    workbook = tmp_path / "statement.xlsx"
    download.value.save_as(workbook)
    assert workbook.read_bytes()[:2] == b"PK"

    # The hospital's page: its statement, its national file, and its own file compared.
    page.get_by_role("link", name="JL-PROV-H001", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("JL-PROV-H001")
    with page.expect_download() as download:
        page.get_by_role("link", name="JL-PROV-H001 国家平台明细文件").click()
    national = tmp_path / "national.zip"
    download.value.save_as(national)
    theirs, differing = _hospital_file_with_differences(national.read_bytes(), tmp_path)
    page.get_by_label("医院的对账文件").set_input_files(str(theirs))
    page.get_by_role("button", name="比对").click()
    expect(page.locator(".result .banner")).to_contain_text("不一致")
    for kind in ("amount_differs", "doudi_only", "hospital_only"):
        expect(page.locator(f"table.differences[data-kind={kind}]")).to_be_visible()
    a11y.check(page)
    screenshot(page, "finance-match")
    page.locator("table.differences[data-kind=amount_differs]").get_by_role("link", name=differing).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("医疗费用一站式结算单")
    expect(page.locator(".slip")).to_contain_text(differing)
    page.goto("/finance/2014-06")  # the comparison was a POST, not kept in the history (no-store)

    # Closing asks for the box and the month typed again; then the month is marked closed and frozen.
    page.get_by_role("button", name="月结 2014-06").click()
    expect(page.locator("#e-month_again")).to_be_visible()
    page.get_by_label("我已核对对账单和各医院的对账文件。").check()
    page.get_by_label("请输入月份（2014-06）以确认").fill("2014-06")
    page.get_by_role("button", name="月结 2014-06").click()
    expect(page.locator("p.lead .tag.closed")).to_have_text("已月结")
    expect(page.locator("main")).to_contain_text("本月已月结并冻结")
    screenshot(page, "finance-closed")
    page.get_by_role("link", name="月度对账").click()
    row = page.locator("tr", has=page.get_by_role("link", name="2014-06"))
    expect(row).to_contain_text("已月结")
    expect(row).to_contain_text("demo-finance")
