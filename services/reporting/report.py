"""The annual report: one self-contained HTML file (inline SVG charts) and a CSV of the published cells.

For readers without Grafana. It reads what an export may read, the `reporting` schema through the
Grafana role, and only the newest published revision of the year (trends use the live,
suppressed indicators of every year). Withheld cells stay withheld: the CSV carries their key and
the reason, never a number.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import psycopg
from psycopg.rows import dict_row

from models.fitness import ITEM_INFO
from models.metrics import FITNESS_METRICS, METRICS
from models.metrics import STUDENT_YEAR_INCLUSION as STUDENT_YEAR_INCLUSION_TEXT
from models.metrics import STUDENT_YEAR_INCLUSION as _STUDENT_YEAR_TEXT
from services.platform.settings import Settings
from services.reporting.report_fitness import fitness_section

# Fitness indicators have a section of their own (services.reporting.report_fitness), not a chart per area.
_GENERAL_METRICS = tuple(metric for metric in METRICS if metric not in FITNESS_METRICS)

CSV_COLUMNS = ("school_year", "revision", "published_at", "metric_id", "metric_version", "metric_title", "level",
               "area_id", "area_name", "county_id", "breakdown", "category", "denominator", "numerator", "rate",
               "ci_low", "ci_high", "previous_rate", "change", "change_ci_low", "change_ci_high", "suppressed")
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#393b79", "#637939")


class ReportError(RuntimeError):
    """The report cannot be written (for instance: the year was never published)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar:
    label: str
    rate: float | None
    low: float | None
    high: float | None
    note: str = ""


def _percent(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def nice_ticks(maximum: float, count: int = 5) -> list[float]:
    """Ticks from 0 in a step of 1, 2, 2.5 or 5 times a power of ten, the last at or above ``maximum``.

    ``nice_ticks(0.33)`` gives 0, 0.1, 0.2, 0.3, 0.4: readable percentages, not 0/8/17/25/33 %.
    """
    import math

    maximum = max(maximum, 1e-9)
    raw = maximum / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw - 1e-12)
    ticks = [0.0]
    while ticks[-1] < maximum - 1e-12:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _tick_label(value: float, step: float) -> str:
    digits = 0 if round(100 * step, 6).is_integer() else 1
    return f"{100 * value:.{digits}f}%"


def text_width(text: str, font_size: float = 12) -> float:
    """Approximate width in pixels of ``text`` in a sans-serif font: CJK characters are a full em."""
    return sum(font_size if ord(ch) >= 0x2E80 else font_size * 0.58 for ch in text)


