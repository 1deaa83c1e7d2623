"""The composition root: builds every part from the settings and runs the gRPC server.

Health reports NOT_SERVING until the engine has recovered every live trade (startup
reconciliation), then SERVING; NOT_SERVING again while the store does not answer (its
probe, store/probe.py, or a trade's commit that found it unreachable), so a load balancer
routes elsewhere; on shutdown it turns NOT_SERVING first, streams end with UNAVAILABLE
(resumable), and in-flight calls get `shutdown_grace` seconds to finish.

With replicas (`lease_seconds`), a replica is SERVING as soon as it listens: it answers
every call, serving itself the calls of the tenants whose shards it runs and the reads of
trades, and forwarding the rest to the replica that runs the caller's shard
(api/forwarding.py), its bus fed by every replica's event notices (engine/fanout.py). It
takes its fair share of the shards (engine/ownership.py); health of LEADER_HEALTH is
SERVING while it runs the trades of at least one shard.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider

from smarttrade import logs, metrics, tracing
from smarttrade.api.accounts import ExchangeAccountServicer
from smarttrade.api.auth import Authenticator, tenant_if_known
from smarttrade.api.forwarding import Forwarder
from smarttrade.api.paper import PaperMarketServicer
from smarttrade.api.registration import (
    CallBudget,
    add_smart_trade_service,
    generic_only,
    server_options,
)
from smarttrade.api.smart_trades import SmartTradeServicer, TradeUseCases
from smarttrade.config import Settings, master_keys, tls_credentials, token_entries
from smarttrade.domain.account import Credentials, ExchangeAccount
from smarttrade.domain.messages import StoredEvent
from smarttrade.engine.bus import EventBus
from smarttrade.engine.engine import Engine
from smarttrade.engine.executor import Executor, RetryPolicy
from smarttrade.engine.fanout import EventFanOut
from smarttrade.engine.ownership import EVERY_TENANT, Engines, Ownership
from smarttrade.engine.venues import ExchangeFactory, Venues
from smarttrade.errors import PreconditionFailed
from smarttrade.exchange.paper import PaperVenue
from smarttrade.exchange.paper_markets import DEFAULT_MARKETS
from smarttrade.exchange.paper_storage import PostgresPaperStorage
from smarttrade.exchange.port import Exchange, PriceHistory
from smarttrade.store.credentials import MasterKeys, unseal
from smarttrade.store.database import Database, open_database
from smarttrade.store.errors import StoreUnavailable
from smarttrade.store.leases import SHARDS, ShardLeases, shard_of
from smarttrade.store.probe import StoreProbe
from smarttrade.store.unit_of_work import UnitOfWorkFactory
from smarttrade.usecases.accounts import Accounts
from smarttrade.usecases.act import ActOnTrades
from smarttrade.usecases.create import CreateTrades
from smarttrade.usecases.page_tokens import PageTokens
from smarttrade.usecases.reading import TradeReader
from smarttrade.usecases.refresh import RefreshTrades
from smarttrade.usecases.sandbox import Sandbox
from smarttrade.usecases.shares import ShareResolver, ShareTokens, ShareTrades
from smarttrade.usecases.simulate import SimulateTrades
from smarttrade.usecases.watch import Watching
from smarttrade.v1 import (
    exchange_account_service_pb2,
    exchange_account_service_pb2_grpc,
    paper_market_service_pb2,
    paper_market_service_pb2_grpc,
    smart_trade_service_pb2,
)

log = logging.getLogger("smarttrade")

# Health of this name is SERVING on a replica that runs the trades of at least one shard
# (with SMARTTRADE_LEASE_SECONDS; always, once recovered, without), NOT_SERVING on the others;
# of `shard_health(n)`, SERVING on the replica that runs shard n's.
LEADER_HEALTH = "smarttrade.v1.Leader"


def shard_health(shard: int) -> str:
    return f"{LEADER_HEALTH}/{shard}"


SERVICES = (
    smart_trade_service_pb2.DESCRIPTOR.services_by_name["SmartTradeService"].full_name,
    exchange_account_service_pb2.DESCRIPTOR.services_by_name["ExchangeAccountService"].full_name,
    paper_market_service_pb2.DESCRIPTOR.services_by_name["PaperMarketService"].full_name,
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def ccxt_exchange(
    exchange_id: str,
    overrides: Mapping[str, Mapping[str, Any]],
    credentials: Credentials | None = None,
) -> Exchange:
    """A ccxt venue (imported on first use: it is heavy), with the operator's overrides;
    without credentials, for public data only."""
    from smarttrade.exchange.ccxt_exchange import CcxtExchange

    settings = overrides.get(exchange_id, {})
    return CcxtExchange(
        exchange_id,
        credentials.api_key if credentials else "",
        credentials.secret if credentials else "",
        (credentials.password or None) if credentials else None,
        urls=settings.get("urls"),
        options=settings.get("options"),
        poll_interval=float(settings.get("poll_interval", 1.0)),
        rate_limit_ms=settings.get("rate_limit_ms"),
        timeout=float(settings.get("timeout", 10.0)),
        streaming=bool(settings.get("streaming", True)),
        stream_retry=float(settings.get("stream_retry", 30.0)),
    )


def price_history(exchange_id: str, overrides: Mapping[str, Mapping[str, Any]]) -> PriceHistory:
    """A ccxt venue's public candles, for a simulation (closed after it)."""
    from smarttrade.exchange.ccxt_exchange import CcxtExchange

    exchange = ccxt_exchange(exchange_id, overrides)
    assert isinstance(exchange, CcxtExchange)
    return exchange


