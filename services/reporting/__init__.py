"""The provincial office's view: metric rollups and published revisions, the annual report, and
the Grafana dashboards with their publisher. Aggregates only, small cells suppressed."""
