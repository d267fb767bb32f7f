"""Signing in and what a role may not see, in a browser, against `doudi serve --demo` itself: the password
it prints (and writes to var/demo-passwords/) signs the demo clerk in; a wrong one is refused in plain
words; a desk clerk gets a 403 page for finance and a 404 page for another hospital's settlement; signing
out ends the session."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import a11y
from tests.browser.conftest import _free_port, _missing, screenshot, start_server, stop, wait_until_up

DOUDI = Path(sys.executable).parent / "doudi"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("serve-demo")
    port = _free_port()
    process = start_server(folder, [str(DOUDI), "serve", "--demo", "--port", str(port)])
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process)
        yield base, folder
    finally:
        stop(process)


@pytest.fixture
def demo_page(browser: Browser, demo: tuple[str, Path]) -> Iterator[Page]:
    context = browser.new_context(base_url=demo[0], viewport={"width": 1366, "height": 768}, locale="zh-CN")
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def _password(folder: Path, user: str) -> str:
    return (folder / "var/demo-passwords" / user).read_text().strip()


def test_sign_in_failures_forbidden_pages_and_sign_out(demo_page: Page, demo: tuple[str, Path]) -> None:
    page, (base, folder) = demo_page, demo
    page.goto("/desk")
    expect(page).to_have_url(re.compile(r"/login\?next=/desk$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("登录")
    a11y.check(page)
    screenshot(page, "sign-in")

    page.get_by_label("用户名").fill("demo-desk")
    page.get_by_label("密码").fill("not-the-password")
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("alert")).to_contain_text("用户名或密码错误")
    expect(page.get_by_label("用户名")).to_have_value("demo-desk")
    expect(page.get_by_label("密码")).to_have_value("")
    screenshot(page, "sign-in-failed")

    # The keyboard alone: the name field has the focus, Tab to the password, Enter to sign in.
    page.goto("/login?next=/desk")
    expect(page.get_by_label("用户名")).to_be_focused()
    page.keyboard.type("demo-desk")
    page.keyboard.press("Tab")
    expect(page.get_by_label("密码")).to_be_focused()
    page.keyboard.type(_password(folder, "demo-desk"))
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{base}/desk")  # back where the clerk was going
    cookie = next(c for c in page.context.cookies() if c["name"] == "doudi_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]  # plain HTTP here

    # Finance pages: a page that says so, not a stack trace and not the data.
    answer = page.goto("/finance")
    assert answer is not None and answer.status == 403
    expect(page.locator("main")).to_contain_text("不能使用此页面")
    screenshot(page, "forbidden")

    # Another hospital's settlement: the Meihekou clerk settles, the provincial clerk cannot see it.
    other = page.context.browser.new_context(base_url=base)  # type: ignore[union-attr]
    clerk = other.new_page()
    clerk.goto("/login")
    clerk.get_by_label("用户名").fill("demo-desk-mhk")
    clerk.get_by_label("密码").fill(_password(folder, "demo-desk-mhk"))
    clerk.get_by_role("button", name="登录").click()
    clerk.goto("/desk/stay?person_id=MHK-P-0101")
    clerk.get_by_label("入院日期").fill("2014-06-01")
    clerk.get_by_label("出院日期").fill("2014-06-03")
    clerk.get_by_label("结算时间").fill("2014-06-03T10:00")
    clerk.get_by_label("诊断（ICD-10）").fill("J18.9")
    clerk.get_by_label("医疗费总额").fill("3000.00")
    clerk.get_by_role("button", name="预结算").click()
    clerk.get_by_role("button", name="结算", exact=True).click()
    expect(clerk.get_by_role("heading", level=1)).to_have_text("医疗费用一站式结算单")
    theirs = clerk.url.rsplit("/", 1)[1]
    other.close()
    answer = page.goto(f"/settlements/{theirs}")
    assert answer is not None and answer.status == 404
    expect(page.locator("main")).not_to_contain_text("MHK-P-0101")
    answer = page.goto(f"/desk/settlements/{theirs}/reverse")
    assert answer is not None and answer.status == 404

    # Signing out ends the session: the old cookie no longer opens a page.
    page.goto("/desk")
    page.get_by_role("button", name="退出登录").click()
    expect(page).to_have_url(re.compile("/login$"))
    page.context.add_cookies([cookie])  # type: ignore[list-item]  # the signed-out session's cookie, put back
    page.goto("/desk")
    expect(page).to_have_url(re.compile(r"/login\?next=/desk$"))


def test_readme_demo_sign_in_is_printed(demo: tuple[str, Path]) -> None:
    _base, folder = demo
    passwords = {p.name: p.read_text().strip() for p in (folder / "var/demo-passwords").iterdir()}
    assert {"demo-desk", "demo-finance", "demo-policy", "demo-admin"} <= set(passwords)
    assert all(len(p) >= 12 for p in passwords.values())
    assert all(oct(p.stat().st_mode)[-3:] == "600" for p in (folder / "var/demo-passwords").iterdir())