def bar_chart_svg(title: str, bars: Sequence[Bar], width: int = 760, *, withheld: str = "withheld") -> str:
    """Horizontal bars with 95% interval whiskers; withheld cells are labelled, not drawn.

    The label column is as wide as the longest label needs (so none is cut off), and the axis has
    round ticks.
    """
    right, row = 70, 22
    label_width = int(min(max((text_width(b.label) for b in bars), default=60) + 16, width * 0.55))
    plot = width - label_width - right
    top = 30
    height = top + row * len(bars) + 30
    known = [b.high for b in bars if b.high is not None]
    ticks = nice_ticks(min(1.0, max(0.05, max(known) if known else 1.0)))
    scale_max = ticks[-1]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'aria-label="{html.escape(title)}" font-family="sans-serif" font-size="12">',
           f'<text x="0" y="16" font-weight="bold" font-size="14">{html.escape(title)}</text>']
    axis_y = top + row * len(bars) + 4
    for value in ticks:
        x = label_width + plot * value / scale_max
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{axis_y}" stroke="#ddd"/>'
                   f'<text x="{x:.1f}" y="{axis_y + 14}" text-anchor="middle" fill="#555">'
                   f'{_tick_label(value, ticks[1] - ticks[0] if len(ticks) > 1 else 0.1)}</text>')
    for i, bar in enumerate(bars):
        y = top + i * row
        out.append(f'<text x="{label_width - 8}" y="{y + 14}" text-anchor="end">{html.escape(bar.label)}</text>')
        if bar.rate is None:
            out.append(f'<text x="{label_width}" y="{y + 14}" fill="#888">{html.escape(withheld)}'
                       f'{html.escape(bar.note)}</text>')
            continue
        w = plot * bar.rate / scale_max
        out.append(f'<rect x="{label_width}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="#4e79a7"/>')
        if bar.low is not None and bar.high is not None:
            x0, x1 = label_width + plot * bar.low / scale_max, label_width + plot * min(bar.high, scale_max) / scale_max
            mid = y + row / 2 - 1
            out.append(f'<line x1="{x0:.1f}" x2="{x1:.1f}" y1="{mid}" y2="{mid}" stroke="#222"/>'
                       f'<line x1="{x0:.1f}" x2="{x0:.1f}" y1="{mid - 4}" y2="{mid + 4}" stroke="#222"/>'
                       f'<line x1="{x1:.1f}" x2="{x1:.1f}" y1="{mid - 4}" y2="{mid + 4}" stroke="#222"/>')
        out.append(f'<text x="{label_width + plot + 6}" y="{y + 14}">{_percent(bar.rate)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def small_multiples_svg(title: str, series: dict[str, list[tuple[int, float]]], *, columns: int = 3,
                        cell_width: int = 250, cell_height: int = 150, empty: str = "no published data") -> str:
    """One small line chart per indicator, each with its own round y axis, years along the bottom."""
    names = list(series)  # in the caller's order (the indicators' publication order)
    rows = max(1, -(-len(names) // columns))
    width, height = columns * cell_width, 26 + rows * cell_height
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'aria-label="{html.escape(title)}" font-family="sans-serif" font-size="11">',
           f'<text x="0" y="16" font-weight="bold" font-size="14">{html.escape(title)}</text>']
    if not names:
        out.append(f'<text x="0" y="40">{html.escape(empty)}</text></svg>')
        return "\n".join(out)
    years = sorted({year for points in series.values() for year, _ in points})
    left, right, top, bottom = 44, 30, 22, 22
    plot_w, plot_h = cell_width - left - right, cell_height - top - bottom
    for index, name in enumerate(names):
        ox, oy = (index % columns) * cell_width, 26 + (index // columns) * cell_height
        points = sorted(series[name])
        ticks = nice_ticks(min(1.0, max(0.01, max(v for _, v in points) * 1.05)), count=4)
        step = ticks[1] - ticks[0] if len(ticks) > 1 else 0.1

        def x_of(year: int, ox: int = ox) -> float:
            return ox + left + (plot_w * years.index(year) / (len(years) - 1) if len(years) > 1 else plot_w / 2)

        def y_of(value: float, oy: int = oy, top_value: float = ticks[-1]) -> float:
            return oy + top + plot_h * (1 - value / top_value)

        out.append(f'<text x="{ox + left}" y="{oy + 12}" font-weight="bold">{html.escape(name)}</text>')
        for value in ticks:
            y = y_of(value)
            out.append(f'<line x1="{ox + left}" x2="{ox + left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e4e4"/>'
                       f'<text x="{ox + left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#555">'
                       f'{_tick_label(value, step)}</text>')
        for year in years:
            out.append(f'<text x="{x_of(year):.1f}" y="{oy + cell_height - 6}" text-anchor="middle" fill="#555">'
                       f'{year}/{(year + 1) % 100:02d}</text>')
        path = " ".join(f"{x_of(y):.1f},{y_of(v):.1f}" for y, v in points)
        out.append(f'<polyline points="{path}" fill="none" stroke="#1f77b4" stroke-width="2"/>')
        for y, v in points:
            out.append(f'<circle cx="{x_of(y):.1f}" cy="{y_of(v):.1f}" r="2.5" fill="#1f77b4">'
                       f'<title>{html.escape(name)} {y}: {_percent(v)}</title></circle>')
    out.append("</svg>")
    return "\n".join(out)


_TEMPLATE = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string("""<!doctype html>
<html lang="{{ lang }}"><head><meta charset="utf-8">
<title>{{ title }}</title>
<style>
body { font-family: "Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", sans-serif; max-width: 1000px;
       margin: 2em auto; color: #222; line-height: 1.5; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; vertical-align: top; }
th:first-child, td:first-child { text-align: left; }
td.text { text-align: left; }
.withheld { color: #888; }
.note { color: #555; font-size: 13px; }
svg { max-width: 100%; height: auto; }
</style></head><body>
<h1>{{ title }}</h1>
<p class="note">{{ x.published }}</p>
<p class="note">{{ x.method }}</p>

<h2>{{ x.indicators }}</h2>
{{ headline_svg | safe }}
<table><tr><th>{{ x.indicator }}</th><th>{{ x.rate }}</th><th>{{ x.ci }}</th><th>{{ x.change }}</th><th>{{ x.denominator }}</th></tr>
{% for row in headline %}<tr><td>{{ row.title }}</td>
{% if row.suppressed %}<td class="withheld" colspan="4">{{ x.withheld }} ({{ row.suppressed }})</td>
{% else %}<td>{{ row.rate }}</td><td>{{ row.ci }}</td><td>{{ row.change }}</td>
<td>{{ row.denominator }}</td>{% endif %}</tr>
{% endfor %}</table>

<h2>{{ x.trends }}</h2>
<p class="note">{{ x.trends_note }}</p>
{{ trend_svg | safe }}

<h2>{{ areas_heading }}</h2>
{% for chart in area_svgs %}{{ chart | safe }}
{% endfor %}

<h2>{{ x.groups }}</h2>
<table><tr><th>{{ x.indicator }}</th>{% for c in group_columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for row in groups %}<tr><td>{{ row.title }}</td>{% for value in row["values"] %}<td>{{ value }}</td>{% endfor %}</tr>
{% endfor %}</table>

{{ fitness_html | safe }}

<h2 id="definitions">{{ x.definitions }}</h2>
<p class="note" id="common-inclusion">{{ x.common_inclusion }}</p>
<table><tr><th>{{ x.indicator }}</th><th>{{ x.version }}</th><th>{{ x.numerator }} / {{ x.denominator_short }}</th><th>{{ x.reference }}</th></tr>
{% for d in definitions %}<tr><td>{{ d.title }}</td><td>{{ d.version }}</td>
<td class="text">{{ d.numerator }} / {{ d.denominator }}{% if d.extra %} {{ d.extra }}{% endif %}</td>
<td class="text">{{ d.reference }}</td></tr>{% endfor %}</table>
<p class="note">{{ x.data }}: {{ csv_name }}</p>
</body></html>
""")

# The report's words in each language; metric titles and definitions in Chinese below.
_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Student health indicators, {area}, school year {sy}", "indicators": "Indicators",
        "indicator": "Indicator", "rate": "Rate", "ci": "95% CI", "change": "Change on last year",
        "denominator": "Students / schools", "withheld": "withheld", "trends": "Trends",
        "trends_note": "Each indicator on its own scale; compare shapes, not heights.",
        "groups": "By group", "definitions": "Definitions", "version": "Version", "numerator": "Numerator",
        "denominator_short": "denominator", "reference": "Reference", "data": "Data (every published cell)",
        "counties": "Counties", "schools": "Schools", "rates_by_year": "{area}: rates by school year",
        "published": "Published {at} ({zone}), revision {revision}. School year {year} runs from 1 September "
                     "{year} to 31 August {next}.",
        "method": "Rates with 95% Wilson score intervals; change is against the previous school year, in "
                  "percentage points, with Newcombe's hybrid score interval. Cells counting fewer than 10 "
                  "students are withheld, and so are other cells that would let a withheld one be worked out "
                  "from totals (complementary suppression).",
        "pp": "pp", "to": "to", "no_data": "no published data",
        "sex": "sex", "stage": "stage", "urban_rural": "setting", "left_behind": "left-behind",
        "disability": "disability", "male": "male", "female": "female", "primary": "primary (grades 1-6)",
        "junior": "junior secondary (7-9)", "urban": "urban", "rural": "rural", "yes": "yes",
    },
    "zh-CN": {
        "title": "{area}学生健康指标（{sy} 学年）", "indicators": "主要指标", "indicator": "指标", "rate": "率",
        "ci": "95% 置信区间", "change": "较上学年变化", "denominator": "学生数 / 学校数", "withheld": "不予公布",
        "trends": "历年趋势", "trends_note": "每个指标使用各自的纵轴刻度，请比较走势而非高低。", "groups": "分组情况",
        "definitions": "指标定义", "version": "版本", "numerator": "分子", "denominator_short": "分母",
        "reference": "依据", "data": "数据（本报告全部公布单元格）", "counties": "各区县", "schools": "各学校",
        "rates_by_year": "{area}历年指标", "pp": "个百分点", "to": "至", "no_data": "暂无公布数据",
        "published": "发布时间 {at}（{zone}），第 {revision} 版。{year} 学年自 {year} 年 9 月 1 日至 {next} 年 8 月 31 日。",
        "method": "率的 95% 置信区间采用 Wilson 评分法；变化为与上一学年相比的百分点差，置信区间采用 Newcombe "
                  "混合评分法。学生数少于 10 人的单元格不予公布；能由合计推算出不公布单元格的其他单元格也不予公布"
                  "（互补隐藏）。",
        "sex": "性别", "stage": "学段", "urban_rural": "城乡", "left_behind": "留守儿童", "disability": "残疾",
        "male": "男", "female": "女", "primary": "小学（1-6 年级）", "junior": "初中（7-9 年级）", "urban": "城市",
        "rural": "农村", "yes": "是",
    },
}

