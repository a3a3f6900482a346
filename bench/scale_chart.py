"""Chart and table of `schoolhealth bench scale` results: each figure against N, log-log, with its slope.

    python bench/scale_chart.py [RESULT.json ...]

Without arguments it reads every `bench/results/scale_*.json` except smoke runs (label starting
with "SMOKE"). It writes `bench/scale_chart.svg` (one log-log panel per figure, a line per
backend, and a dotted line from the first point with the ideal slope: 1 for a cost over the
whole archive, which may grow like the data, 0 for a read or a size per event) and prints the
Markdown table of bench/README.md: each figure at each N, the slope fitted by least squares on
log(value) against log(N), the value that slope projects at 1M students, and the goal of issue 18.

Standard library only: the SVG is written by hand, as the annual report's charts are.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
TARGET_N = 1_000_000
FASTER = 0.15  # a fitted slope this far above the ideal one is called "grows faster than the work"
BACKENDS = {"postgresql": ("PostgreSQL", "#1f77b4"), "timescaledb": ("TimescaleDB", "#d62728")}


@dataclass(frozen=True, slots=True)
class Figure:
    key: str
    title: str
    unit: str
    read: Callable[[dict[str, Any]], float | None]
    ideal: float  # the slope of a cost that grows no faster than the work: 1 for the whole archive, 0 for a read
    goal: float | None = None  # at 1M students, the figure must be at most this
    goal_text: str = "none stated (no faster than the data)"


def _get(*path: str) -> Callable[[dict[str, Any]], float | None]:
    def read(result: dict[str, Any]) -> float | None:
        value: Any = result
        for step in path:
            if not isinstance(value, dict) or step not in value:
                return None
            value = value[step]
        return None if value is None else float(value)

    return read


def _worst_panel(result: dict[str, Any]) -> float | None:
    panels = result.get("panels") or {}
    return max((p["p95_ms"] for p in panels.values()), default=None)


FIGURES = (
    Figure("seed", "seeding (import + classify + archive)", "s", _get("seed", "import_seconds"), 1),
    Figure("full", "full refresh", "s", _get("full_refresh", "seconds"), 1, 300, "≤ 5 min at 1M, linear"),
    # The screening day is 1 % of the archive, so its refresh may grow like N too; the goal is absolute.
    Figure("incremental", "incremental refresh after a 1 % day", "s", _get("incremental_refresh", "seconds"), 1, 60,
           "< 60 s at 1M"),
    Figure("publish", "publish (full refresh + freeze)", "s", _get("publish", "seconds"), 1),
    Figure("report", "annual report (province)", "s", _get("report", "province", "seconds"), 0),
    Figure("panels", "worst dashboard panel p95", "ms", _worst_panel, 0, 50, "every panel p95 < 50 ms at 1M"),
    Figure("student", "`schoolhealth student` p95", "ms", _get("student_lookup", "p95_ms"), 0, 100,
           "p95 < 100 ms at 1M"),
    Figure("queue", "counsellor queue p95", "ms", _get("counsellor", "queue", "p95_ms"), 0, 100, "p95 < 100 ms at 1M"),
    Figure("risk", "risk list p95", "ms", _get("counsellor", "risk_list", "p95_ms"), 0, 100, "p95 < 100 ms at 1M"),
    Figure("bytes", "bytes per event (whole archive)", "B", _get("storage", "bytes_per_event"), 0),
    Figure("closed", "bytes per event, closed years (measurement tables)", "B",
           _get("storage", "by_school_year_state", "closed_years", "bytes_per_event"), 0, 100,
           "≤ 100 B on the columnstore"),
    Figure("open", "bytes per event, open year / all years (measurement tables)", "B",
           lambda r: _get("storage", "by_school_year_state", "open_year", "bytes_per_event")(r)
           or _get("storage", "by_school_year_state", "all_years", "bytes_per_event")(r), 0),
)


def load(paths: list[Path]) -> list[dict[str, Any]]:
    results = [json.loads(path.read_text(encoding="utf-8")) for path in paths]
    return [r for r in results if r.get("benchmark") == "scale" and not str(r.get("label", "")).startswith("SMOKE")
            and (r.get("finished_at") or r.get("stopped"))]


def series(results: list[dict[str, Any]], figure: Figure) -> dict[str, list[tuple[int, float]]]:
    found: dict[str, list[tuple[int, float]]] = {}
    for result in results:
        value = figure.read(result)
        if value is not None and value > 0:
            found.setdefault(result["backend"], []).append((int(result["students"]), value))
    return {backend: sorted(points) for backend, points in found.items()}


def slope(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of log(value) on log(N); None with fewer than two sizes."""
    if len({n for n, _ in points}) < 2:
        return None
    xs = [math.log(n) for n, _ in points]
    ys = [math.log(v) for _, v in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def projected(points: list[tuple[int, float]], fitted: float | None) -> float | None:
    if fitted is None:
        return None
    n, value = points[-1]
    return float(value * (TARGET_N / n) ** fitted)


def _number(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value < 10 else f"{value:.1f}".rstrip("0").rstrip(".")


def table(results: list[dict[str, Any]]) -> str:
    sizes = sorted({int(r["students"]) for r in results})
    head = ["figure", "backend", *[f"N={n:,}" for n in sizes], "slope (ideal)", "at 1M (projected)",
            "goal (issue 18)", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for figure in FIGURES:
        for backend, points in series(results, figure).items():
            at = dict(points)
            fitted = slope(points)
            guess = projected(points, fitted)
            if figure.goal is None or guess is None:
                verdict = "no goal" if figure.goal is None else "one size only"
            elif guess <= figure.goal:
                verdict = "met (projected)"
            else:
                verdict = f"short: ×{guess / figure.goal:.1f} over"
            if fitted is not None and fitted > figure.ideal + FASTER:
                verdict += "; grows faster than the work"
            cells = [figure.title + f" ({figure.unit})", BACKENDS[backend][0],
                     *[_number(at[n]) if n in at else "–" for n in sizes],
                     ("–" if fitted is None else f"{fitted:.2f}") + f" ({figure.ideal:g})",
                     "–" if guess is None else _number(guess),
                     figure.goal_text, verdict]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def svg(results: list[dict[str, Any]], columns: int = 3, width: int = 300, height: int = 220) -> str:
    """One log-log panel per figure: N across, the figure up; a dotted slope-1 line through the first point."""
    figures = [f for f in FIGURES if series(results, f)]
    rows = math.ceil(len(figures) / columns)
    margin = {"left": 52, "right": 12, "top": 34, "bottom": 36}
    total_w, total_h = columns * width, rows * height + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{total_h}" '
           f'viewBox="0 0 {total_w} {total_h}" font-family="sans-serif" font-size="10">',
           f'<rect width="{total_w}" height="{total_h}" fill="white"/>']
    legend_x = 10
    for backend, (name, colour) in BACKENDS.items():
        if any(r["backend"] == backend for r in results):
            out.append(f'<line x1="{legend_x}" y1="15" x2="{legend_x + 20}" y2="15" stroke="{colour}" '
                       f'stroke-width="2"/><text x="{legend_x + 24}" y="19">{name}</text>')
            legend_x += 110
    out.append(f'<line x1="{legend_x}" y1="15" x2="{legend_x + 20}" y2="15" stroke="#888" stroke-dasharray="3,3"/>'
               f'<text x="{legend_x + 24}" y="19">ideal slope from the first point (1: like N; 0: flat)</text>')
    for i, figure in enumerate(figures):
        x0, y0 = (i % columns) * width, 30 + (i // columns) * height
        data = series(results, figure)
        ns = [n for points in data.values() for n, _ in points]
        vs = [v for points in data.values() for _, v in points]
        lo_n, hi_n = math.log10(min(ns)) - 0.1, math.log10(max(ns)) + 0.1
        lo_v, hi_v = math.floor(math.log10(min(vs)) - 0.05), math.ceil(math.log10(max(vs)) + 0.05)
        if hi_v - lo_v < 2:
            hi_v = lo_v + 2
        plot_w = width - margin["left"] - margin["right"]
        plot_h = height - margin["top"] - margin["bottom"]

        def px(n: float, v: float, *, x0: float = x0, y0: float = y0, lo_n: float = lo_n, hi_n: float = hi_n,
               lo_v: float = lo_v, hi_v: float = hi_v, plot_w: float = plot_w, plot_h: float = plot_h,
               ) -> tuple[float, float]:
            x = x0 + margin["left"] + (math.log10(n) - lo_n) / (hi_n - lo_n) * plot_w
            y = y0 + margin["top"] + (1 - (math.log10(v) - lo_v) / (hi_v - lo_v)) * plot_h
            return round(x, 1), round(y, 1)

        left, top = x0 + margin["left"], y0 + margin["top"]
        title = f"{figure.title} ({figure.unit})"
        # A long title gets a smaller font rather than running into the next panel (bold sans
        # characters are about 0.62 of the font size wide).
        size = min(10.0, round((width - 16) / (0.62 * len(title)), 1))
        out.append(f'<text x="{x0 + 8}" y="{y0 + 16}" font-weight="bold" font-size="{size}">'
                   f'{escape(title)}</text>')
        out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#ccc"/>')
        for exponent in range(lo_v, hi_v + 1):
            _, y = px(10 ** lo_n, 10.0**exponent)
            out.append(f'<line x1="{left}" y1="{y}" x2="{left + plot_w}" y2="{y}" stroke="#eee"/>'
                       f'<text x="{left - 4}" y="{y + 3}" text-anchor="end">{_number(10.0**exponent)}</text>')
        for n in sorted(set(ns)):
            x, _ = px(n, 10.0**lo_v)
            out.append(f'<line x1="{x}" y1="{top}" x2="{x}" y2="{top + plot_h}" stroke="#eee"/>'
                       f'<text x="{x}" y="{top + plot_h + 12}" text-anchor="middle">{n // 1000}k</text>')
        out.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h + 26}" text-anchor="middle">students</text>')
        for line, (backend, points) in enumerate(data.items()):
            colour = BACKENDS[backend][1]
            coordinates = [px(n, v) for n, v in points]
            if len(coordinates) > 1:
                out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
                           + " ".join(f"{x},{y}" for x, y in coordinates) + '"/>')
            for x, y in coordinates:
                out.append(f'<circle cx="{x}" cy="{y}" r="3" fill="{colour}"/>')
            fitted = slope(points)
            if fitted is not None:
                # One line per backend in the panel's top left corner, so that equal slopes never overlap.
                out.append(f'<text x="{left + 6}" y="{top + 12 + 12 * line}" fill="{colour}">'
                           f'slope {fitted:.2f}</text>')
            n_first, v_first = points[0]
            n_last = max(ns)
            (x1, y1), (x2, y2) = px(n_first, v_first), px(n_last, v_first * (n_last / n_first) ** figure.ideal)
            out.append(f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{colour}" stroke-opacity="0.5" '
                       f'stroke-dasharray="3,3"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="*", type=Path)
    parser.add_argument("--svg", type=Path, default=HERE / "scale_chart.svg")
    args = parser.parse_args()
    results = load(args.results or sorted((HERE / "results").glob("scale_*.json")))
    if not results:
        raise SystemExit("no finished scale results to chart")
    args.svg.write_text(svg(results), encoding="utf-8")
    print(table(results))
    print(f"\nchart: {args.svg}")


if __name__ == "__main__":
    main()
