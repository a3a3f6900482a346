"""Grafana dashboards as code (grafana-foundation-sdk), committed as JSON under `dashboards/json/`.

Every panel reads the `reporting` schema through the provisioned PostgreSQL datasource (uid
`schoolhealth-pg`, the read-only Grafana role). Panels are declared as data (`PanelSpec`: title,
SQL, the columns it must return) so the same declarations build the JSON and drive the test that
runs each query, macros expanded, under the Grafana role.

`build_dashboards(out_dir)` writes one JSON file per dashboard; `schoolhealth dashboards build`
calls it, and a test checks the committed files equal what it produces.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from grafana_foundation_sdk.builders import bargauge, dashboard, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dashboard_model

from services.platform.settings import PROJECT_ROOT

DATASOURCE_TYPE = "grafana-postgresql-datasource"
DATASOURCE_UID = "schoolhealth-pg"
DATASOURCE = dashboard_model.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)
PUBLICATION_TAG = "schoolhealth-publication"
JSON_DIR = PROJECT_ROOT / "dashboards" / "json"

PanelKind = Literal["table", "timeseries", "stat", "bargauge"]


class SqlQuery(cogvariants.Dataquery):
    """A raw-SQL target of Grafana's PostgreSQL datasource (the SDK ships no builder for it)."""

    def __init__(self, ref_id: str = "A", raw_sql: str = "", format_val: str = "table") -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.format_val = format_val

    def to_json(self) -> dict[str, object]:
        return {"refId": self.ref_id, "datasource": {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID},
                "editorMode": "code", "rawQuery": True, "format": self.format_val, "rawSql": self.raw_sql}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SqlQuery:
        for required in ("refId", "rawSql", "format"):
            if required not in data:
                raise ValueError(f"PostgreSQL target without {required!r}")
        return cls(ref_id=data["refId"], raw_sql=data["rawSql"], format_val=data["format"])


class SqlQueryBuilder(cogbuilder.Builder[SqlQuery]):
    def __init__(self, raw_sql: str, format_val: str = "table", ref_id: str = "A") -> None:
        self._internal = SqlQuery(ref_id=ref_id, raw_sql=raw_sql, format_val=format_val)

    def build(self) -> SqlQuery:
        return self._internal


def register_sql_query() -> None:
    """Teach the SDK's JSON decoder our datasource's targets (for validating committed JSON)."""
    cogruntime.Runtime().register_dataquery_variant(
        cogruntime.DataqueryConfig(identifier=DATASOURCE_TYPE, from_json_hook=SqlQuery.from_json))


@dataclass(frozen=True, slots=True, kw_only=True)
class PanelSpec:
    title: str
    kind: PanelKind
    sql: str
    columns: tuple[str, ...]
    width: int = 12
    height: int = 8
    unit: str | None = None
    description: str = ""

    @property
    def format(self) -> str:
        return "time_series" if self.kind == "timeseries" else "table"


@dataclass(frozen=True, slots=True, kw_only=True)
class VariableSpec:
    name: str
    label: str
    sql: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DashboardSpec:
    uid: str
    title: str
    description: str
    panels: tuple[PanelSpec, ...]
    variables: tuple[VariableSpec, ...] = ()
    time_from: str = "now-5y"
    tags: tuple[str, ...] = field(default=("schoolhealth",))


YEAR = VariableSpec(name="year", label="School year",
                    sql="SELECT DISTINCT school_year AS __value, school_year::text AS __text"
                        " FROM reporting.indicators ORDER BY 1 DESC")
METRIC = VariableSpec(name="metric", label="Indicator",
                      sql="SELECT metric_id AS __value, title AS __text FROM reporting.metric_definitions"
                          " ORDER BY title")
COUNTY = VariableSpec(name="county", label="County",
                      sql="SELECT county_id AS __value, county_name AS __text FROM reporting.counties"
                          " ORDER BY county_name")

_RATE = ("rate", "ci_low", "ci_high", "change", "denominator", "suppressed")