_COMMON_INCLUSION_ZH = (
    "统计对象为学年普查日（9 月 30 日）在籍的学生：以健康档案（archive.student_history）中该日或之前最新一条"
    "记录为准，且该记录不是离校记录，学生计入该记录所在学校。只计学年内当前有效（未被更正）的筛查；"
    "同一学年筛查多次的学生只计一次，取最后一次筛查。"
)

# Chinese title, numerator, denominator and any inclusion beyond the common one, per metric id.
_METRICS_ZH: dict[str, tuple[str, str, str, str]] = {
    "health_literacy": ("健康素养水平", "健康素养得分达到满分 80% 及以上的学生", "完成学生健康素养问卷的学生", ""),
    "myopia": ("筛查性近视率", "筛查性近视学生（任一眼裸眼视力低于 5.0 且等效球镜 ≤ -0.50 D）",
               "视力筛查结果可判定近视的学生", ""),
    "visual_impairment": ("视力不良率", "较差眼为轻度、中度或重度视力低下的学生", "视力筛查可判定视力等级的学生",
                          "另按年级分别报告。"),
    "overweight_wst586": ("超重率（WS/T 586）", "按 WS/T 586-2018 BMI 界值为超重（不含肥胖）的学生",
                          "生长发育筛查数据合理、可按 WS/T 586 判定（6-18 岁）的学生", "剔除标记为不合理的测量。"),
    "obesity_wst586": ("肥胖率（WS/T 586）", "按 WS/T 586-2018 BMI 界值为肥胖的学生",
                       "生长发育筛查数据合理、可按 WS/T 586 判定（6-18 岁）的学生", "剔除标记为不合理的测量。"),
    "overweight_who": ("超重率（WHO Z 评分）", "年龄别 BMI Z 值 > +1 且 ≤ +2 的学生（WHO 2007）",
                       "生长发育筛查数据合理、有年龄别 BMI Z 值（5-19 岁）的学生", "剔除标记为不合理的测量。"),
    "obesity_who": ("肥胖率（WHO Z 评分）", "年龄别 BMI Z 值 > +2 的学生（WHO 2007）",
                    "生长发育筛查数据合理、有年龄别 BMI Z 值（5-19 岁）的学生", "剔除标记为不合理的测量。"),
    "wasting": ("消瘦率（WS/T 456）", "按 WS/T 456-2014 BMI 界值为轻度或中重度消瘦的学生",
                "生长发育筛查数据合理、可按 WS/T 456 判定的学生", "剔除标记为不合理的测量。"),
    "depression_positive": ("抑郁筛查阳性率", "PHQ-A 总分达到阳性界值（10 分）的学生",
                            "学年内完成 PHQ-A 的学生（取各学期中最后一次）", ""),
    "anxiety_positive": ("焦虑筛查阳性率", "GAD-7 总分达到阳性界值（10 分）的学生",
                         "学年内完成 GAD-7 的学生（取各学期中最后一次）", ""),
    "screening_coverage": ("筛查覆盖率", "学年内既有视力筛查又有生长发育筛查的在籍学生",
                           "按健康档案在普查日在籍的学生（不用学校申报的在校生人数）", ""),
    "school_doctor": ("应配校医学校的配备率", "至少有一名校医的应配学校", "寄宿制学校或在校生超过 600 人的学校",
                      "按发布时 archive.schools 的学校情况统计（在校生和人员配备不分年度）；按学校计数，不做小单元格隐藏。"),
}


