"""The pages' words in Simplified Chinese (the default) and English: one YAML catalogue per language under
messages/, the same keys in both (a test holds them to it). The language comes from `?lang=`, else the
`doudi_lang` cookie that `?lang=` sets, else Chinese.

Messages from the service itself (a field's problem, a refused reform) are shown as the service words them,
in English, exactly as the API and the command line give them: one wording of each rule, not two.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any, Final

import yaml
from starlette.requests import Request

LANGUAGES: Final = ("zh", "en")
DEFAULT: Final = "zh"
COOKIE: Final = "doudi_lang"
HTML_LANG: Final = {"zh": "zh-CN", "en": "en"}


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = str(value)
    return out


@functools.cache
def catalogue(language: str) -> dict[str, str]:
    text = resources.files("web").joinpath("messages", f"{language}.yaml").read_text(encoding="utf-8")
    return _flatten(yaml.safe_load(text))


def requested(request: Request) -> str | None:
    """The language asked for in the address (`?lang=en`), if it is one the pages speak."""
    asked = request.query_params.get("lang")
    return asked if asked in LANGUAGES else None


def language(request: Request) -> str:
    chosen = requested(request) or request.cookies.get(COOKIE)
    return chosen if chosen in LANGUAGES else DEFAULT


class Translator:
    """`t("desk.quote")`, or with values: `t("desk.found", count=3)`. A missing key shows itself, so a gap
    is visible on the page (and the catalogue test fails) rather than silently blank."""

    def __init__(self, lang: str):
        self.lang = lang
        self._messages = catalogue(lang)

    def __call__(self, key: str, **values: Any) -> str:
        text = self._messages.get(key)
        if text is None:
            return key
        return text.format(**values) if values else text

    def has(self, key: str) -> bool:
        return key in self._messages
