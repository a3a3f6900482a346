"""Report charts: round axis ticks, labels that fit, one small chart per indicator."""

from __future__ import annotations

import re

import pytest

from services.reporting.report import Bar, bar_chart_svg, nice_ticks, small_multiples_svg, text_width


@pytest.mark.parametrize(("maximum", "ticks"), [
    (0.33, [0.0, 0.1, 0.2, 0.3, 0.4]),
    (0.72, [0.0, 0.2, 0.4, 0.6, 0.8]),
    (0.05, [0.0, 0.02, 0.04, 0.06]),
    (1.0, [0.0, 0.25, 0.5, 0.75, 1.0]),
])
def test_ticks_are_round(maximum: float, ticks: list[float]) -> None:
    assert nice_ticks(maximum) == pytest.approx(ticks)


def test_axis_labels_are_round_percentages() -> None:
    svg = bar_chart_svg("t", [Bar(label="a", rate=0.25, low=0.2, high=0.3)])
    labels = re.findall(r'fill="#555">([\d.]+)%</text>', svg)
    assert labels == ["0", "10", "20", "30"]


def test_the_longest_label_fits_in_its_column() -> None:
    longest = "应配校医学校的配备率（寄宿制或 600 人以上）"
    svg = bar_chart_svg("t", [Bar(label=longest, rate=0.5, low=0.4, high=0.6), Bar(label="x", rate=None, low=None,
                                                                                    high=None)])
    rect_x = float(re.search(r'<rect x="([\d.]+)"', svg).group(1))  # type: ignore[union-attr]
    assert rect_x >= text_width(longest)


def test_trends_are_one_small_chart_per_indicator() -> None:
    series = {f"indicator {i}": [(2022, 0.1 * i), (2023, 0.1 * i + 0.01)] for i in range(1, 8)}
    svg = small_multiples_svg("trends", series)
    assert svg.count("<polyline") == 7
    assert all(f">indicator {i}</text>" in svg for i in range(1, 8))
