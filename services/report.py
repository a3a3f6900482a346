"""The annual report: one self-contained HTML file (inline SVG charts) and a CSV of the published cells.

For readers without Grafana. It reads what an export may read, the `reporting` schema through the
Grafana role, and only the newest published revision of the year (trends use the live,
suppressed indicators of every year). Withheld cells stay withheld: the CSV carries their key and
the reason, never a number.
"""

from __future__ import annotations

import csv
import html
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import psycopg
from psycopg.rows import dict_row

from models.metrics import METRICS
from services.settings import Settings

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


def bar_chart_svg(title: str, bars: Sequence[Bar], width: int = 720) -> str:
    """Horizontal bars with 95% interval whiskers; withheld cells are labelled, not drawn."""
    label_width, right, row = 260, 70, 22
    plot = width - label_width - right
    top = 30
    height = top + row * len(bars) + 30
    known = [b.high for b in bars if b.high is not None]
    scale_max = max(0.05, min(1.0, (max(known) if known else 1.0) * 1.1))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'aria-label="{html.escape(title)}" font-family="sans-serif" font-size="12">',
           f'<text x="0" y="16" font-weight="bold" font-size="14">{html.escape(title)}</text>']
    for i, bar in enumerate(bars):
        y = top + i * row
        out.append(f'<text x="{label_width - 8}" y="{y + 14}" text-anchor="end">{html.escape(bar.label)}</text>')
        if bar.rate is None:
            out.append(f'<text x="{label_width}" y="{y + 14}" fill="#888">withheld{html.escape(bar.note)}</text>')
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
    axis_y = top + row * len(bars) + 4
    for tick in range(5):
        value = scale_max * tick / 4
        x = label_width + plot * tick / 4
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{axis_y}" stroke="#ddd"/>'
                   f'<text x="{x:.1f}" y="{axis_y + 14}" text-anchor="middle" fill="#555">{_percent(value, 0)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def line_chart_svg(title: str, series: dict[str, list[tuple[int, float]]], width: int = 720, height: int = 300) -> str:
    """Rates by school year, one line per indicator."""
    left, right, top, bottom = 50, 230, 30, 30
    years = sorted({year for points in series.values() for year, _ in points})
    values = [value for points in series.values() for _, value in points]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'aria-label="{html.escape(title)}" font-family="sans-serif" font-size="12">',
           f'<text x="0" y="16" font-weight="bold" font-size="14">{html.escape(title)}</text>']
    if not years:
        out.append('<text x="0" y="40">no published data</text></svg>')
        return "\n".join(out)
    top_value = max(0.05, min(1.0, max(values) * 1.1))
    plot_w, plot_h = width - left - right, height - top - bottom

    def x_of(year: int) -> float:
        return left + (plot_w * (years.index(year) / (len(years) - 1)) if len(years) > 1 else plot_w / 2)

    def y_of(value: float) -> float:
        return top + plot_h * (1 - value / top_value)

    for tick in range(5):
        value = top_value * tick / 4
        y = y_of(value)
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{_percent(value, 0)}</text>')
    for year in years:
        label = f"{year}/{(year + 1) % 100:02d}"
        out.append(f'<text x="{x_of(year):.1f}" y="{height - 10}" text-anchor="middle">{label}</text>')
    for i, (name, points) in enumerate(sorted(series.items())):
        colour = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{x_of(y):.1f},{y_of(v):.1f}" for y, v in sorted(points))
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for y, v in points:
            out.append(f'<circle cx="{x_of(y):.1f}" cy="{y_of(v):.1f}" r="3" fill="{colour}"/>')
        out.append(f'<rect x="{left + plot_w + 12}" y="{top + i * 18}" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{left + plot_w + 28}" y="{top + i * 18 + 10}">{html.escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)


_TEMPLATE = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{{ title }}</title>
<style>
body { font-family: sans-serif; max-width: 980px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.withheld { color: #888; }
.note { color: #555; font-size: 13px; }
</style></head><body>
<h1>{{ title }}</h1>
<p class="note">Published {{ published_at }}, revision {{ revision }}. School year {{ year }} runs from
1 September {{ year }} to 31 August {{ year + 1 }}. Rates with 95% Wilson score intervals; change is
against the previous school year, in percentage points, with Newcombe's hybrid score interval.
Cells counting fewer than 10 students are withheld, and so are other cells that would let a withheld
one be worked out from totals (complementary suppression).</p>

<h2>Indicators</h2>
{{ headline_svg | safe }}
<table><tr><th>Indicator</th><th>Rate</th><th>95% CI</th><th>Change</th><th>Students / schools</th></tr>
{% for row in headline %}<tr><td>{{ row.title }}</td>
{% if row.suppressed %}<td class="withheld" colspan="4">withheld ({{ row.suppressed }})</td>
{% else %}<td>{{ row.rate }}</td><td>{{ row.ci }}</td><td>{{ row.change }}</td>
<td>{{ row.denominator }}</td>{% endif %}</tr>
{% endfor %}</table>

<h2>Trends</h2>
{{ trend_svg | safe }}

<h2>{{ areas_heading }}</h2>
{% for chart in area_svgs %}{{ chart | safe }}
{% endfor %}

<h2>By group</h2>
<table><tr><th>Indicator</th>{% for c in group_columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for row in groups %}<tr><td>{{ row.title }}</td>{% for value in row["values"] %}<td>{{ value }}</td>{% endfor %}</tr>
{% endfor %}</table>

<h2>Definitions</h2>
<table><tr><th>Indicator</th><th>Version</th><th>Numerator / denominator</th><th>Reference</th></tr>
{% for d in definitions %}<tr><td>{{ d.title }}</td><td>{{ d.version }}</td>
<td style="text-align:left">{{ d.numerator }} / {{ d.denominator }}. {{ d.inclusion }}</td>
<td style="text-align:left">{{ d.reference }}</td></tr>{% endfor %}</table>
<p class="note">Data: {{ csv_name }} (every published cell of this report).</p>
</body></html>
""")

GROUPS = (("sex", "male"), ("sex", "female"), ("stage", "primary"), ("stage", "junior"), ("urban_rural", "urban"),
          ("urban_rural", "rural"), ("left_behind", "yes"), ("disability", "yes"))


def _fetch(conn: psycopg.Connection[Any], query: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cursor:
        return list(cursor.execute(query, params).fetchall())


def write_report(settings: Settings, year: int, out_dir: Path, county: str | None = None) -> Path:
    """Write the HTML report (and its CSV beside it) for the newest published revision of `year`."""
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
    titles = {m.id: m.title for m in METRICS}
    order = {m.id: i for i, m in enumerate(METRICS)}
    by_key = {(r["metric_id"], r["breakdown"], r["category"]): r for r in mine}

    headline = []
    bars = []
    for metric in METRICS:
        row = by_key.get((metric.id, "all", "all"))
        if row is None:
            continue
        headline.append({
            "title": metric.title, "suppressed": row["suppressed"], "rate": _percent(row["rate"]),
            "ci": f"{_percent(row['ci_low'])} – {_percent(row['ci_high'])}",
            "change": "–" if row["change"] is None else
            f"{100 * row['change']:+.1f} pp ({100 * row['change_ci_low']:+.1f} to {100 * row['change_ci_high']:+.1f})",
            "denominator": f"{row['denominator']:,}",
        })
        bars.append(Bar(label=metric.title, rate=row["rate"], low=row["ci_low"], high=row["ci_high"],
                        note=f" ({row['suppressed']})" if row["suppressed"] else ""))

    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in trend_rows:
        if r["metric_id"] != "school_doctor":
            series[titles.get(r["metric_id"], r["metric_id"])].append((int(r["school_year"]), float(r["rate"])))

    child_level = "school" if county else "county"
    children = [r for r in rows if r["level"] == child_level and r["breakdown"] == "all"
                and (county is None or r["county_id"] == county)]
    area_svgs = []
    for metric in METRICS:
        cells = sorted((r for r in children if r["metric_id"] == metric.id), key=lambda r: r["area_name"])
        if cells:
            area_svgs.append(bar_chart_svg(f"{metric.title}, {year}/{(year + 1) % 100:02d}", [
                Bar(label=r["area_name"], rate=r["rate"], low=r["ci_low"], high=r["ci_high"],
                    note=f" ({r['suppressed']})" if r["suppressed"] else "") for r in cells]))

    groups = []
    for metric in METRICS:
        if metric.unit != "student" or (metric.id, "all", "all") not in by_key:
            continue
        values = []
        for breakdown, category in GROUPS:
            cell = by_key.get((metric.id, breakdown, category))
            values.append("–" if cell is None else ("withheld" if cell["suppressed"] else _percent(cell["rate"])))
        groups.append({"title": metric.title, "values": values})

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"schoolhealth-{year}" + (f"-county-{county}" if county else "-province")
    csv_path = out_dir / f"{stem}.csv"
    selected = [r for r in rows if r["level"] == "province"
                or (county is None or r["county_id"] == county)]
    selected.sort(key=lambda r: (order.get(r["metric_id"], 99), ("province", "county", "school").index(r["level"]),
                                 r["area_id"], r["breakdown"], r["category"]))
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for r in selected:
            writer.writerow(["" if r[c] is None else (r[c].isoformat() if isinstance(r[c], datetime) else r[c])
                             for c in CSV_COLUMNS])

    revision, published_at = mine[0]["revision"], mine[0]["published_at"]
    definitions = [{"title": m.title, "version": m.version, "numerator": m.numerator, "denominator": m.denominator,
                    "inclusion": m.inclusion, "reference": m.reference} for m in METRICS]
    page = _TEMPLATE.render(
        title=f"Student health indicators, {area_name}, school year {year}/{(year + 1) % 100:02d}",
        year=year, revision=revision, published_at=published_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        headline=headline, headline_svg=bar_chart_svg(f"{area_name}, {year}/{(year + 1) % 100:02d}", bars),
        trend_svg=line_chart_svg(f"{area_name}: rates by school year", dict(series)),
        areas_heading="Schools" if county else "Counties", area_svgs=area_svgs,
        group_columns=[f"{b.replace('_', ' ')}: {c}" for b, c in GROUPS], groups=groups,
        definitions=definitions, csv_name=csv_path.name,
    )
    html_path = out_dir / f"{stem}.html"
    html_path.write_text(page, encoding="utf-8")
    return html_path
