"""Fleet monitoring: per-edge and fleet gauges read from the `edges` table by a background refresher.

See docs/central-monitoring.md for the gauges, the online rule and the alert rules built on them.
"""