PROVINCE = DashboardSpec(
    uid="schoolhealth-province", title="Student health: provincial overview",
    description="Annual indicators for the province and its counties; cells under 10 students are withheld.",
    variables=(YEAR, METRIC),
    panels=(
        PanelSpec(title="Province indicators, school year $year", kind="table", width=24, height=10, unit="percentunit",
                  sql="SELECT metric_title, rate, ci_low, ci_high, change, denominator, suppressed"
                      " FROM reporting.indicators WHERE school_year = $year AND level = 'province'"
                      " AND breakdown = 'all' ORDER BY metric_title",
                  columns=("metric_title", *_RATE)),
        PanelSpec(title="Counties: $metric, $year", kind="table", unit="percentunit",
                  sql="SELECT area_name AS county, rate, ci_low, ci_high, change, denominator, suppressed"
                      " FROM reporting.indicators WHERE school_year = $year AND metric_id = '$metric'"
                      " AND level = 'county' AND breakdown = 'all' ORDER BY rate DESC NULLS LAST",
                  columns=("county", *_RATE)),
        PanelSpec(title="By group: $metric, $year", kind="bargauge", unit="percentunit",
                  sql="SELECT breakdown || ': ' || category AS \"group\", rate FROM reporting.indicators"
                      " WHERE school_year = $year AND metric_id = '$metric' AND level = 'province'"
                      " AND breakdown IN ('sex', 'stage', 'urban_rural', 'left_behind', 'disability')"
                      " ORDER BY breakdown, category",
                  columns=("group", "rate")),
        PanelSpec(title="Trend: $metric, province", kind="timeseries", unit="percentunit",
                  sql="SELECT \"time\", 'province' AS metric, rate AS value FROM reporting.indicators"
                      " WHERE metric_id = '$metric' AND level = 'province' AND breakdown = 'all'"
                      " AND $__timeFilter(\"time\") ORDER BY 1",
                  columns=("time", "metric", "value")),
        PanelSpec(title="Trend: $metric by county", kind="timeseries", unit="percentunit",
                  sql="SELECT \"time\", area_name AS metric, rate AS value FROM reporting.indicators"
                      " WHERE metric_id = '$metric' AND level = 'county' AND breakdown = 'all'"
                      " AND $__timeFilter(\"time\") ORDER BY 1, 2",
                  columns=("time", "metric", "value")),
        PanelSpec(title="Published revisions", kind="table",
                  sql="SELECT school_year, revision, published_at, cells FROM reporting.publications"
                      " ORDER BY school_year DESC, revision DESC",
                  columns=("school_year", "revision", "published_at", "cells")),
    ),
)

COUNTY_DRILL_DOWN = DashboardSpec(
    uid="schoolhealth-county", title="Student health: county drill-down",
    description="One county's indicators, its schools and its trend against the province.",
    variables=(COUNTY, YEAR, METRIC),
    panels=(
        PanelSpec(title="County indicators, $year", kind="table", width=24, height=10, unit="percentunit",
                  sql="SELECT metric_title, rate, ci_low, ci_high, change, denominator, suppressed"
                      " FROM reporting.indicators WHERE school_year = $year AND level = 'county'"
                      " AND area_id = '$county' AND breakdown = 'all' ORDER BY metric_title",
                  columns=("metric_title", *_RATE)),
        PanelSpec(title="Schools: $metric, $year", kind="table", unit="percentunit",
                  sql="SELECT area_name AS school, rate, ci_low, ci_high, change, denominator, suppressed"
                      " FROM reporting.indicators WHERE school_year = $year AND metric_id = '$metric'"
                      " AND level = 'school' AND county_id = '$county' AND breakdown = 'all'"
                      " ORDER BY rate DESC NULLS LAST",
                  columns=("school", *_RATE)),
        PanelSpec(title="By group: $metric, $year", kind="table", unit="percentunit",
                  sql="SELECT breakdown, category, rate, ci_low, ci_high, denominator, suppressed"
                      " FROM reporting.indicators WHERE school_year = $year AND metric_id = '$metric'"
                      " AND level = 'county' AND area_id = '$county' AND breakdown <> 'all'"
                      " ORDER BY breakdown, category",
                  columns=("breakdown", "category", "rate", "ci_low", "ci_high", "denominator", "suppressed")),
        PanelSpec(title="Trend: $metric, county and province", kind="timeseries", unit="percentunit",
                  sql="SELECT \"time\", area_name AS metric, rate AS value FROM reporting.indicators"
                      " WHERE metric_id = '$metric' AND breakdown = 'all'"
                      " AND (level = 'province' OR (level = 'county' AND area_id = '$county'))"
                      " AND $__timeFilter(\"time\") ORDER BY 1, 2",
                  columns=("time", "metric", "value")),
    ),
)

