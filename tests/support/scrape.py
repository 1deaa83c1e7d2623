"""Reading a replica's Prometheus metrics over HTTP, as Prometheus would."""

from __future__ import annotations

import asyncio
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    """One scrape of /metrics: a sample's value by name and labels."""

    def __init__(self, text: str) -> None:
        self.samples = [
            sample for family in text_string_to_metric_families(text) for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        found = [
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]
        assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
        return found[0]


async def scrape(address: str) -> Scrape:
    def get() -> str:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
            body: bytes = response.read()
            return body.decode()

    return Scrape(await asyncio.to_thread(get))
