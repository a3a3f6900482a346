"""Reasons of rejected rows, in the reader's language.

`models.importing` and the contracts explain a rejected cell in English, in a small number of
sentence forms; this module gives each form its Chinese wording, keeping the values it quotes.
A reason of a form not listed here is shown as it is (in English) rather than hidden.
"""

# ruff: noqa: E501 - each English sentence form stays on one line beside its Chinese form, to be read as a pair

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from services.web.messages import translate

_V = r"(?P<v>.+?)"

# (English form, Chinese form). Named groups are carried over; {field:NAME} is a column label.
_FORMS: Final[tuple[tuple[str, str], ...]] = (
    (r"blank; a value is required", "空白；此项必填"),
    (r"required", "缺少此项"),
    (r"height_cm and weight_kg are both blank; at least one is required", "身高和体重都是空白；至少填写一项"),
    (r"height_cm and weight_kg are both missing: a growth screening needs at least one", "身高和体重都缺少；生长发育筛查至少需要一项"),
    (r"give birth_date or age_months, not both", "出生日期和月龄只填一项，不要都填"),
    (r"blank; a birth date \(or, for a record with only an age, age_months\) is required", "空白；请填写出生日期（只有年龄的记录请填月龄）"),
    (rf"{_V} is not an age in months \(0\.\.(?P<n>\d+)\)", "{v} 不是以月计的年龄（0 至 {n}）"),
    (r"(?P<n>\d+) completed months does not fit age_months (?P<v>[\d.]+)", "实足月龄 {n} 与月龄 {v} 不符"),
    (rf"{_V} is not a code of letters, digits and \. _ : - of at most (?P<n>\d+) characters \(not a name or an ID number\)",
     "{v} 不是由字母、数字和 . _ : - 组成的代码（最多 {n} 个字符；不能填姓名或身份证号）"),
    (rf"{_V} is not a date \(YYYY-MM-DD\)", "{v} 不是日期（应为 YYYY-MM-DD，如 2015-03-07）"),
    (rf"{_V} is not a number", "{v} 不是数字"),
    (rf"{_V} is not a whole number", "{v} 不是整数"),
    (rf"{_V} is not a yes/no value \(.*\)", "{v} 不是“是/否”（可填 是/否、1/0、true/false）"),
    (rf"{_V} is not male/female \(男/女\)", "{v} 不是性别（应为 男/女）"),
    (rf"{_V} is not one of (?P<options>.+)", "{v} 不是以下之一：{options}"),
    (r"(?P<d>[\d-]+): measured before birth", "{d}：早于出生日期"),
    (r"(?P<v>.+?) <= 0: measured before birth", "检查日期早于出生日期"),
    (r"age (?P<n>\d+) years on (?P<col>\w+) is implausible for a pupil", "按{col:field}计年龄 {n} 岁，不像在校学生，请核对出生日期"),
    (r"age (?P<n>\d+) years on (?P<col>\w+) is implausible", "按{col:field}计年龄 {n} 岁，不像在校学生，请核对出生日期"),
    (r"not before (?P<col>\w+)", "不早于{col:field}"),
    (r"(?P<d>[\d-]+) is in the future \(today is (?P<t>[\d-]+)\)", "{d} 是将来的日期（今天是 {t}）"),
    (r"(?P<d>[\d-]+) is after occurred_at \((?P<t>[\d-]+)\): a date in the future", "{d} 是将来的日期（今天是 {t}）"),
    (r"(?P<v>[\d.]+) looks like millimetres \((?P<c>[\d.]+) cm\); enter centimetres",
     "{v} 像是以毫米为单位（即 {c} 厘米）；请按厘米填写"),
    (r"(?P<v>[\d.]+) looks like metres \((?P<c>[\d.]+) cm\); enter centimetres",
     "{v} 像是以米为单位（即 {c} 厘米）；请按厘米填写"),
    (r"(?P<v>[\d.]+) looks like grams \((?P<c>[\d.]+) kg\); enter kilograms",
     "{v} 像是以克为单位（即 {c} 千克）；请按千克填写"),
    (r"(?P<v>.+?) looks like decimal acuity; expected 5-point notation 3\.0\.\.5\.3",
     "{v} 像是小数记录的视力；请按五分记录填写（3.0–5.3，如 4.9）"),
    (r"(?P<v>.+?) is not 5-point notation \(one decimal place, 3\.0\.\.5\.3\)", "{v} 不是五分记录（一位小数，3.0–5.3）"),
    (r"(?P<v>.+?) outside (?P<lo>[-\d.]+)\.\.(?P<hi>[-\d.]+) \(exclusive\)", "{v} 超出范围（{lo} 至 {hi}，不含端点）"),
    (r"(?P<v>.+?) outside (?P<lo>[-\d.]+)\.\.(?P<hi>[-\d.]+)", "{v} 超出范围（{lo} 至 {hi}）"),
    (r"item (?P<n>\d+): (?P<v>.+?) is not a whole number \(expected e\.g\. 0;1;3\)", "第 {n} 题：{v} 不是整数（应如 0;1;3）"),
    (r"expected (?P<n>\d+) answers, got (?P<m>\d+)", "应有 {n} 个答案，实际 {m} 个"),
    (r"student number has (?P<n>\d+) characters, expected (?P<lo>\d+)\.\.(?P<hi>\d+)", "学籍号有 {n} 个字符，应为 {lo}–{hi} 个"),
    (r"more cells than the header has columns", "这一行的单元格比表头的列多"),
    (r"more than (?P<n>\d+) rows in one file", "一个文件超过 {n} 行"),
    (r"not_your_school", "不是您负责的学校"),
    # Physical fitness (the class sheet's fitness row and the national upload sheet)
    (r"given, but no item is marked 免测 \(exempt\)", "填写了免测原因，但没有项目填“免测”"),
    (r"no test result \(an item, or height and weight\) and no item marked 免测", "没有测试成绩（任一项目，或身高和体重），也没有项目填“免测”"),
    (r"(?P<v>.+?) has (?P<n>[\d.]+) seconds past the minute", "{v} 的秒数为 {n}，应小于 60"),
    (r"(?P<v>.+?) is not a time \(m'ss, e\.g\. 3'35, or seconds\)", "{v} 不是时间（应为 分'秒，如 3'35，或秒数）"),
    (r"blank; a grade code \(11-16, 21-23, 31-33\) is required", "空白；请填写年级编号（11–16、21–23、31–33）"),
    (r"(?P<v>\d+) is a university year; only grades 1-12 are scored here", "{v} 是大学年级；这里只评 1–12 年级"),
    (r"(?P<v>.+?) is not a grade code \(11-16, 21-23, 31-33\)", "{v} 不是年级编号（11–16、21–23、31–33）"),
    (r"not a sex code \(1 male, 2 female, or 男/女\)", "不是性别代码（1 男，2 女，或 男/女）"),
    (r"blank; the student number is required", "空白；请填写学籍号"),
    (r"免测 applies to test items, not to height or weight", "“免测”只适用于测试项目，不适用于身高、体重"),
    (r"a wholly exempted test \(免测\) carries no item results", "全部免测的学生不应有测试成绩"),
    (r"(?P<v>\w+) is both exempted and measured", "同一项目既填了免测又有成绩"),
    (r"unknown school: import schools\.csv first", "未知学校：请先导入学校名单"),
)
_COMPILED: Final = tuple((re.compile(english), chinese) for english, chinese in _FORMS)
_VALUE = re.compile(r"the value \((?P<n>\d+) characters\)")
_FIELD = re.compile(r"\{(?P<name>\w+):field\}")


