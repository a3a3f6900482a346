-- Dashboard panels that read reporting.indicators without a school year (the trends: one metric at
-- province or county level over every year) or without a metric (a year's province table) could use
-- only the primary key's first column or none: they read every live indicator of the province
-- (111,000 rows at 100,000 students, growing with the number of schools: 15 ms at 100k, 32 ms at
-- 300k). These indexes let them read the rows they show (issue 18).
CREATE INDEX live_indicators_metric_level ON metrics.live_indicators (metric_id, level, breakdown, school_year);
CREATE INDEX live_indicators_level ON metrics.live_indicators (level, breakdown, school_year);