_FITNESS_EXTRA_ZH = (
    "体质测试不取最后一次筛查，而取每名学生学年内第一次测试的成绩；首次测试不及格的，取补测成绩（rules.csv：补测一次）。"
    "评分：各单项取成绩达到的最高得分等级（不插值，低于 10 分等级记 0 分，成绩不取整）；BMI 四舍五入保留一位小数；"
    "标准分和总分不取整，总分 ≥ 90 为优秀、≥ 80 为良好、≥ 60 为及格。全部项目免测的学生不计入任何分母，另行计数。"
)
_METRICS_ZH.update({
    "fitness_pass": ("体质健康及格率", "学年总分（标准分 + 附加分）达到 60 分（及格、良好或优秀）的学生",
                     "学年内体质测试完整（所在年级组全部项目，含 BMI）的学生", _FITNESS_EXTRA_ZH),
    "fitness_good_or_above": ("体质健康优良率", "学年总分达到 80 分（良好或优秀）的学生", "学年内体质测试完整的学生",
                              _FITNESS_EXTRA_ZH),
    "fitness_excellent": ("体质健康优秀率", "学年总分达到 90 分的学生", "学年内体质测试完整的学生", _FITNESS_EXTRA_ZH),
})
_GRADUATION_ZH = (
    "毕业成绩 = 毕业当年学年总分 × 50% + 本学段其他学年总分平均分 × 50%（rules.csv graduation_score）；各学年总分按补测规则取当年成绩；"
    "缺测或单项免测（无总分）的学年不计入平均，留级重读的年级只计最后一个学年，没有其他学年成绩时以毕业当年总分为毕业成绩；"
    "等级划分与学年总分相同。"
)
_METRICS_ZH.update({
    "fitness_exempt": ("体质测试免测人数", "全部项目免测（经申请并有医疗证明）的学生",
                       "学年内有体质测试成绩（完整、不完整或免测）的学生",
                       _FITNESS_EXTRA_ZH + "免测人数与其他单元格一样做小单元格隐藏：不公布 1–9 人的计数（含其补数）。"),
    "fitness_graduation_pass": ("毕业体质成绩及格率", "毕业成绩达到 60 分的毕业年级学生",
                                "学年内在本学段最后一个年级（6 或 9 年级）测试且有毕业成绩的学生",
                                _FITNESS_EXTRA_ZH + _GRADUATION_ZH),
    "fitness_graduation_good_or_above": ("毕业体质成绩优良率", "毕业成绩达到 80 分的毕业年级学生",
                                         "学年内在本学段最后一个年级测试且有毕业成绩的学生",
                                         _FITNESS_EXTRA_ZH + _GRADUATION_ZH),
    "fitness_graduation_excellent": ("毕业体质成绩优秀率", "毕业成绩达到 90 分的毕业年级学生",
                                     "学年内在本学段最后一个年级测试且有毕业成绩的学生",
                                     _FITNESS_EXTRA_ZH + _GRADUATION_ZH),
})
_METRICS_ZH.update({
    f"fitness_item_{item}": (f"体质测试单项：{info.name_zh}及格率", f"{info.name_zh}单项得分达到 60 分的学生",
                             f"学年成绩中有{info.name_zh}成绩的学生（仅该项目所测年级）", _FITNESS_EXTRA_ZH)
    for item, info in ITEM_INFO.items()
})