DATA_QUALITY = DashboardSpec(
    uid="schoolhealth-quality", title="Student health: data quality",
    description="Rejected and flagged measurements per school and screener, digit preference, coverage.",
    variables=(YEAR,), time_from="now-1y",
    panels=(
        PanelSpec(title="Rejections per day", kind="timeseries",
                  sql="SELECT $__timeGroupAlias(\"time\", 1d), source AS metric, sum(rejections) AS value"
                      " FROM reporting.dq_rejections WHERE $__timeFilter(\"time\") GROUP BY 1, 2 ORDER BY 1",
                  columns=("time", "metric", "value")),
        PanelSpec(title="Rejections by school and screener", kind="table",
                  sql="SELECT school_id, screener, source, code, sum(rejections) AS rejections"
                      " FROM reporting.dq_rejections WHERE \"time\" BETWEEN $__timeFrom() AND $__timeTo()"
                      " GROUP BY 1, 2, 3, 4 ORDER BY 5 DESC LIMIT 200",
                  columns=("school_id", "screener", "source", "code", "rejections")),
        # By school year, as the screening rounds are reviewed: the dashboard's time range spanned
        # every day of four years at a million students (121 ms p95); one year's dailies are a quarter.
        PanelSpec(title="Flagged and unclassifiable measurements by school and screener, $year", kind="table",
                  width=24, unit="percentunit",
                  sql="SELECT school_id, screener, kind, sum(measurements) AS measurements, sum(flagged) AS flagged,"
                      " sum(not_classified) AS not_classified,"
                      " (sum(flagged) + sum(not_classified))::float / nullif(sum(measurements), 0) AS problem_share"
                      " FROM reporting.dq_measurements"
                      " WHERE \"time\" >= make_date($year, 9, 1) AND \"time\" < make_date($year + 1, 9, 1)"
                      " GROUP BY 1, 2, 3 ORDER BY problem_share DESC NULLS LAST LIMIT 200",
                  columns=("school_id", "screener", "kind", "measurements", "flagged", "not_classified",
                           "problem_share")),
        PanelSpec(title="Digit preference: last digits 0 and 5 ($year; about 0.2 when unbiased)", kind="table",
                  unit="percentunit",
                  # Kept per school, screener and quantity by the refresh (0118): the first 200 through an index.
                  sql="SELECT school_id, screener, quantity, measurements, share_0_or_5"
                      " FROM reporting.digit_preference_shares WHERE school_year = $year"
                      " ORDER BY share_0_or_5 DESC LIMIT 200",
                  columns=("school_id", "screener", "quantity", "measurements", "share_0_or_5")),
        PanelSpec(title="Last digit of heights and weights, $year", kind="bargauge", unit="percentunit",
                  sql="SELECT quantity || ' .' || last_digit AS digit,"
                      " sum(measurements)::float / sum(sum(measurements)) OVER (PARTITION BY quantity) AS share"
                      " FROM reporting.digit_preference WHERE school_year = $year GROUP BY quantity, last_digit"
                      " ORDER BY quantity, last_digit",
                  columns=("digit", "share")),
        PanelSpec(title="Screening coverage by school, $year", kind="table", unit="percentunit",
                  sql="SELECT area_name AS school, county_id, rate AS coverage, ci_low, ci_high, denominator"
                      " AS enrolled, suppressed FROM reporting.indicators WHERE school_year = $year"
                      " AND metric_id = 'screening_coverage' AND level = 'school' AND breakdown = 'all'"
                      " ORDER BY rate NULLS FIRST",
                  columns=("school", "county_id", "coverage", "ci_low", "ci_high", "enrolled", "suppressed")),
    ),
)

