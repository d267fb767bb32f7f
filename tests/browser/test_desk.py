"""The billing desk in a browser: find a person, enter a stay by keyboard with the disease search, quote,
settle, print the slip on A4, reverse it with a reason; and a bad amount named next to its field."""

from __future__ import annotations

import datetime as dt
import re

from playwright.sync_api import Page, expect

from tests.browser import a11y
from tests.browser.conftest import Server, screenshot, sign_in


def test_quote_settle_print_and_reverse(page: Page, server: Server) -> None:
    server.set_clock(dt.datetime(2014, 12, 1, 9, 0))
    sign_in(page, "demo-desk", server.passwords["demo-desk"])
    expect(page.get_by_role("heading", level=1)).to_have_text("结算窗口")
    a11y.check(page)
    screenshot(page, "desk-home")

    # Find the person: category periods and what is left under each cap this year.
    page.get_by_label("人员编号").fill("MHK-P-0001")
    page.get_by_label("人员编号").press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("MHK-P-0001")
    expect(page.locator("main")).to_contain_text("低保对象")
    expect(page.locator("main")).to_contain_text("不封顶")  # Meihekou 2014: no cap on catastrophic assistance
    a11y.check(page)
    screenshot(page, "desk-person")

    # Enter the stay the way a clerk would: the keyboard, and the disease search for the code.
    page.get_by_role("link", name="为此人录入就诊信息").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("录入就诊信息")
    a11y.check(page)
    page.get_by_label("入院日期").fill("2014-05-06")
    page.get_by_label("出院日期").fill("2014-06-12")
    page.get_by_label("结算时间").fill("2014-06-12T10:20")
    page.get_by_label("检索病种目录").fill("白血病")
    page.get_by_role("button", name=re.compile("加入 C9")).first.click()
    expect(page.get_by_label("诊断（ICD-10）")).to_have_value(re.compile(r"C9"))
    page.get_by_label("诊断（ICD-10）").fill("C91.0")
    page.get_by_label("医疗费总额").fill("236000.00")
    page.get_by_label("全自费").fill("21000.00")
    page.get_by_label("先行自付（乙类）").fill("9000.00")
    page.get_by_text("审批、捐助、第三方责任").click()
    page.get_by_label("慈善捐助来源").fill("梅河口市红十字会 小天使救助基金")
    page.get_by_label("捐助金额（元）").fill("100000.00")
    screenshot(page, "desk-stay")
    page.get_by_role("button", name="预结算").click()

    # The quote: every fund's share with the reason, and nothing recorded yet.
    expect(page.get_by_role("heading", level=1)).to_have_text("预结算")
    split = page.locator("table.split")
    expect(split).to_contain_text("城乡居民基本医疗保险基金")
    expect(split).to_contain_text("100,000.00")
    expect(split.locator("tr.family")).to_contain_text("0.00")
    a11y.check(page)
    screenshot(page, "desk-quote")
    page.get_by_role("button", name="结算", exact=True).click()

    # The slip, then the slip as printed: only the slip, on A4.
    expect(page.get_by_role("heading", level=1)).to_have_text("医疗费用一站式结算单")
    setl_id = page.url.rsplit("/", 1)[1]
    expect(page.locator(".slip")).to_contain_text(setl_id)
    expect(page.locator(".slip")).to_contain_text("示例甲 (demo)")
    expect(page.locator(".slip")).to_contain_text("jl-meihekou@2014")
    a11y.check(page)
    screenshot(page, "desk-slip")
    page.emulate_media(media="print")
    expect(page.locator("header.top")).to_be_hidden()
    expect(page.get_by_role("button", name="打印结算单")).to_be_hidden()
    expect(page.locator(".slip")).to_be_visible()
    expect(page.locator(".slip")).to_contain_text("个人负担")
    pdf = page.pdf(format="A4", print_background=False, prefer_css_page_size=True)
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert 1 <= pages <= 2, f"the slip printed on {pages} A4 pages"
    screenshot(page, "desk-slip-print")
    page.emulate_media(media="screen")

    # Today's settlements list it; reversing asks for confirmation and a reason.
    page.get_by_role("link", name="撤销").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("撤销结算")
    a11y.check(page)
    page.get_by_label("撤销原因").fill("选错了患者")
    page.get_by_role("button", name="撤销结算").click()
    expect(page.locator("#e-confirm")).to_contain_text("请勾选以确认撤销")
    page.get_by_label("我确认撤销此次结算。").check()
    page.get_by_role("button", name="撤销结算").click()
    expect(page.locator(".slip")).to_contain_text("选错了患者")
    page.get_by_role("link", name="今日结算").first.click()
    row = page.locator("tr", has=page.get_by_role("link", name=re.compile("WEB-")))
    expect(row.first).to_contain_text("已撤销")
    screenshot(page, "desk-today")

    # The ledger agrees: the settlement is reversed, through the API.
    answer = server.api("GET", f"/v1/settlements/{setl_id}", "demo-desk")
    assert answer.json()["reversed"]["reason"] == "选错了患者"


def test_a_bad_amount_is_named_next_to_its_field_and_english_switches(page: Page, server: Server) -> None:
    server.set_clock(dt.datetime(2014, 12, 1, 9, 0))
    sign_in(page, "demo-desk", server.passwords["demo-desk"])
    page.goto("/desk/stay?person_id=MHK-P-0001&lang=en")
    expect(page.get_by_role("heading", level=1)).to_have_text("Enter a stay")
    page.get_by_label("Admitted on").fill("2014-06-01")
    page.get_by_label("Discharged on").fill("2014-06-03")
    page.get_by_label("Diagnoses (ICD-10)").fill("J18.9")
    page.get_by_label("Total bill").fill("12,5")
    page.get_by_role("button", name="Quote").click()
    error = page.locator("#e-total")
    expect(error).to_be_visible()
    expect(error).to_contain_text("12,5")
    expect(page.get_by_label("Total bill")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("main")).not_to_contain_text("Traceback")
    screenshot(page, "desk-stay-error")
    # The language stays English from page to page (a cookie), and switches back.
    page.goto("/desk")
    expect(page.get_by_role("heading", level=1)).to_have_text("Billing desk")
    page.get_by_role("link", name="中文").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("结算窗口")