def _metric_text(metric: Any, language: str) -> tuple[str, str, str, str]:
    """Title, numerator, denominator and extra inclusion of a metric in ``language``."""
    if language == "zh-CN" and metric.id in _METRICS_ZH:
        return _METRICS_ZH[metric.id]
    extra = metric.inclusion.removeprefix(_STUDENT_YEAR_TEXT).strip() if metric.inclusion.startswith(
        _STUDENT_YEAR_TEXT) else metric.inclusion
    return metric.title, metric.numerator, metric.denominator, extra


GROUPS = (("sex", "male"), ("sex", "female"), ("stage", "primary"), ("stage", "junior"), ("urban_rural", "urban"),
          ("urban_rural", "rural"), ("left_behind", "yes"), ("disability", "yes"))


def _fetch(conn: psycopg.Connection[Any], query: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cursor:
        return list(cursor.execute(query, params).fetchall())


def _change(row: dict[str, Any], words: dict[str, str]) -> str:
    if row["change"] is None:
        return "–"
    low, high = 100 * row["change_ci_low"], 100 * row["change_ci_high"]
    return f"{100 * row['change']:+.1f} {words['pp']} ({low:+.1f} {words['to']} {high:+.1f})"


def write_report_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """The report's data as CSV, one row per published cell. Area names come from the schools file:
    every cell goes through `csv_safe`, so none runs as a spreadsheet formula."""
    from services.platform.safe_csv import SafeCsvWriter

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = SafeCsvWriter(handle)
        writer.writerow(CSV_COLUMNS)
        for r in rows:
            writer.writerow(["" if r[c] is None else (r[c].isoformat() if isinstance(r[c], datetime) else r[c])
                             for c in CSV_COLUMNS])


def write_report(settings: Settings, year: int, out_dir: Path, county: str | None = None,
                 language: str = "zh-CN") -> Path:
    """Write the HTML report (and its CSV beside it) for the newest published revision of `year`.

    Chinese by default (the provincial office reads it); ``language="en"`` for English.
    """
    if language not in _WORDS:
        raise ReportError(f"unknown language {language!r}: zh-CN or en")
    words = _WORDS[language]
    with psycopg.connect(settings.pg_dsn("grafana")) as conn:
        rows = _fetch(conn, "SELECT * FROM reporting.published_indicators WHERE school_year = %s", (year,))
        if not rows:
            raise ReportError(f"school year {year} has not been published: run `schoolhealth publish --year {year}`")
        trend_rows = _fetch(conn, "SELECT school_year, metric_id, rate FROM reporting.indicators"
                                  " WHERE level = %s AND area_id = %s AND breakdown = 'all' AND rate IS NOT NULL",
                            ("county", county) if county else ("province", "province"))
    if county and not any(r["level"] == "county" and r["area_id"] == county for r in rows):
        raise ReportError(f"county {county!r} has no published cells in {year}")

    level, area = ("county", county) if county else ("province", "province")
    mine = [r for r in rows if r["level"] == level and r["area_id"] == area]
    area_name = mine[0]["area_name"]
    if level == "province" and language == "zh-CN":
        area_name = "全省"
    texts = {m.id: _metric_text(m, language) for m in METRICS}
    titles = {metric_id: text[0] for metric_id, text in texts.items()}
    order = {m.id: i for i, m in enumerate(METRICS)}
    by_key = {(r["metric_id"], r["breakdown"], r["category"]): r for r in mine}
    school_year = f"{year}/{(year + 1) % 100:02d}"

    headline = []
    bars = []
    for metric in _GENERAL_METRICS:
        row = by_key.get((metric.id, "all", "all"))
        if row is None:
            continue
        headline.append({
            "title": titles[metric.id], "suppressed": row["suppressed"], "rate": _percent(row["rate"]),
            "ci": f"{_percent(row['ci_low'])} – {_percent(row['ci_high'])}",
            "change": _change(row, words),
            # A withheld cell (also a total, since a numerator or complement of 1-9 withholds it) has none.
            "denominator": "–" if row["denominator"] is None else f"{row['denominator']:,}",
        })
        bars.append(Bar(label=titles[metric.id], rate=row["rate"], low=row["ci_low"], high=row["ci_high"],
                        note=f" ({row['suppressed']})" if row["suppressed"] else ""))

    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in trend_rows:
        if r["metric_id"] not in ("school_doctor", "fitness_exempt") and not r["metric_id"].startswith("fitness_item_"):
            series[titles.get(r["metric_id"], r["metric_id"])].append((int(r["school_year"]), float(r["rate"])))

    child_level = "school" if county else "county"
    children = [r for r in rows if r["level"] == child_level and r["breakdown"] == "all"
                and (county is None or r["county_id"] == county)]
    area_svgs = []
    for metric in _GENERAL_METRICS:
        cells = sorted((r for r in children if r["metric_id"] == metric.id), key=lambda r: r["area_name"])
        if cells:
            area_svgs.append(bar_chart_svg(f"{titles[metric.id]}, {school_year}", [
                Bar(label=r["area_name"], rate=r["rate"], low=r["ci_low"], high=r["ci_high"],
                    note=f" ({r['suppressed']})" if r["suppressed"] else "") for r in cells],
                withheld=words["withheld"]))

    groups = []
    for metric in _GENERAL_METRICS:
        if metric.unit != "student" or (metric.id, "all", "all") not in by_key:
            continue
        values = []
        for breakdown, category in GROUPS:
            cell = by_key.get((metric.id, breakdown, category))
            values.append("–" if cell is None else (words["withheld"] if cell["suppressed"] else _percent(cell["rate"])))
        groups.append({"title": titles[metric.id], "values": values})

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"schoolhealth-{year}" + (f"-county-{county}" if county else "-province") + (
        "" if language == "zh-CN" else f"-{language}")
    csv_path = out_dir / f"{stem}.csv"
    selected = [r for r in rows if r["level"] == "province"
                or (county is None or r["county_id"] == county)]
    selected.sort(key=lambda r: (order.get(r["metric_id"], 99), ("province", "county", "school").index(r["level"]),
                                 r["area_id"], r["breakdown"], r["category"]))
    write_report_csv(csv_path, selected)

    revision, published_at = mine[0]["revision"], mine[0]["published_at"]
    definitions = [{"title": texts[m.id][0], "version": m.version, "numerator": texts[m.id][1],
                    "denominator": texts[m.id][2], "extra": texts[m.id][3], "reference": m.reference}
                   for m in METRICS]
    zone = settings.zone
    x = dict(words)
    x["published"] = words["published"].format(at=published_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
                                                zone=settings.school_timezone, revision=revision, year=year,
                                                next=year + 1)
    x["common_inclusion"] = _COMMON_INCLUSION_ZH if language == "zh-CN" else STUDENT_YEAR_INCLUSION_TEXT
    page = _TEMPLATE.render(
        lang=language, x=x, title=words["title"].format(area=area_name, sy=school_year),
        headline=headline, headline_svg=bar_chart_svg(f"{area_name}, {school_year}", bars,
                                                      withheld=words["withheld"]),
        trend_svg=small_multiples_svg(words["rates_by_year"].format(area=area_name),
                                      {titles[m.id]: series[titles[m.id]] for m in _GENERAL_METRICS
                                       if titles[m.id] in series},
                                      empty=words["no_data"]),
        areas_heading=words["schools"] if county else words["counties"], area_svgs=area_svgs,
        group_columns=[f"{words[b]}: {words[c]}" for b, c in GROUPS], groups=groups,
        definitions=definitions, csv_name=csv_path.name, fitness_html=fitness_section(mine),
    )
    html_path = out_dir / f"{stem}.html"
    html_path.write_text(page, encoding="utf-8")
    return html_path
