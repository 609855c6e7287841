"""Reading Prometheus' text format in the tests: what a component's ``/metrics`` says,
and what names a registry exports."""

from __future__ import annotations

from collections.abc import Iterable

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

# the series each kind of family exposes, beside the family's own name
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "unknown": ("",),
}


class Scrape:
    """One scrape's samples: ``value(name, **labels)`` sums those that carry ``labels``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        return sum(value for found, have, value in self.samples
                   if found == name and labels.items() <= have.items())

    def names(self) -> set[str]:
        return {name for name, _, _ in self.samples}

    def label_names(self) -> set[str]:
        return {label for _, have, _ in self.samples for label in have}


def scrape(url: str) -> Scrape:
    response = httpx.get(url, timeout=10.0)
    response.raise_for_status()
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


def exported_names(registries: Iterable[CollectorRegistry]) -> set[str]:
    """Every series name the registries can expose, from each family's name and type
    (a labelled family without children has no sample yet, but its names are known)."""
    names = set()
    for registry in registries:
        for family in registry.collect():
            names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names