ALERT_OPERATIONS = DashboardSpec(
    uid="schoolhealth-alerts", title="Student health: alert operations",
    description="Counsellors' and school doctors' queues: open alerts, acknowledgement times, escalations.",
    time_from="now-30d",
    panels=(
        PanelSpec(title="Open alerts", kind="stat", width=6, height=5,
                  sql="SELECT COALESCE(sum(alerts), 0) AS open_alerts FROM reporting.alert_queue",
                  columns=("open_alerts",)),
        PanelSpec(title="Past acknowledgement deadline", kind="stat", width=6, height=5,
                  sql="SELECT COALESCE(sum(overdue), 0) AS overdue FROM reporting.alert_queue",
                  columns=("overdue",)),
        PanelSpec(title="Open alerts by county, team and priority", kind="table", width=12, height=10,
                  sql="SELECT county_id, team, priority, state, escalation_level, alerts, overdue"
                      " FROM reporting.alert_queue ORDER BY overdue DESC, alerts DESC",
                  columns=("county_id", "team", "priority", "state", "escalation_level", "alerts", "overdue")),
        PanelSpec(title="Acknowledgement time against deadline (minutes)", kind="timeseries",
                  # One read of the view for both series (a UNION ALL of two read it twice: the
                  # worst panel at 1M students on TimescaleDB, 51 ms).
                  sql="SELECT $__timeGroupAlias(\"time\", 1d), s.metric, avg(s.value) AS value"
                      " FROM reporting.alert_acknowledgements a CROSS JOIN LATERAL (VALUES"
                      " ('median acknowledgement', a.median_ack_minutes), ('deadline', a.mean_deadline_minutes))"
                      " s(metric, value) WHERE $__timeFilter(\"time\") GROUP BY 1, 2 ORDER BY 1, 2",
                  columns=("time", "metric", "value")),
        PanelSpec(title="Acknowledged within deadline, by team and priority", kind="table", unit="percentunit",
                  sql="SELECT team, priority, sum(opened) AS opened, sum(within_deadline) AS within_deadline,"
                      " sum(late) AS late, sum(within_deadline)::float / nullif(sum(opened), 0) AS within_share"
                      " FROM reporting.alert_acknowledgements WHERE $__timeFilter(\"time\")"
                      " GROUP BY 1, 2 ORDER BY 1, 2",
                  columns=("team", "priority", "opened", "within_deadline", "late", "within_share")),
        PanelSpec(title="Escalations per day", kind="timeseries",
                  sql="SELECT $__timeGroupAlias(\"time\", 1d), 'level ' || to_level AS metric,"
                      " sum(escalations) AS value FROM reporting.alert_escalations"
                      " WHERE $__timeFilter(\"time\") GROUP BY 1, 2 ORDER BY 1",
                  columns=("time", "metric", "value")),
    ),
)

_FITNESS_OVERALL = "('fitness_pass', 'fitness_good_or_above', 'fitness_excellent')"

FITNESS = DashboardSpec(
    uid="schoolhealth-fitness", title="Student health: physical fitness (国家学生体质健康标准)",
    description="Pass, good-and-above and excellent rates by the national standard (2014), per-item pass rates;"
                " cells under 10 students are withheld.",
    variables=(YEAR,),
    panels=(
        PanelSpec(title="Fitness rates, province, $year", kind="table", width=24, height=6, unit="percentunit",
                  sql="SELECT metric_title, rate, ci_low, ci_high, change, denominator, suppressed"
                      " FROM reporting.indicators WHERE school_year = $year AND level = 'province'"
                      f" AND breakdown = 'all' AND metric_id IN {_FITNESS_OVERALL} ORDER BY metric_id DESC",
                  columns=("metric_title", *_RATE)),
        PanelSpec(title="Pass rate by county, $year", kind="table", unit="percentunit",
                  sql="SELECT area_name AS county, rate, ci_low, ci_high, change, denominator, suppressed"
                      " FROM reporting.indicators WHERE school_year = $year AND metric_id = 'fitness_pass'"
                      " AND level = 'county' AND breakdown = 'all' ORDER BY rate DESC NULLS LAST",
                  columns=("county", *_RATE)),
        PanelSpec(title="Pass rate by group, $year", kind="bargauge", unit="percentunit",
                  sql="SELECT breakdown || ': ' || category AS \"group\", rate FROM reporting.indicators"
                      " WHERE school_year = $year AND metric_id = 'fitness_pass' AND level = 'province'"
                      " AND breakdown IN ('sex', 'stage', 'urban_rural', 'left_behind', 'disability', 'grade')"
                      " ORDER BY breakdown, category",
                  columns=("group", "rate")),
        PanelSpec(title="Item pass rates by grade, province, $year", kind="table", width=24, height=10,
                  unit="percentunit",
                  sql="SELECT metric_title, category AS grade, rate, ci_low, ci_high, denominator, suppressed"
                      " FROM reporting.indicators WHERE school_year = $year AND level = 'province'"
                      " AND metric_id LIKE 'fitness_item_%' AND breakdown = 'grade'"
                      " ORDER BY metric_title, category::integer",
                  columns=("metric_title", "grade", "rate", "ci_low", "ci_high", "denominator", "suppressed")),
        PanelSpec(title="Trend: pass, good-and-above and excellent, province", kind="timeseries", width=24,
                  unit="percentunit",
                  sql="SELECT \"time\", metric_title AS metric, rate AS value FROM reporting.indicators"
                      f" WHERE metric_id IN {_FITNESS_OVERALL} AND level = 'province' AND breakdown = 'all'"
                      " AND $__timeFilter(\"time\") ORDER BY 1, 2",
                  columns=("time", "metric", "value")),
    ),
)

