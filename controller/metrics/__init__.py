"""Prometheus metrics: per-version traffic and rollouts, and the controller's own health.

`collector.Metrics` owns one `CollectorRegistry` per controller (never the global one);
`state` holds the snapshot values the reconciler hands it at scrape time, so series of
retired versions and torn-down previews disappear; `exposition` renders a scrape.
"""
