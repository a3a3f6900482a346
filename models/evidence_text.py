"""An alert's evidence in words, for the person who acts on it (zh-CN and English).

The rules keep evidence as a few values (an item answer, a total, a band, a z-score). A counsellor
reads "answered 'several days' to item 9 of PHQ-A; total 3, minimal", not ``item = 9; answer = 1``.
Answer wordings follow the PHQ response scale (0 not at all … 3 nearly every day) and the
published Chinese versions of the PHQ-9/PHQ-A and GAD-7.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["describe_evidence"]

Evidence = Mapping[str, str | int | float | bool | None]

_ANSWERS: Final[Mapping[str, tuple[str, ...]]] = {
    "en": ("not at all", "several days", "more than half the days", "nearly every day"),
    "zh-CN": ("完全不会", "有几天", "一半以上的天数", "几乎每天"),
}
_BANDS: Final[Mapping[str, Mapping[str, str]]] = {
    "en": {"minimal": "minimal", "mild": "mild", "moderate": "moderate", "moderately_severe": "moderately severe",
           "severe": "severe"},
    "zh-CN": {"minimal": "无或极轻", "mild": "轻度", "moderate": "中度", "moderately_severe": "中重度",
              "severe": "重度"},
}
_INSTRUMENTS: Final[Mapping[str, str]] = {"phq-a": "PHQ-A", "phq-9": "PHQ-9", "gad-7": "GAD-7"}
_CATEGORIES: Final[Mapping[str, Mapping[str, str]]] = {
    "en": {"obesity": "obesity", "overweight": "overweight", "normal": "normal", "thinness": "thinness",
           "severe_thinness": "severe thinness", "not_applicable": "not applicable"},
    "zh-CN": {"obesity": "肥胖", "overweight": "超重", "normal": "正常", "thinness": "消瘦",
              "severe_thinness": "重度消瘦", "not_applicable": "不适用"},
}


def _answer(language: str, value: object) -> str:
    answers = _ANSWERS[language]
    if isinstance(value, int) and 0 <= value < len(answers):
        return answers[value]
    return str(value)


def _number(value: object, digits: int) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:+.{digits}f}" if digits == 2 and value < 0 else f"{value:.{digits}f}"
    return "–"


def _survey(language: str, evidence: Evidence) -> list[str]:
    zh = language == "zh-CN"
    instrument = _INSTRUMENTS.get(str(evidence.get("instrument")), str(evidence.get("instrument", "")).upper())
    parts = []
    if evidence.get("item") is not None:
        answer = _answer(language, evidence.get("answer"))
        parts.append(f"{instrument} 第 {evidence['item']} 题回答“{answer}”" if zh
                     else f"answered '{answer}' to item {evidence['item']} of {instrument}")
    for item in (12, 13):
        value = evidence.get(f"item{item}")
        if value:
            parts.append(f"{instrument} 第 {item} 题回答“是”" if zh
                         else f"answered 'yes' to item {item} of {instrument}")
    total, band = evidence.get("total"), evidence.get("band")
    if total is not None:
        band_text = _BANDS[language].get(str(band), str(band)) if band else ""
        if zh:
            parts.append(f"{'' if parts else instrument + ' '}总分 {total}" + (f"，{band_text}" if band_text else ""))
        else:
            parts.append(f"{'' if parts else instrument + ' '}total {total}" + (f", {band_text}" if band_text else ""))
    return parts


def _growth(language: str, evidence: Evidence) -> list[str]:
    zh = language == "zh-CN"
    categories = _CATEGORIES[language]
    who = categories.get(str(evidence.get("who_category")), str(evidence.get("who_category")))
    wst = categories.get(str(evidence.get("wst586")), str(evidence.get("wst586")))
    z = evidence.get("bmi_for_age_z")
    z_text = "–" if z is None else f"{z:.2f}" if isinstance(z, int | float) else str(z)
    if zh:
        return [f"BMI {_number(evidence.get('bmi'), 1)}（年龄别 BMI Z 值 {z_text}）",
                f"WHO 2007：{who}", f"WS/T 586-2018：{wst}"]
    return [f"BMI {_number(evidence.get('bmi'), 1)} (BMI-for-age z {z_text})", f"WHO 2007: {who}",
            f"WS/T 586-2018: {wst}"]


def _vision(language: str, evidence: Evidence) -> list[str]:
    zh = language == "zh-CN"

    def dioptres(name: str) -> str:
        value = evidence.get(name)
        return "–" if value is None else f"{_number(value, 2)} D"

    acuity = f"{_number(evidence.get('ucva_right'), 1)} / {_number(evidence.get('ucva_left'), 1)}"
    if zh:
        return [f"裸眼视力 右/左 {acuity}", f"等效球镜 右 {dioptres('se_right')}，左 {dioptres('se_left')}",
                "高度近视：等效球镜 ≤ -6.00 D"]
    return [f"uncorrected acuity right/left {acuity}",
            f"spherical equivalent right {dioptres('se_right')}, left {dioptres('se_left')}",
            "high myopia: SE at most -6.00 D"]


def describe_evidence(concern: str, evidence: Evidence, language: str = "zh-CN") -> str:
    """The evidence of an alert about ``concern`` as one sentence in ``language`` (zh-CN or en)."""
    language = language if language in _ANSWERS else "en"
    if "instrument" in evidence or concern in ("self_harm", "depression", "anxiety"):
        parts = _survey(language, evidence)
    elif concern in ("obesity", "severe_thinness") or "bmi" in evidence:
        parts = _growth(language, evidence)
    elif concern == "high_myopia" or "se_right" in evidence:
        parts = _vision(language, evidence)
    else:
        parts = [f"{key} = {value}" for key, value in evidence.items() if value is not None]
    return ("；" if language == "zh-CN" else "; ").join(parts)
