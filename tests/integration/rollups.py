"""The rollups' results per student-year and metric, as rows (what metrics.observations held before 0117)."""

from __future__ import annotations

#: The indicator result columns of metrics.student_years (0117), in their order.
RESULT_COLUMNS = ("myopia", "visual_impairment", "overweight_wst586", "obesity_wst586", "overweight_who",
                  "obesity_who", "wasting", "health_literacy", "depression_positive", "anxiety_positive",
                  "screening_coverage")

#: (school_year, student_key, metric_id, positive) for each result a student-year has.
OBSERVATIONS = (
    "SELECT y.school_year, y.student_key, o.metric_id, o.positive FROM metrics.student_years y"
    " CROSS JOIN LATERAL (VALUES " + ", ".join(f"('{c}', y.{c})" for c in RESULT_COLUMNS) + ") o(metric_id, positive)"
    " WHERE o.positive IS NOT NULL")
