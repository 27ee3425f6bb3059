"""Reading Prometheus' text format the way Prometheus does, for tests (no Django here)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by (sample name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series is absent (a counter that never moved)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def families(text: str) -> dict[str, str]:
    """Family name -> type (counter, gauge, histogram...)."""
    return {f.name: f.type for f in text_string_to_metric_families(text)}