DASHBOARDS: tuple[DashboardSpec, ...] = (PROVINCE, COUNTY_DRILL_DOWN, DATA_QUALITY, ALERT_OPERATIONS, FITNESS)


class _Layout:
    """Left-to-right, top-to-bottom placement on Grafana's 24-column grid."""

    def __init__(self) -> None:
        self.x = self.y = self.row_height = 0

    def place(self, width: int, height: int) -> dashboard_model.GridPos:
        if self.x + width > 24:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        pos = dashboard_model.GridPos(h=height, w=width, x=self.x, y=self.y)
        self.x += width
        self.row_height = max(self.row_height, height)
        return pos


def _panel(spec: PanelSpec, panel_id: int, pos: dashboard_model.GridPos) -> cogbuilder.Builder[dashboard_model.Panel]:
    kinds: dict[str, Any] = {"table": table.Panel, "timeseries": timeseries.Panel, "stat": stat.Panel,
                             "bargauge": bargauge.Panel}
    builder: Any = kinds[spec.kind]()
    builder = (builder.id(panel_id).title(spec.title).datasource(DATASOURCE).grid_pos(pos)
               .with_target(SqlQueryBuilder(spec.sql, spec.format)))
    if spec.description:
        builder = builder.description(spec.description)
    if spec.unit:
        builder = builder.unit(spec.unit)
    return builder  # type: ignore[no-any-return]


def _variable(spec: VariableSpec) -> dashboard.QueryVariable:
    return (dashboard.QueryVariable(spec.name).label(spec.label).datasource(DATASOURCE).query(spec.sql)
            .refresh(dashboard_model.VariableRefresh.ON_DASHBOARD_LOAD))


# The readers are in China: times on the dashboards in Beijing time, whatever the viewer's browser says.
DASHBOARD_TIMEZONE = "Asia/Shanghai"


def build_dashboard(spec: DashboardSpec) -> dashboard_model.Dashboard:
    builder: Any = (
        dashboard.Dashboard(spec.title).uid(spec.uid).description(spec.description).tags(list(spec.tags))
        .editable().time(spec.time_from, "now").timezone(DASHBOARD_TIMEZONE)
        .annotation(dashboard.AnnotationQuery().name("Publications").enable(True).icon_color("purple")
                    .datasource(dashboard_model.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
                    .target(_Target(tags=[PUBLICATION_TAG])))
    )
    for variable in spec.variables:
        builder = builder.with_variable(_variable(variable))
    layout = _Layout()
    for number, panel in enumerate(spec.panels, start=1):
        builder = builder.with_panel(_panel(panel, number, layout.place(panel.width, panel.height)))
    return builder.build()  # type: ignore[no-any-return]


class _Target(cogbuilder.Builder[dashboard_model.AnnotationTarget]):
    def __init__(self, tags: list[str]) -> None:
        self._internal = dashboard_model.AnnotationTarget(limit=100, match_any=True, tags=tags, type_val="tags")

    def build(self) -> dashboard_model.AnnotationTarget:
        return self._internal


def dashboard_json(spec: DashboardSpec) -> str:
    """The dashboard as committed: stable key order, UTF-8, trailing newline."""
    return json.dumps(build_dashboard(spec), cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def build_dashboards(out_dir: Path = JSON_DIR) -> list[Path]:
    """Write every dashboard's JSON into `out_dir` (the directory Grafana's provider reads)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for spec in DASHBOARDS:
        path = out_dir / f"{spec.uid}.json"
        path.write_text(dashboard_json(spec), encoding="utf-8")
        paths.append(path)
    return paths
