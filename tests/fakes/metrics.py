"""Reading a running server's ``/metrics`` the way Prometheus does."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["metric"]


def metric(url: str, name: str, **labels: str) -> float:
    """The value of the sample ``name`` whose labels include ``labels``; 0 when absent."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0
