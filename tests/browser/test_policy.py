"""Policy staff in a browser: the library, one policy with its references, a diff of two versions; then a
reform built in the form (a bad override named as it is typed, in the command line's words), run over an
uploaded dataset with a progress bar, its charts and tables, and its report downloaded."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from playwright.sync_api import Page, expect

from simulation.dataset import write_claims
from simulation.generate import generate
from tests.browser import a11y
from tests.browser.conftest import Server, screenshot, sign_in

GOOD = "jl-meihekou@2014:tiers.medical_assistance.buckets.general.ratio.by_category.dibao=0.90"  # from 0.60


def test_library_show_and_diff(page: Page, server: Server) -> None:
    server.set_clock(dt.datetime(2014, 12, 1, 9, 0))
    sign_in(page, "demo-policy", server.passwords["demo-policy"])
    expect(page.get_by_role("heading", level=1)).to_have_text("政策库")
    a11y.check(page)
    screenshot(page, "policy-library")
    page.get_by_role("link", name="jl-meihekou@2014").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("jl-meihekou@2014")
    expect(page.locator("main")).to_contain_text("2014-01-01")
    expect(page.locator("main")).to_contain_text("社会救助暂行办法")  # a clause reference
    a11y.check(page)
    screenshot(page, "policy-show")
    page.get_by_role("link", name="与上一版本比较").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("比较两个政策版本")
    table = page.locator("table.diff")
    expect(table).to_contain_text("jl-meihekou@2013")
    expect(table).to_contain_text("jl-meihekou@2014")
    expect(table.locator("tbody tr").first).to_be_visible()
    a11y.check(page)
    screenshot(page, "policy-diff")


def test_reform_run_and_charts(page: Page, server: Server, tmp_path: Path) -> None:
    server.set_clock(dt.datetime(2014, 12, 1, 9, 0))
    claims = tmp_path / "small-province.csv"
    write_claims(generate(300, 7), claims)
    sign_in(page, "demo-policy", server.passwords["demo-policy"])
    page.goto("/policy/reform")
    expect(page.get_by_role("heading", level=1)).to_have_text("制定改革方案")
    a11y.check(page)

    # An uploaded population of one's own.
    page.get_by_label("名称").fill("small-province")
    page.get_by_label("文件", exact=True).set_input_files(str(claims))
    page.get_by_role("button", name="上传").click()
    expect(page.get_by_label("结算数据集")).to_have_value("small-province")

    # Overrides are checked as they are typed, with the command line's messages.
    overrides = page.get_by_label("参数修改，每行一条")
    overrides.fill("jl-meihekou@2014:tiers.medical_assistance.buckets.general.caps.annual.default=-5")
    problems = page.locator("#override-check")
    expect(problems).to_contain_text("caps")
    expect(overrides).to_have_attribute("aria-invalid", "true")
    overrides.fill("jl-meihekou@2014 tiers=none")
    expect(problems).to_contain_text("write POLICY@VERSION:PATH=VALUE")
    overrides.fill(GOOD)
    expect(problems).to_contain_text("所有修改均可应用")
    page.get_by_label("基线政策").select_option("jl-meihekou@2014")
    screenshot(page, "policy-reform")
    page.get_by_role("button", name="运行模拟").click()

    # Progress, then the charts and tables.
    expect(page.get_by_role("heading", level=1)).to_have_text("政策模拟")
    expect(page.get_by_role("heading", name="各基金支出")).to_be_visible(timeout=60_000)
    charts = page.locator(".charts svg")
    expect(charts).to_have_count(3)
    expect(charts.first.locator("rect").first).to_be_attached()
    expect(page.locator("main")).to_contain_text("笔结算")
    general = page.locator("tr", has=page.get_by_role("rowheader", name="普通医疗救助 general assistance"))
    expect(general.locator("td").nth(2)).not_to_have_text("0.00")  # the reform pays more general assistance
    a11y.check(page)
    screenshot(page, "policy-results")
    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("报告（Excel）")).click()
    saved = tmp_path / "report.xlsx"
    download.value.save_as(saved)
    assert saved.read_bytes()[:2] == b"PK"
    page.get_by_role("link", name="政策模拟").last.click()
    expect(page.locator("table")).to_contain_text("已完成")