def ccxt_venues(
    keys: MasterKeys, overrides: Mapping[str, Mapping[str, Any]]
) -> tuple[ExchangeFactory, Callable[[str], bool]]:
    """Real venues through ccxt. The factory unseals the account's credentials and hands
    them to the adapter, which keeps them out of messages."""

    def build(account: ExchangeAccount) -> Exchange:
        if account.sealed_credentials is None:
            raise PreconditionFailed("NO_CREDENTIALS", f"{account.exchange} needs credentials")
        credentials = unseal(account.sealed_credentials, account.id, keys)
        return ccxt_exchange(account.exchange, overrides, credentials)

    def supported(exchange_id: str) -> bool:
        from smarttrade.exchange.ccxt_exchange import exchange_ids

        return exchange_id in exchange_ids()

    return build, supported


@dataclass
class Running:
    server: grpc.aio.Server
    port: int
    health: health_aio.HealthServicer
    engines: Engines
    bus: EventBus
    database: Database
    unit_of_work: UnitOfWorkFactory
    local_token: str | None
    background: list[asyncio.Task[None]]
    stop_metrics: Callable[[], None] | None = None
    tracer: TracerProvider | None = None
    ownership: Ownership | None = None
    budget: CallBudget = field(default_factory=CallBudget)

    @property
    def engine(self) -> Engine:
        """The one engine of a replica without leases (which runs every trade)."""
        return self.engines.running_shards[EVERY_TENANT]


