"""The pages' message catalogue and the CSRF token (no browser, nothing running)."""

from __future__ import annotations

import re
from pathlib import Path

from models.alerts import OUTCOMES
from models.rules import CONCERNS, PRIORITIES
from services.web.messages import MESSAGES, label, pick_language, translate
from services.web.pages import csrf_token

TEMPLATES = Path(__file__).resolve().parents[2] / "services" / "web" / "templates"


def test_both_languages_have_every_message_and_every_code() -> None:
    english, chinese = MESSAGES["en"], MESSAGES["zh-CN"]
    assert set(english) == set(chinese)
    used = {key.rstrip(".") for path in TEMPLATES.glob("*.html")
            for key in re.findall(r"\bt\('([a-z_.0-9]+)'", path.read_text(encoding="utf-8"))}
    prefixes = {key.split(".")[0] for key in english}
    assert {key for key in used if key not in english and key not in prefixes} == set()
    for prefix, codes in (("concern", CONCERNS), ("priority", PRIORITIES), ("outcome", OUTCOMES)):
        for code in codes:
            assert label("zh-CN", prefix, code) != code and label("en", prefix, code) != code


def test_language_choice_and_fallbacks() -> None:
    assert pick_language(None, "en-US,en;q=0.9") == "en"
    assert pick_language(None, "zh-CN,zh;q=0.9") == "zh-CN"
    assert pick_language("en", "zh-CN") == "en"
    assert pick_language("fr", None) == "zh-CN"
    assert translate("en", "import.more", n=3) == "3 more accepted rows not shown."
    assert label("en", "cat", "a_new_category") == "a_new_category"


def test_csrf_token_is_per_session_and_not_the_session_token() -> None:
    first, second = csrf_token("shk_first"), csrf_token("shk_second")
    assert first != second and len(first) == 64 and "shk_first" not in first
    assert csrf_token("shk_first") == first
