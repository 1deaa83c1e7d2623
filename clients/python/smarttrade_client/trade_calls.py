"""The SmartTradeService part of the asyncio client: trades, their menu, shares, watching."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from smarttrade_client import convert
from smarttrade_client.calls import RetryPolicy, new_request_id
from smarttrade_client.client_base import DEFAULT_PAGE_SIZE, ClientBase, account_name, trade_name
from smarttrade_client.models import (
    Candle,
    CandleSource,
    Entry,
    Leverage,
    OrderType,
    Share,
    Side,
    Simulation,
    SmartTrade,
    StopLoss,
    TakeProfitStep,
    TradeState,
    TriggerPrice,
    WatchItem,
)
from smarttrade_client.v1 import smart_trade_pb2 as pb
from smarttrade_client.v1 import smart_trade_service_pb2 as trades_pb
from smarttrade_client.watching import resuming_watch

# A watch waits out a service restart: reconnections over roughly 20 to 40 seconds.
WATCH_RETRY = RetryPolicy(attempts=12, initial_backoff=0.2, max_backoff=5.0)


class TradeCalls(ClientBase):
    """Trades: create, read, list, the management menu, shares and the watch stream."""

    async def create_trade(
        self,
        *,
        account: str,
        symbol: str,
        side: Side,
        entry: Entry,
        take_profit: Sequence[TakeProfitStep] = (),
        stop_loss: StopLoss | None = None,
        leverage: Leverage | None = None,
        note: str = "",
        labels: Mapping[str, str] | None = None,
        smart_trade_id: str = "",
        time_limit: timedelta | None = None,
        trigger_price: TriggerPrice | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> SmartTrade:
        """Create a SmartTrade and start its entry (a market entry is sent at once).

        `account` is the exchange account to trade on; `take_profit` up to 8 steps whose
        volumes sum to 100; `stop_loss` None for none. Raises `InvalidArgument` naming every
        bad field (`error.field_violations`). `time_limit` closes the position at market
        once it has been open that long (whole seconds). `trigger_price`: which price the
        triggers watch (default LAST; BID, ASK, MARK for futures).

        `labels`: up to 64, keys and values of lowercase letters, digits, `_` and `-` (keys
        start with a letter, both at most 63 characters). `smart_trade_id`: your own id for
        the trade (4 to 63 lowercase letters, digits and hyphens, starting with a letter),
        which names it `smartTrades/{smart_trade_id}`; one in use raises `AlreadyExists`,
        unless this is a retry with the same `request_id`.
        """
        trade = convert.trade_message(
            account=account_name(account),
            symbol=symbol,
            side=side,
            entry=entry,
            take_profit=take_profit,
            stop_loss=stop_loss,
            leverage=leverage,
            note=note,
            labels=labels,
            time_limit=time_limit,
            trigger_price=trigger_price,
        )
        key = request_id or new_request_id()
        request = trades_pb.CreateSmartTradeRequest(
            smart_trade=trade, request_id=key, smart_trade_id=smart_trade_id
        )
        answer = await self._caller.call(
            self._trades.CreateSmartTrade, request, timeout=timeout, request_id=key
        )
        return convert.smart_trade(answer.smart_trade)

    async def create_trade_from_share(
        self,
        share_token: str,
        *,
        account: str,
        units: Decimal | None = None,
        total: Decimal | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> SmartTrade:
        """Create a trade with a shared trade's settings, on your `account`, with your own
        size (`units` in base or `total` in quote)."""
        entry = pb.Entry()
        convert.one_of("size", units=units, total=total)
        if units is not None:
            entry.units = convert.text(units)
        if total is not None:
            entry.total = convert.text(total)
        trade = pb.SmartTrade(account=account_name(account), entry=entry)
        key = request_id or new_request_id()
        request = trades_pb.CreateSmartTradeRequest(
            smart_trade=trade, request_id=key, share_token=share_token
        )
        answer = await self._caller.call(
            self._trades.CreateSmartTrade, request, timeout=timeout, request_id=key
        )
        return convert.smart_trade(answer.smart_trade)

    async def simulate(
        self,
        *,
        symbol: str,
        side: Side,
        entry: Entry,
        take_profit: Sequence[TakeProfitStep] = (),
        stop_loss: StopLoss | None = None,
        leverage: Leverage | None = None,
        candles: Sequence[Candle] = (),
        source: CandleSource | None = None,
        account: str = "",
        balances: Mapping[str, Decimal] | None = None,
        note: str = "",
        labels: Mapping[str, str] | None = None,
        time_limit: timedelta | None = None,
        trigger_price: TriggerPrice | None = None,
        timeout: float | None = None,
    ) -> Simulation:
        """What a trade with these settings would have done over a price history: `candles`
        (at most 50,000) or a `source` the service fetches (at most 600,000 candles).

        The settings run through the service's own core on a private paper book, with the
        paper venue's matching and fees; nothing is stored and no order is sent. Each candle
        is four ticks: open, the extreme nearer to the open, the other, close; the trade is
        created at the first open. `account` (optional) gives the markets of its venue and,
        for a paper account, its fees and slippage; `balances` the simulated account's
        starting balances (default: enough for any trade). Spot or futures. Raises
        `InvalidArgument` naming every bad field (a candle's as `candles[3].high`).
        """
        trade = convert.trade_message(
            account=account_name(account) if account else "",
            symbol=symbol,
            side=side,
            entry=entry,
            take_profit=take_profit,
            stop_loss=stop_loss,
            leverage=leverage,
            note=note,
            labels=labels,
            time_limit=time_limit,
            trigger_price=trigger_price,
        )
        request = trades_pb.SimulateSmartTradeRequest(
            smart_trade=trade,
            candles=[convert.candle_message(candle) for candle in candles],
            balances={c: convert.text(amount) for c, amount in (balances or {}).items()},
        )
        if source is not None:
            request.candle_source.CopyFrom(convert.candle_source_message(source))
        answer = await self._caller.call(self._trades.SimulateSmartTrade, request, timeout=timeout)
        return convert.simulation(answer)

    async def get_trade(self, name: str, *, timeout: float | None = None) -> SmartTrade:
        """One trade, as it is now. Raises `NotFound`."""
        request = trades_pb.GetSmartTradeRequest(name=trade_name(name))
        answer = await self._caller.call(self._trades.GetSmartTrade, request, timeout=timeout)
        return convert.smart_trade(answer.smart_trade)

    async def list_trades(
        self,
        *,
        states: Iterable[TradeState] = (),
        symbol: str = "",
        account: str = "",
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        filter: str = "",
        order_by: str = "",
        page_size: int = DEFAULT_PAGE_SIZE,
        timeout: float | None = None,
    ) -> AsyncIterator[SmartTrade]:
        """Iterate over the caller's trades, newest first, fetching pages as needed.

        The filters combine with AND: `states` (any of them), `symbol`, `account`, the
        creation time (`created_after` inclusive, `created_before` exclusive), and `filter`,
        an AIP-160 expression such as
        `'state = ACTIVE AND labels.bot = "grid" AND create_time >= "2026-12-01T00:00:00Z"'`
        (fields: state, side, close_reason, symbol, account, labels.{key}, create_time,
        end_time). `order_by`: `create_time`, `update_time` or `realized_pnl`, ascending
        unless followed by ` desc`; empty: newest first.
        """
        request = trades_pb.ListSmartTradesRequest(
            filter=filter,
            order_by=order_by,
            page_size=page_size,
            states=convert.trade_states(states),
            symbol=symbol,
            account=account_name(account) if account else "",
        )
        if created_after is not None:
            request.create_time_start.CopyFrom(convert.timestamp(created_after))
        if created_before is not None:
            request.create_time_end.CopyFrom(convert.timestamp(created_before))
        while True:
            page = await self._caller.call(self._trades.ListSmartTrades, request, timeout=timeout)
            for trade in page.smart_trades:
                yield convert.smart_trade(trade)
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    async def edit_trade(
        self,
        name: str,
        *,
        entry: Entry | None = None,
        take_profit: Sequence[TakeProfitStep] | None = None,
        stop_loss: StopLoss | None = None,
        remove_stop_loss: bool = False,
        note: str | None = None,
        labels: Mapping[str, str] | None = None,
        time_limit: timedelta | None = None,
        remove_time_limit: bool = False,
        update_mask: Sequence[str] | None = None,
        etag: str | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> SmartTrade:
        """Edit: replace the settings you pass (the entry only while PENDING; take profit,
        stop loss, note and labels while PENDING or ACTIVE). `remove_stop_loss=True` drops the
        stop; `labels` replaces them all (`{}` removes them).

        The update mask is the settings given; pass `update_mask` for finer paths, e.g.
        `edit_trade(name, entry=Entry.limit(Decimal(96)), update_mask=["entry.limit_price"])`.
        `SmartTrade.editable_fields` says what may change now. With `etag`, the edit is
        refused (`Aborted`) if the trade changed since you read it.
        """
        paths = []
        if entry is not None:
            paths.append("entry")
        if take_profit is not None:
            paths.append("take_profit")
        if stop_loss is not None or remove_stop_loss:
            paths.append("stop_loss")
        if note is not None:
            paths.append("note")
        if labels is not None:
            paths.append("labels")
        if time_limit is not None or remove_time_limit:
            paths.append("time_limit")
        trade = convert.trade_message(
            name=trade_name(name),
            entry=entry,
            take_profit=take_profit,
            stop_loss=None if remove_stop_loss else stop_loss,
            note=note or "",
            etag=etag or "",
            labels=labels,
            time_limit=None if remove_time_limit else time_limit,
        )
        mask = FieldMask(paths=list(update_mask) if update_mask is not None else paths)
        key = request_id or new_request_id()
        request = trades_pb.UpdateSmartTradeRequest(
            smart_trade=trade, update_mask=mask, request_id=key
        )
        answer = await self._caller.call(
            self._trades.UpdateSmartTrade, request, timeout=timeout, request_id=key
        )
        return convert.smart_trade(answer.smart_trade)

    async def refresh(self, name: str, *, timeout: float | None = None) -> SmartTrade:
        """Refresh: sync the trade with the exchange now and return it."""
        request = trades_pb.RefreshSmartTradeRequest(name=trade_name(name))
        answer = await self._caller.call(self._trades.RefreshSmartTrade, request, timeout=timeout)
        return convert.smart_trade(answer.smart_trade)

    async def add_funds(
        self,
        name: str,
        *,
        units: Decimal | None = None,
        total: Decimal | None = None,
        limit_price: Decimal | None = None,
        etag: str | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> SmartTrade:
        """Add Funds: another entry order (market, or limit at `limit_price`) of `units`
        (base) or `total` (quote); its fills average into the position."""
        convert.one_of("size", units=units, total=total)
        key = request_id or new_request_id()
        request = trades_pb.AddSmartTradeFundsRequest(
            name=trade_name(name),
            request_id=key,
            etag=etag or "",
            order_type=convert.order_type_number(
                OrderType.LIMIT if limit_price is not None else None
            ),
            limit_price=convert.text(limit_price),
        )
        if units is not None:
            request.units = convert.text(units)
        if total is not None:
            request.total = convert.text(total)
        answer = await self._caller.call(
            self._trades.AddSmartTradeFunds, request, timeout=timeout, request_id=key
        )
        return convert.smart_trade(answer.smart_trade)

    async def reduce_funds(
        self,
        name: str,
        *,
        units: Decimal | None = None,
        percent: Decimal | None = None,
        etag: str | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> SmartTrade:
        """Reduce Funds: sell `units`, or `percent` of the units held, at market; the
        remaining take-profit volumes scale down. ACTIVE only."""
        convert.one_of("amount", units=units, percent=percent)
        key = request_id or new_request_id()
        request = trades_pb.ReduceSmartTradeFundsRequest(
            name=trade_name(name), request_id=key, etag=etag or ""
        )
        if units is not None:
            request.units = convert.text(units)
        if percent is not None:
            request.percent = convert.text(percent)
        answer = await self._caller.call(
            self._trades.ReduceSmartTradeFunds, request, timeout=timeout, request_id=key
        )
        return convert.smart_trade(answer.smart_trade)

    async def open_now(
        self,
        name: str,
        *,
        etag: str | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> SmartTrade:
        """Open Now: execute the entry at market now, dropping its condition or limit.
        PENDING only."""
        key = request_id or new_request_id()
        request = trades_pb.OpenSmartTradeRequest(
            name=trade_name(name), request_id=key, etag=etag or ""
        )
        answer = await self._caller.call(
            self._trades.OpenSmartTrade, request, timeout=timeout, request_id=key
        )
        return convert.smart_trade(answer.smart_trade)

    async def close_at_market(
        self,
        name: str,
        *,
        etag: str | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> SmartTrade:
        """Close at Market: cancel the take-profit orders and sell everything at market.
        ACTIVE only (`FailedPrecondition` otherwise)."""
        key = request_id or new_request_id()
        request = trades_pb.CloseSmartTradeRequest(
            name=trade_name(name), request_id=key, etag=etag or ""
        )
        answer = await self._caller.call(
            self._trades.CloseSmartTrade, request, timeout=timeout, request_id=key
        )
        return convert.smart_trade(answer.smart_trade)

    async def close_step(
        self,
        name: str,
        step: int,
        *,
        etag: str | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> SmartTrade:
        """Close one take-profit step at market: its limit order is cancelled and what is
        left of the step sold at market; the other steps and the stop loss go on. `step` is
        1-based. ACTIVE with the step not done (`FailedPrecondition` otherwise); a step not
        in the plan is `InvalidArgument`."""
        key = request_id or new_request_id()
        request = trades_pb.CloseSmartTradeStepRequest(
            name=trade_name(name), request_id=key, etag=etag or "", step=step
        )
        answer = await self._caller.call(
            self._trades.CloseSmartTradeStep, request, timeout=timeout, request_id=key
        )
        return convert.smart_trade(answer.smart_trade)

    async def cancel(
        self,
        name: str,
        *,
        etag: str | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> SmartTrade:
        """Cancel: stop managing the trade. PENDING: its working orders are cancelled and
        nothing is bought or sold. ACTIVE: the service's orders are cancelled and the coins
        stay on the exchange."""
        key = request_id or new_request_id()
        request = trades_pb.CancelSmartTradeRequest(
            name=trade_name(name), request_id=key, etag=etag or ""
        )
        answer = await self._caller.call(
            self._trades.CancelSmartTrade, request, timeout=timeout, request_id=key
        )
        return convert.smart_trade(answer.smart_trade)

    async def share(
        self,
        name: str,
        *,
        ttl: timedelta | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> Share:
        """Share: a link to the trade's settings (no account, size or secrets). The answer
        holds the `token`, returned only this once; it stops resolving after `ttl`."""
        key = request_id or new_request_id()
        request = trades_pb.ShareSmartTradeRequest(name=trade_name(name), request_id=key)
        if ttl is not None:
            request.ttl.CopyFrom(convert.duration(ttl))
        answer = await self._caller.call(
            self._trades.ShareSmartTrade, request, timeout=timeout, request_id=key
        )
        return convert.share(answer.share)

    async def resolve_share(self, token: str, *, timeout: float | None = None) -> Share:
        """The settings a share token reveals (any authenticated caller may ask)."""
        request = trades_pb.GetSmartTradeShareRequest(token=token)
        answer = await self._caller.call(self._trades.GetSmartTradeShare, request, timeout=timeout)
        return convert.share(answer.share)

    async def get_share(self, name: str, *, timeout: float | None = None) -> Share:
        """One of your shares by its name (`smartTrades/{id}/shares/{share}`), never its
        token; `NotFound` once revoked."""
        request = trades_pb.GetSmartTradeShareRequest(name=name)
        answer = await self._caller.call(self._trades.GetSmartTradeShare, request, timeout=timeout)
        return convert.share(answer.share)

    async def list_shares(
        self,
        trade: str | None = None,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        timeout: float | None = None,
    ) -> AsyncIterator[Share]:
        """Iterate over your shares of one trade (all your trades' when `trade` is None),
        newest first, without tokens; revoked ones are left out."""
        parent = trade_name(trade) if trade else "smartTrades/-"
        request = trades_pb.ListSmartTradeSharesRequest(parent=parent, page_size=page_size)
        while True:
            page = await self._caller.call(
                self._trades.ListSmartTradeShares, request, timeout=timeout
            )
            for share in page.shares:
                yield convert.share(share)
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    async def revoke_share(
        self, name: str, *, request_id: str | None = None, timeout: float | None = None
    ) -> None:
        """Revoke a share (`smartTrades/{id}/shares/{share}`): its token stops resolving."""
        key = request_id or new_request_id()
        request = trades_pb.DeleteSmartTradeShareRequest(name=name, request_id=key)
        await self._caller.call(
            self._trades.DeleteSmartTradeShare, request, timeout=timeout, request_id=key
        )

    def watch(
        self,
        name: str | None = None,
        *,
        after_sequence: int = 0,
        heartbeat: timedelta = timedelta(seconds=15),
        heartbeats: bool = False,
        retry: RetryPolicy = WATCH_RETRY,
    ) -> AsyncGenerator[WatchItem, None]:
        """Watch one trade (`name`) or all of the caller's trades, for as long as you iterate.

        From the start (`after_sequence=0`) it yields a snapshot first, one `TradeSnapshot`
        per trade (every non-terminal one when watching all), then `SnapshotEnd`; then an
        `Event` for everything that happens, in `sequence` order (`event.trade` is the whole
        trade after it). With `after_sequence=N` it yields the events after N instead.
        `Heartbeat`s (every `heartbeat` when idle) are yielded only with `heartbeats=True`.

        A broken stream (UNAVAILABLE, including the server's STREAM_OVERFLOW and its
        SHUTTING_DOWN on a restart, or silence for three heartbeats) is resumed after the last
        sequence yielded; no event is yielded twice. It raises `OutOfRange` when the history to
        resume from is no longer kept, and `Unavailable` after `retry.attempts` reconnections
        in a row that received nothing (by default about half a minute of trying: long enough
        for the service to restart). Breaking out of the loop (or `aclose()`) ends the stream.
        """
        if heartbeat < timedelta(seconds=1):
            raise ValueError("heartbeat must be at least one second")

        def open_stream(
            request: trades_pb.WatchSmartTradesRequest,
        ) -> grpc.aio.UnaryStreamCall[
            trades_pb.WatchSmartTradesRequest, trades_pb.WatchSmartTradesResponse
        ]:
            return self._trades.WatchSmartTrades(request, metadata=self._caller.metadata)

        return resuming_watch(
            open_stream,
            name=trade_name(name) if name else "",
            after_sequence=after_sequence,
            heartbeat=heartbeat,
            retry=retry,
            heartbeats=heartbeats,
        )