async def start(settings: Settings) -> Running:
    tokens, local_token = token_entries(settings)
    tls_credentials(settings)  # a TLS misconfiguration stops the start before anything runs
    keys = master_keys(settings)
    logs.set_tenant(tenant_if_known)
    exported = None
    if settings.metrics_listen:  # before any call is served: the RPCs are timed only then
        exported = metrics.Exported(settings.replica_id, version("smarttrade"))
        metrics.use(exported)
    database = await open_database(
        settings.database_url, settings.data_dir, wait_limit=settings.store_timeout
    )
    store_dsn = database.url.replace("postgresql+asyncpg://", "postgresql://", 1)
    probe = StoreProbe(store_dsn, interval=settings.store_probe_interval)

    async def missing_events(tenant_id: str, after: int, through: int) -> list[StoredEvent]:
        async with unit_of_work() as uow:
            return await uow.events.after(tenant_id, None, after, through - after)

    bus = EventBus(missing_events)
    unit_of_work = UnitOfWorkFactory(database, bus)
    async with unit_of_work() as uow:
        bus.start_from(await uow.events.heads())
    budget = CallBudget()
    lease = None
    fanout = None
    if settings.lease_seconds > 0:  # replicas: each runs the trades of the shards it holds
        lease = ShardLeases(database, settings.replica_id, settings.listen, settings.lease_seconds)
        unit_of_work.lease = lease

        async def heads() -> dict[str, int]:
            async with unit_of_work() as uow:
                return await uow.events.heads()

        # Every replica's watchers see every replica's events.
        fanout = EventFanOut(bus, store_dsn, heads)
        unit_of_work.sink = fanout
    paper = PaperVenue(DEFAULT_MARKETS, PostgresPaperStorage(unit_of_work), clock=utc_now)
    if lease is None:
        await paper.start()
    build, supported = ccxt_venues(keys, settings.exchange_overrides)
    paper_prices = (
        ccxt_exchange(settings.paper_prices, settings.exchange_overrides)
        if settings.paper_prices
        else None
    )
    venues = Venues(paper, build, paper_prices)
    engines = Engines(venues, unit_of_work, sharded=lease is not None)

    def make_engine(
        tenants: Callable[[str], bool] | None, may_act: Callable[[], bool] | None
    ) -> Engine:
        """An engine for the `tenants` (None: every one), sending orders while `may_act()`."""
        return Engine(
            unit_of_work=unit_of_work,
            venues=venues,
            executor=Executor(
                RetryPolicy(unknown_grace=settings.unknown_order_grace), may_act=may_act
            ),
            clock=utc_now,
            order_poll_interval=settings.order_poll_interval,
            reconcile_interval=settings.reconcile_interval,
            paper_prices=paper_prices,
            store=probe,
            tenants=tenants,
            accounts=engines.accounts,
        )

    ownership = Ownership(engines, lease, make_engine) if lease is not None else None
    if exported is not None and ownership is not None:
        exported.shards_held(lambda: len(engines.running_shards))

    # The use cases, and the servicers that call them.
    current_key = keys.keys[keys.current]
    page_tokens = PageTokens(hashlib.sha256(b"page-tokens" + current_key).digest())
    reader = TradeReader(engines, unit_of_work, page_tokens)
    resolver = ShareResolver(unit_of_work, utc_now)
    trades = TradeUseCases(
        create=CreateTrades(engines, unit_of_work, reader, resolver, utc_now),
        act=ActOnTrades(engines, unit_of_work, reader),
        refresh=RefreshTrades(engines, reader),
        reader=reader,
        shares=ShareTrades(
            unit_of_work, reader, ShareTokens(keys.keys, keys.current), utc_now, page_tokens
        ),
        resolver=resolver,
        watching=Watching(unit_of_work, bus, utc_now, buffer=settings.watch_buffer),
        simulate=SimulateTrades(
            engines,
            {market.symbol: market for market in DEFAULT_MARKETS},
            lambda exchange_id: (
                price_history(exchange_id, settings.exchange_overrides)
                if supported(exchange_id)
                else None
            ),
        ),
    )
    accounts = Accounts(engines, unit_of_work, keys, page_tokens, supported, utc_now)
    authenticator = Authenticator.of_hashes((t.tenant_id, t.token_sha256, t.scopes) for t in tokens)
    tracer = tracing.start(settings.replica_id)
    server = grpc.aio.server(
        options=server_options(), interceptors=tracing.server_interceptors(tracer)
    )
    services = generic_only(server, budget)
    add_smart_trade_service(SmartTradeServicer(trades, utc_now, authenticator), services)
    exchange_account_service_pb2_grpc.add_ExchangeAccountServiceServicer_to_server(
        ExchangeAccountServicer(accounts, authenticator), services
    )
    paper_market_service_pb2_grpc.add_PaperMarketServiceServicer_to_server(
        PaperMarketServicer(Sandbox(engines, unit_of_work), authenticator), services
    )
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, services)
    reflected = (
        *SERVICES,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    )
    # What reflection.enable_server_reflection does for a grpc.aio server, generic only.
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        reflection.aio.ReflectionServicer(reflected), services
    )
    tls = tls_credentials(settings)
    # With TLS, calls forwarded to another replica verify it against this service's own chain.
    forwarding_credentials = None
    if tls is None:
        port = server.add_insecure_port(settings.listen)
    else:
        certificate_chain, private_key = tls
        credentials = grpc.ssl_server_credentials([(private_key, certificate_chain)])
        port = server.add_secure_port(settings.listen, credentials)
        forwarding_credentials = grpc.ssl_channel_credentials(root_certificates=certificate_chain)
    # The port the other replicas reach this one at: its own when it shares `listen`.
    reached_at = port
    if settings.internal_listen:
        reached_at = (
            server.add_insecure_port(settings.internal_listen)
            if tls is None
            else server.add_secure_port(settings.internal_listen, credentials)
        )
    for service in ("", *SERVICES, LEADER_HEALTH):
        await health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.start()
    log.info("listening on %s (port %d)", settings.listen, port)

    async def store_health(available: bool) -> None:
        metrics.recorder.store_available(available)
        serving = available and budget.accepting
        for service in ("", *SERVICES):
            await health.set(
                service,
                health_pb2.HealthCheckResponse.SERVING
                if serving
                else health_pb2.HealthCheckResponse.NOT_SERVING,
            )

    background: list[asyncio.Task[None]] = []
    if ownership is None:
        log.info("recovering live trades")
        single = make_engine(None, None)
        await single.start()
        engines.running_shards[EVERY_TENANT] = single
        await health.set(LEADER_HEALTH, health_pb2.HealthCheckResponse.SERVING)
        await store_health(True)
        log.info("serving")
        probe.on_change(store_health)  # first: a load balancer learns at once
    else:
        # Every replica answers every call: it serves the reads of trades, the watch stream
        # (its bus hears every replica's events) and the calls of the tenants whose shards
        # it runs, and forwards the rest to the replica that runs the caller's shard.
        assert fanout is not None
        assert lease is not None
        lease.address = settings.advertised(reached_at)

        async def owners() -> dict[int, tuple[str, str]]:
            assert lease is not None
            view = await lease.view()
            return {shard: (o.holder, o.address) for shard, o in view.owners.items()}

        def tenant_of(metadata: Any) -> str | None:
            found = authenticator.resolve(metadata)
            return found.tenant_id if found is not None else None

        budget.forward = Forwarder(
            engines.runs,
            owners,
            shard_of,
            tenant_of,
            settings.replica_id,
            forwarding_credentials,
        )

        async def shards_health() -> None:
            for service, running in (
                (LEADER_HEALTH, bool(engines.running_shards)),
                *((shard_health(s), s in engines.running_shards) for s in range(SHARDS)),
            ):
                await health.set(
                    service,
                    health_pb2.HealthCheckResponse.SERVING
                    if running
                    else health_pb2.HealthCheckResponse.NOT_SERVING,
                )

        def shards_changed() -> None:
            task = asyncio.create_task(shards_health())
            health_updates.add(task)
            task.add_done_callback(health_updates.discard)

        health_updates: set[asyncio.Task[None]] = set()

        ownership.on_change(shards_changed)
        background.append(asyncio.create_task(fanout.run()))
        await store_health(True)
        log.info("serving; taking a fair share of the shards (replica %s)", lease.holder)
        probe.on_change(store_health)
        background.append(asyncio.create_task(ownership.keep()))
        background.append(asyncio.create_task(ownership.balance()))
    probe.on_change(engines.on_store)
    retention = Retention(
        events=timedelta(days=settings.event_retention_days),
        requests=timedelta(hours=settings.request_retention_hours),
        every=settings.prune_interval,
    )
    stop_metrics = None
    if exported is not None:
        exported.live_trades(lambda: engines.live_count)
        exported.watchers(bus.watchers)
        stop_metrics = exported.serve(settings.metrics_listen)
        log.info("metrics on http://%s/metrics", settings.metrics_listen)
    background += [
        asyncio.create_task(probe.run()),
        asyncio.create_task(prune_history(unit_of_work, retention)),
        asyncio.create_task(bus.heartbeats()),
    ]
    return Running(
        server,
        port,
        health,
        engines,
        bus,
        database,
        unit_of_work,
        local_token,
        background,
        stop_metrics,
        tracer,
        ownership,
        budget,
    )