def _value(text: str) -> str:
    return _VALUE.sub(lambda m: f"该值（{m['n']} 个字符）", text)


def _field_replacer(values: dict[str, str], field_label: Callable[[str], str]) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        return field_label(values.get(match["name"], match["name"]))

    return replace


_NOT_TESTED = re.compile(r"(?P<item>\w+) is not tested in grade (?P<grade>\d+) \((?P<sex>male|female)\); "
                         r"that grade's items are (?P<items>[\w, ]+)")


def _item_zh(item: str) -> str:
    from models.fitness import ITEM_INFO

    info = ITEM_INFO.get(item)  # type: ignore[call-overload]
    return info.name_zh if info else item


def _not_tested(match: re.Match[str]) -> str:
    """An item that the standard does not test for the student's grade and sex, with that grade's items."""
    sex = "男" if match["sex"] == "male" else "女"
    items = "、".join(_item_zh(item.strip()) for item in match["items"].split(","))
    return (f"{match['grade']}年级{sex}生不测{_item_zh(match['item'])}；该年级{sex}生的测试项目为：{items}")


def _one(language: str, reason: str, field_label: Callable[[str], str]) -> str:
    special = _NOT_TESTED.fullmatch(reason)
    if special:
        return _not_tested(special)
    for pattern, chinese in _COMPILED:
        match = pattern.fullmatch(reason)
        if match is None:
            continue
        values = {name: _value(value) for name, value in match.groupdict().items()}
        return _FIELD.sub(_field_replacer(values, field_label), chinese).format(**values)
    return reason


def translate_reason(language: str, reason: str) -> str:
    """``reason`` in ``language``: Chinese for zh-CN where its form is known, else unchanged."""
    if reason in ("not_your_school", "not_your_student"):
        return translate(language, f"import.{reason}")
    if language != "zh-CN" or not reason:
        return reason

    def field_label(column: str) -> str:
        return translate(language, f"field.{column}")

    parts = reason.split("; also ")
    first = _one(language, parts[0], field_label)
    others = []
    for part in parts[1:]:
        column, _, rest = part.partition(": ")
        others.append(f"{field_label(column)}：{_one(language, rest, field_label)}")
    return "；另外 ".join([first, *others])
