"""Scraping a part's ``/metrics`` over HTTP, as Prometheus does, and reading the answer."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Scrape:
    """One scrape: the families it described (``# TYPE`` lines) and its samples."""

    types: Mapping[str, str]
    """Each family's type by the name it is exposed under (a counter's without ``_total``)."""
    samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float]

    def value(self, name: str, **labels: str) -> float | None:
        """The sample ``name{labels}``, or ``None`` if the scrape has none."""
        return self.samples.get((name, frozenset(labels.items())))

    def names(self) -> set[str]:
        """Every sample name the scrape holds."""
        return {name for name, _ in self.samples}


def scrape(port: int, host: str = "127.0.0.1") -> Scrape:
    answer = httpx.get(f"http://{host}:{port}/metrics", timeout=5)
    answer.raise_for_status()
    types: dict[str, str] = {}
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(answer.text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scrape(types, samples)


def scrape_until(
    port: int, done: Callable[[Scrape], bool], timeout_s: float = 30, what: str = ""
) -> Scrape:
    """Scrape ``port`` until ``done(scrape)`` (or fail after ``timeout_s``): for a part that is
    still starting, or a figure that another process or thread moves."""
    deadline = time.monotonic() + timeout_s
    last: Scrape | str = "no answer"
    while True:
        try:
            last = scrape(port)
            if done(last):
                return last
        except httpx.HTTPError as exc:
            last = f"no answer: {exc}"
        assert time.monotonic() < deadline, f"{what or 'metrics'} not as expected; last: {last}"
        time.sleep(0.1)
