"""What an operator sees of a running replica: Prometheus metrics, served over HTTP when
`--metrics-listen` (SMARTTRADE_METRICS_LISTEN) names an address.

Every place worth watching calls the module's `recorder`: `Silent` (every method does nothing)
until `serve` turns metrics on with `Exported`, so metrics off cost one method call at each
point, and the unary-call wrapper that times every RPC is installed only when they are on.
Every series carries a `replica` label (SMARTTRADE_REPLICA_ID, by default host name and
process id), so one dashboard shows a fleet; `smarttrade_replica_info` says which version a
replica runs.

Series (all prefixed `smarttrade_`):
- `rpc_total{method,code}`, `rpc_seconds{method}`: every unary call, by its status.
- `tick_to_order_seconds`: from a price reaching the engine to the order it triggers being
  handed to the venue (the decision and its durable commit between).
- `live_trades`: the live trades this replica runs.
- `venue_errors_total{kind}`: `unavailable` (retried), `outcome_unknown` (looked up),
  `rejected`.
- `store_write_seconds`: each write of a unit of work (committed, with the writes of others
  that came meanwhile: group commit); `store_writes_per_statement`: how many writes each
  statement carried; `store_available` (0 while the probe gets no answer),
  `store_outages_total`.
- `watchers`, `watchers_dropped_total` (a watcher that fell `watch_buffer` events behind),
  `events_total` (events committed; `rate()` gives events per second).
- `lease_held`: replicas with leases, 1 on a replica that runs a shard's trades (without
  leases, no sample); `shards_held`: how many; `leases_taken_total`: how many shards this
  replica took, and their trades with them.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# When the price that may trigger an order reached the engine (perf_counter), for the
# order's tick-to-order time. Set around the delivery of one tick, so only the orders that
# tick's decisions send are measured (not a retry's, not an action's).
tick_started: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "tick_started", default=None
)

_FAST = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_CALLS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Silent:
    """Metrics off: nothing is recorded."""

    enabled = False

    def rpc(self, method: str, code: str, seconds: float) -> None:
        pass

    def order_sent(self) -> None:
        pass

    def venue_error(self, kind: str) -> None:
        pass

    def store_write(self, seconds: float) -> None:
        pass

    def store_statement(self, writes: int) -> None:
        pass

    def store_available(self, available: bool) -> None:
        pass

    def watchers(self, count: Callable[[], int]) -> None:
        pass

    def watcher_dropped(self) -> None:
        pass

    def events(self, count: int) -> None:
        pass

    def live_trades(self, count: Callable[[], int]) -> None:
        pass

    def shards_held(self, held: Callable[[], int]) -> None:
        pass

    def lease_taken(self) -> None:
        pass


class Exported(Silent):
    """Metrics on: recorded in a registry of their own, each series labelled with the
    replica."""

    enabled = True

    def __init__(self, replica: str, version: str) -> None:
        self.registry = registry = CollectorRegistry()
        self.replica = replica
        r = ("replica",)

        def counter(name: str, text: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, text, r + labels, registry=registry)

        def gauge(name: str, text: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, text, r + labels, registry=registry)

        def histogram(
            name: str, text: str, buckets: tuple[float, ...], labels: tuple[str, ...] = ()
        ) -> Histogram:
            return Histogram(name, text, r + labels, buckets=buckets, registry=registry)

        info = gauge(
            "smarttrade_replica_info", "This replica and the version it runs", ("version",)
        )
        info.labels(replica, version).set(1)
        self._rpcs = counter("smarttrade_rpc_total", "Unary calls answered", ("method", "code"))
        self._rpc_seconds = histogram(
            "smarttrade_rpc_seconds", "Unary call time, by method", _CALLS, ("method",)
        )
        self._rpc_series: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        self._tick_to_order = histogram(
            "smarttrade_tick_to_order_seconds",
            "From a price reaching the engine to the order it triggers handed to the venue",
            _FAST,
        ).labels(replica)
        self._live = gauge("smarttrade_live_trades", "Live trades this replica runs").labels(
            replica
        )
        self._venue_errors = counter(
            "smarttrade_venue_errors_total", "Venue calls that failed, by kind", ("kind",)
        )
        self._store_write = histogram(
            "smarttrade_store_write_seconds", "One unit of work's write, committed", _FAST
        ).labels(replica)
        self._store_statement = histogram(
            "smarttrade_store_writes_per_statement",
            "Writes of units of work carried by one statement (group commit)",
            (1, 2, 4, 8, 16, 32, 64),
        ).labels(replica)
        self._store_available = gauge(
            "smarttrade_store_available", "1 while the store answers its probe, else 0"
        ).labels(replica)
        self._store_available.set(1)
        self._store_up = True
        self._store_outages = counter(
            "smarttrade_store_outages_total", "Times the store stopped answering its probe"
        ).labels(replica)
        self._watchers = gauge("smarttrade_watchers", "Open watch streams").labels(replica)
        self._watchers_dropped = counter(
            "smarttrade_watchers_dropped_total", "Watch streams ended for falling behind"
        ).labels(replica)
        self._events = counter("smarttrade_events_total", "Events committed").labels(replica)
        self._gauge = gauge

    def rpc(self, method: str, code: str, seconds: float) -> None:
        series = self._rpc_series.get((method, code))
        if series is None:  # labelled children are looked up once, not on every call
            series = self._rpc_series[method, code] = (
                self._rpcs.labels(self.replica, method, code),
                self._rpc_seconds.labels(self.replica, method),
            )
        series[0].inc()
        series[1].observe(seconds)

    def order_sent(self) -> None:
        started = tick_started.get()
        if started is not None:
            self._tick_to_order.observe(time.perf_counter() - started)

    def venue_error(self, kind: str) -> None:
        self._venue_errors.labels(self.replica, kind).inc()

    def store_write(self, seconds: float) -> None:
        self._store_write.observe(seconds)

    def store_statement(self, writes: int) -> None:
        self._store_statement.observe(writes)

    def store_available(self, available: bool) -> None:
        if self._store_up and not available:
            self._store_outages.inc()
        self._store_up = available
        self._store_available.set(1 if available else 0)

    def watchers(self, count: Callable[[], int]) -> None:
        self._watchers.set_function(count)

    def watcher_dropped(self) -> None:
        self._watchers_dropped.inc()

    def events(self, count: int) -> None:
        self._events.inc(count)

    def live_trades(self, count: Callable[[], int]) -> None:
        self._live.set_function(count)

    def shards_held(self, held: Callable[[], int]) -> None:
        lease = self._gauge("smarttrade_lease_held", "1 while this replica runs a shard's trades")
        lease.labels(self.replica).set_function(lambda: 1 if held() else 0)
        shards = self._gauge("smarttrade_shards_held", "The shards whose trades this replica runs")
        shards.labels(self.replica).set_function(held)
        self._leases_taken = Counter(
            "smarttrade_leases_taken_total",
            "Shards this replica took (and their trades with them)",
            ("replica",),
            registry=self.registry,
        ).labels(self.replica)

    def lease_taken(self) -> None:
        self._leases_taken.inc()

    def serve(self, listen: str) -> Callable[[], None]:
        """Serve /metrics on `listen` (host:port); returns what stops it."""
        host, _, port = listen.rpartition(":")
        server, thread = start_http_server(int(port), host.strip("[]"), registry=self.registry)

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

        return stop


recorder: Silent = Silent()


def use(chosen: Silent) -> None:
    global recorder
    recorder = chosen
