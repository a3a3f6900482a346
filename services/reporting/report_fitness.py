"""The annual report's physical-fitness section (国家学生体质健康标准, 2014 revision).

Built from the same published, suppressed cells as the rest of the report: the three headline
rates with their intervals, the rates by group, the exempt counts (withheld like every cell), the
graduation-score rates with the rule, the per-item pass rates by grade, and the scoring choices the
standard leaves open, with the verification status of the tables behind them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jinja2

from models.fitness import DEFINITIONS, ITEM_INFO, REFERENCE, TABLE_VERSION
from models.metrics import FITNESS_METRICS, GRADUATION_RULE

OVERALL = ("fitness_pass", "fitness_good_or_above", "fitness_excellent")
GRADUATION = ("fitness_graduation_pass", "fitness_graduation_good_or_above", "fitness_graduation_excellent")
GRADUATION_RULE_ZH = (
    "毕业成绩 = 毕业当年（6、9 年级）学年总分 × 50% + 本学段其他学年总分平均分 × 50%；各学年总分按补测规则取当年成绩"
    "（首测不及格者补测一次，以补测成绩为当年成绩）；缺测或单项免测的学年无总分，不计入平均；留级重读的年级只计最后一个学年；"
    "没有其他学年成绩的，以毕业当年总分为毕业成绩。等级：≥90 优秀，≥80 良好，≥60 及格。"
)
FITNESS_IDS = frozenset(metric.id for metric in FITNESS_METRICS)
GROUPS = (("all", "all"), ("sex", "male"), ("sex", "female"), ("stage", "primary"), ("stage", "junior"),
          ("urban_rural", "urban"), ("urban_rural", "rural"), ("left_behind", "yes"), ("disability", "yes"))
GROUP_LABELS = {"all": "全部 all", "male": "男 male", "female": "女 female", "primary": "小学 primary",
                "junior": "初中 junior", "urban": "城市 urban", "rural": "农村 rural",
                "left_behind:yes": "留守 left-behind", "disability:yes": "残疾 disability"}
UNVERIFIED_NOTE = (
    "Tables used as the document prints them without independent confirmation (DOCUMENT ONLY): junior "
    "grades 7 and 9 vital capacity, girls' 50 m in grades 7 and 9, standing long jump 7-9, 1000 m and 800 m "
    "7-9, girls' standing long jump grade 11, and the girls' BMI bands of grades 5-12 (overweight/obese "
    "bounds). 以上评分表仅依据文件原文，未经独立来源核对。"
)

_SECTION = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string("""
<h2 id="fitness">学生体质健康 Physical fitness</h2>
<p class="note">{{ reference }}; scoring tables {{ table_version }}. Rates are over students with a complete
test (every item of their grade, BMI included); per-item rates over students with that item measured.
免测 (wholly exempted) students are in no denominator.</p>
<table><tr><th>Rate</th>{% for label in group_labels %}<th>{{ label }}</th>{% endfor %}</tr>
{% for row in overall %}<tr><td>{{ row.title }}</td>
{% for value in row["values"] %}<td>{{ value }}</td>{% endfor %}</tr>
{% endfor %}</table>
<h3>免测人数 Exempt students (免测)</h3>
<p class="note">全部项目免测的学生人数及其占有成绩学生的比例；与其他单元格一样，不公布 1–9 人的计数（含补数）。
Students wholly exempted (免测), and their share of the students with a result; withheld like every cell (no count,
nor its complement, from 1 to 9).</p>
<table id="fitness-exempt"><tr><th></th>{% for label in group_labels %}<th>{{ label }}</th>{% endfor %}</tr>
<tr><td>免测 exempt</td>{% for value in exempt %}<td>{{ value }}</td>{% endfor %}</tr></table>
<h3>毕业成绩 Graduation scores</h3>
<p class="note">{{ graduation_rule_zh }}<br>{{ graduation_rule }}</p>
<table id="fitness-graduation"><tr><th>Rate</th>{% for label in group_labels %}<th>{{ label }}</th>{% endfor %}</tr>
{% for row in graduation %}<tr><td>{{ row.title }}</td>
{% for value in row["values"] %}<td>{{ value }}</td>{% endfor %}</tr>
{% endfor %}</table>
<h3>单项及格率 Item pass rates by grade</h3>
<table><tr><th>Item</th>{% for grade in grades %}<th>{{ grade }}</th>{% endfor %}</tr>
{% for row in items %}<tr><td>{{ row.title }}</td>
{% for value in row["values"] %}<td>{{ value }}</td>{% endfor %}</tr>
{% endfor %}</table>
<h3>评分口径 Scoring choices</h3>
<table>{% for name, text in definitions %}<tr><td>{{ name }}</td><td style="text-align:left">{{ text }}</td></tr>
{% endfor %}</table>
<p class="note">{{ unverified }}</p>
""")


def _percent_ci(cell: Mapping[str, Any] | None) -> str:
    if cell is None:
        return "–"
    if cell["suppressed"]:
        return "withheld"
    return (f"{100 * cell['rate']:.1f}% ({100 * cell['ci_low']:.1f}–{100 * cell['ci_high']:.1f}), "
            f"n={cell['denominator']:,}")


def _count_share(cell: Mapping[str, Any] | None) -> str:
    """An exempt count and its share: "12 (1.3%, n=950)"; "withheld" when suppressed."""
    if cell is None:
        return "–"
    if cell["suppressed"]:
        return "withheld"
    return f"{cell['numerator']:,} ({100 * cell['rate']:.1f}%, n={cell['denominator']:,})"


def fitness_section(area_rows: Sequence[Mapping[str, Any]]) -> str:
    """The HTML section for one area's published cells (empty when no fitness cell was published)."""
    by_key = {(r["metric_id"], r["breakdown"], r["category"]): r for r in area_rows}
    if not any(key[0] in FITNESS_IDS for key in by_key):
        return ""
    titles = {metric.id: metric.title for metric in FITNESS_METRICS}
    overall = [{"title": titles[metric], "values": [_percent_ci(by_key.get((metric, b, c))) for b, c in GROUPS]}
               for metric in OVERALL]
    exempt = [_count_share(by_key.get(("fitness_exempt", b, c))) for b, c in GROUPS]
    graduation = [{"title": titles[metric], "values": [_percent_ci(by_key.get((metric, b, c))) for b, c in GROUPS]}
                  for metric in GRADUATION]
    grades = [str(grade) for grade in range(1, 10)]
    items = []
    for item, info in ITEM_INFO.items():
        metric = f"fitness_item_{item}"
        if (metric, "all", "all") not in by_key:
            continue
        values = []
        for grade in grades:
            cell = by_key.get((metric, "grade", grade))
            values.append("–" if cell is None else "withheld" if cell["suppressed"] else f"{100 * cell['rate']:.1f}%")
        items.append({"title": f"{info.name_zh} {info.name_en}", "values": values})
    labels = [GROUP_LABELS.get(c if b in ("all", "sex", "stage", "urban_rural") else f"{b}:{c}", c) for b, c in GROUPS]
    return _SECTION.render(reference=REFERENCE, table_version=TABLE_VERSION, group_labels=labels,
                           overall=overall, grades=grades, items=items, definitions=DEFINITIONS,
                           unverified=UNVERIFIED_NOTE, exempt=exempt, graduation=graduation,
                           graduation_rule=GRADUATION_RULE, graduation_rule_zh=GRADUATION_RULE_ZH)
