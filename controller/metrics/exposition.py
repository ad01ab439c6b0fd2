"""One scrape: the registry rendered in the format the scraper asked for."""

from __future__ import annotations

from prometheus_client import exposition

from controller.metrics.collector import Metrics


def render(metrics: Metrics, accept: str | None = None) -> tuple[bytes, str]:
    """The exposition body and its content type, negotiated from an `Accept` header.

    Prometheus asks for OpenMetrics; anything else (curl, promtool) gets the classic
    text format.
    """
    encoder, content_type = exposition.choose_encoder(accept or "")
    return encoder(metrics.registry), content_type