DRAIN_SECONDS = 0.25


@dataclass(frozen=True)
class Retention:
    events: timedelta  # the watch stream resumes within this
    requests: timedelta  # a retry gets its first answer within this
    every: float  # seconds between prunings


async def prune_history(unit_of_work: UnitOfWorkFactory, retention: Retention) -> None:
    """Every `retention.every` seconds: drop the events and the request ids older than their
    retention."""
    while True:
        try:
            now = utc_now()
            async with unit_of_work() as uow:
                events = await uow.events.prune(now - retention.events)
                requests = await uow.requests.prune(now - retention.requests)
                await uow.commit()
            if events or requests:
                log.info("pruned %d events and %d request ids", events, requests)
        except Exception:
            log.exception("pruning the history failed; trying again in %s s", retention.every)
        await asyncio.sleep(retention.every)


async def stop(running: Running, grace: float) -> None:
    for task in running.background:
        task.cancel()
    await running.health.enter_graceful_shutdown()
    if running.ownership is not None:
        # Replicas: a new call is refused (UNAVAILABLE: retry, elsewhere), and clients and
        # load balancers get a moment to see NOT_SERVING before the server stops taking calls.
        running.budget.accepting = False
        await asyncio.sleep(DRAIN_SECONDS)
    running.bus.close_all()
    await running.server.stop(grace)
    if running.ownership is None:
        await running.engines.stop()
    else:
        try:
            await running.ownership.leave()  # the others take the shards over at once
        except StoreUnavailable:
            seconds = running.ownership.leases.seconds
            log.warning("could not give the shards up; they lapse in %s s", seconds)
    await running.engines.venues.close()
    await running.database.close()
    if running.stop_metrics is not None:
        running.stop_metrics()
        metrics.use(metrics.Silent())
    tracing.stop(running.tracer)
