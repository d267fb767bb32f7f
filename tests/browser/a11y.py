"""Basic accessibility checks run in the page itself: every input labelled, headings in order, focus visible,
and nothing wider than a 1366-pixel screen."""

from __future__ import annotations

import itertools
from typing import Any

from playwright.sync_api import Page

_UNLABELLED = """
() => [...document.querySelectorAll('input, select, textarea')]
  .filter(el => el.type !== 'hidden')
  .filter(el => {
    const byFor = el.id && document.querySelector(`label[for="${CSS.escape(el.id)}"]`);
    const wrapped = el.closest('label');
    const named = el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
    return !(byFor || wrapped || named);
  })
  .map(el => el.outerHTML.slice(0, 120))
"""

_HEADINGS = """
() => [...document.querySelectorAll('h1, h2, h3, h4, h5, h6')]
  .filter(h => h.offsetParent !== null || getComputedStyle(h).position === 'fixed')
  .map(h => [Number(h.tagName[1]), h.textContent.trim().slice(0, 60)])
"""

_FOCUS = """
(selector) => {
  const out = [];
  for (const el of [...document.querySelectorAll(selector)].filter(e => e.offsetParent !== null).slice(0, 25)) {
    el.focus();
    if (document.activeElement !== el) continue;
    const style = getComputedStyle(el);
    const width = parseFloat(style.outlineWidth) || 0;
    const shadow = style.boxShadow && style.boxShadow !== 'none';
    if ((style.outlineStyle === 'none' || width < 2) && !shadow) out.push(el.outerHTML.slice(0, 100));
  }
  document.activeElement && document.activeElement.blur();
  return out;
}
"""

FOCUSABLE = "a[href], button, input:not([type=hidden]), select, textarea, summary"


def unlabelled_inputs(page: Page) -> list[str]:
    found: list[str] = page.evaluate(_UNLABELLED)
    return found


def heading_problems(page: Page) -> list[str]:
    """One h1, the first heading; no level skipped on the way down."""
    headings: list[Any] = page.evaluate(_HEADINGS)
    problems = []
    levels = [level for level, _ in headings]
    if levels.count(1) != 1 or (levels and levels[0] != 1):
        problems.append(f"expected exactly one h1, first: {headings[:3]}")
    for (before, _), (level, text) in itertools.pairwise(headings):
        if level > before + 1:
            problems.append(f"h{before} then h{level} ({text!r})")
    return problems


def unfocusable_outline(page: Page) -> list[str]:
    """Elements whose keyboard focus shows no outline (at least 2 px) or ring."""
    found: list[str] = page.evaluate(_FOCUS, FOCUSABLE)
    return found


def wider_than_the_screen(page: Page) -> list[str]:
    """At 1366×768 the page never scrolls sideways (wide tables scroll inside their own box)."""
    widths: list[int] = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    return [f"page is {widths[0]} px wide in a {widths[1]} px window"] if widths[0] > widths[1] else []


def check(page: Page) -> None:
    problems = {
        "unlabelled inputs": unlabelled_inputs(page),
        "headings out of order": heading_problems(page),
        "focus not visible": unfocusable_outline(page),
        "wider than the screen": wider_than_the_screen(page),
    }
    assert not any(problems.values()), f"{page.url}: {problems}"
