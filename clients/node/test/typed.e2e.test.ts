/**
 * The typed (ts-proto) client against the real service: a paper trade from creation to CLOSED,
 * read and watched, one take-profit step closed at market, a simulation over candles, and rich
 * errors decoded.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";

import { ServiceError, status } from "@grpc/grpc-js";

import { SmartTradeClients, richError, unary } from "../src";
import {
  CloseReason,
  EntryType,
  LegState,
  OrderStatus,
  OrderType,
  Side,
  SmartTrade,
  SmartTradeAction,
  SmartTradeEventType,
  SmartTradeState,
} from "../src/gen/smarttrade/v1/smart_trade";
import { CreateExchangeAccountRequest } from "../src/gen/smarttrade/v1/exchange_account_service";
import { SetPaperPriceRequest } from "../src/gen/smarttrade/v1/paper_market_service";
import {
  Candle,
  CloseSmartTradeStepRequest,
  CreateSmartTradeRequest,
  ListSmartTradesRequest,
  SimulateSmartTradeRequest,
  WatchSmartTradesRequest,
  WatchSmartTradesResponse,
} from "../src/gen/smarttrade/v1/smart_trade_service";
import { RunningServer, startServer } from "./server";

const BTC = "BTC/USDT";

/** One-minute candles from 2026-03-01 00:00 UTC, each row open/high/low/close. */
function minuteCandles(...rows: [string, string, string, string][]): Candle[] {
  const start = Date.UTC(2026, 2, 1);
  return rows.map(([open, high, low, close], minute) =>
    Candle.fromPartial({ time: new Date(start + minute * 60_000), open, high, low, close }),
  );
}

async function failure(call: Promise<unknown>): Promise<ServiceError> {
  try {
    await call;
  } catch (error) {
    return error as ServiceError;
  }
  assert.fail("the call succeeded");
}

describe("the typed TypeScript client (ts-proto)", () => {
  let server: RunningServer;
  let clients: SmartTradeClients;

  before(async () => {
    server = await startServer();
    clients = new SmartTradeClients(server.address, server.token);
  });

  after(async () => {
    clients?.close();
    await server?.stop();
  });

  async function setPrice(price: string): Promise<void> {
    const { paper, metadata } = clients;
    const request = SetPaperPriceRequest.fromPartial({ symbol: BTC, price, requestId: randomUUID() });
    await unary(paper.setPaperPrice.bind(paper), request, metadata);
  }

  async function createPaperAccount(displayName: string): Promise<string> {
    const { accounts, metadata } = clients;
    const { exchangeAccount } = await unary(
      accounts.createExchangeAccount.bind(accounts),
      CreateExchangeAccountRequest.fromPartial({
        exchangeAccount: { exchange: "paper", displayName },
        requestId: randomUUID(),
      }),
      metadata,
    );
    return exchangeAccount!.name;
  }

  /** The trade once `holds` is true of it, read every 50 ms for up to 10 s. */
  async function eventually(name: string, holds: (trade: SmartTrade) => boolean): Promise<SmartTrade> {
    const { trades, metadata } = clients;
    const deadline = Date.now() + 10_000;
    for (;;) {
      const { smartTrade } = await unary(trades.getSmartTrade.bind(trades), { name }, metadata);
      if (holds(smartTrade!) || Date.now() > deadline) return smartTrade!;
      await new Promise((wake) => setTimeout(wake, 50));
    }
  }

  async function tradeNames(): Promise<string[]> {
    const { trades, metadata } = clients;
    const request = ListSmartTradesRequest.fromPartial({ pageSize: 500 });
    const { smartTrades } = await unary(trades.listSmartTrades.bind(trades), request, metadata);
    return smartTrades.map((trade) => trade.name);
  }

  test("a market buy goes ACTIVE, is read, and is watched to CLOSED at its take profit", async () => {
    const { trades, accounts, metadata } = clients;
    const { exchangeAccount } = await unary(
      accounts.createExchangeAccount.bind(accounts),
      CreateExchangeAccountRequest.fromPartial({
        exchangeAccount: { exchange: "paper", displayName: "node typed e2e" },
        requestId: randomUUID(),
      }),
      metadata,
    );
    assert.match(exchangeAccount!.name, /^exchangeAccounts\//);
    await setPrice("100");

    const { smartTrade: created } = await unary(
      trades.createSmartTrade.bind(trades),
      CreateSmartTradeRequest.fromPartial({
        smartTrade: {
          account: exchangeAccount!.name,
          symbol: BTC,
          side: Side.SIDE_BUY,
          entry: { type: EntryType.ENTRY_TYPE_MARKET, size: { $case: "units", value: "1" } },
          takeProfit: { steps: [{ target: { $case: "price", value: "110" }, volumePercent: "100" }] },
        },
        requestId: randomUUID(),
      }),
      metadata,
    );
    assert.equal(created!.state, SmartTradeState.SMART_TRADE_STATE_ACTIVE);

    const { smartTrade: read } = await unary(trades.getSmartTrade.bind(trades), { name: created!.name }, metadata);
    assert.equal(read!.name, created!.name);
    assert.equal(read!.state, SmartTradeState.SMART_TRADE_STATE_ACTIVE);
    assert.deepEqual(read!.takeProfit!.steps[0].target, { $case: "price", value: "110" });
    assert.equal(read!.position!.unitsHeld, "0.999"); // the 0.1% fee is paid in BTC

    const stream = clients.trades.watchSmartTrades(
      WatchSmartTradesRequest.fromPartial({ name: created!.name }),
      metadata,
      { deadline: Date.now() + 30_000 },
    );
    stream.on("error", () => undefined); // the cancel below ends the stream with CANCELLED
    const messages: AsyncIterator<WatchSmartTradesResponse> = stream[Symbol.asyncIterator]();
    const next = async () => (await messages.next()).value!.payload!;
    try {
      const snapshot = await next();
      assert.equal(snapshot.$case, "snapshot");
      assert.equal(snapshot.value.name, created!.name);
      const snapshotEnd = await next();
      assert.ok(snapshotEnd.$case === "snapshotEnd");

      await setPrice("111");

      const sequences: bigint[] = [];
      for (;;) {
        const payload = await next();
        if (payload.$case === "heartbeat") continue;
        assert.ok(payload.$case === "event", `unexpected ${payload.$case}`);
        const event = payload.value;
        assert.equal(event.smartTradeName, created!.name);
        sequences.push(event.sequence);
        if (
          event.type === SmartTradeEventType.SMART_TRADE_EVENT_TYPE_STATE_CHANGED &&
          event.state === SmartTradeState.SMART_TRADE_STATE_CLOSED
        ) {
          assert.equal(event.smartTrade!.closeReason, CloseReason.CLOSE_REASON_TAKE_PROFIT);
          break;
        }
      }
      assert.ok(sequences[0] > snapshotEnd.value.sequence);
      assert.deepEqual(sequences, [...new Set(sequences)].sort((a, b) => (a < b ? -1 : 1)));
    } finally {
      stream.cancel();
    }

    const { smartTrade: closed } = await unary(trades.getSmartTrade.bind(trades), { name: created!.name }, metadata);
    assert.equal(closed!.state, SmartTradeState.SMART_TRADE_STATE_CLOSED);
    // Sold 0.999 at 110 less the 0.1% fee, against a cost of 100: decimal strings, exactly.
    assert.equal(closed!.position!.realizedPnl, "9.78011");
  });

  test("closing take-profit step 1 sells it at market while step 2 keeps working", async () => {
    const { trades, metadata } = clients;
    const account = await createPaperAccount("node typed close step");
    await setPrice("100");
    const { smartTrade: created } = await unary(
      trades.createSmartTrade.bind(trades),
      CreateSmartTradeRequest.fromPartial({
        smartTrade: {
          account,
          symbol: BTC,
          side: Side.SIDE_BUY,
          entry: { type: EntryType.ENTRY_TYPE_MARKET, size: { $case: "units", value: "1" } },
          takeProfit: {
            steps: [
              { target: { $case: "price", value: "110" }, volumePercent: "50" },
              { target: { $case: "price", value: "120" }, volumePercent: "50" },
            ],
          },
        },
        requestId: randomUUID(),
      }),
      metadata,
    );
    assert.equal(created!.state, SmartTradeState.SMART_TRADE_STATE_ACTIVE);
    assert.ok(created!.availableActions.includes(SmartTradeAction.SMART_TRADE_ACTION_CLOSE_STEP));

    await unary(
      trades.closeSmartTradeStep.bind(trades),
      CloseSmartTradeStepRequest.fromPartial({ name: created!.name, requestId: randomUUID(), step: 1 }),
      metadata,
    );

    const leg = (trade: SmartTrade, id: string) => trade.legs.find((candidate) => candidate.id === id)!;
    const closed = await eventually(created!.name, (trade) => leg(trade, "tp1").state === LegState.LEG_STATE_FILLED);
    const tp1 = leg(closed, "tp1");
    assert.equal(tp1.state, LegState.LEG_STATE_FILLED);
    const sold = tp1.orders[tp1.orders.length - 1];
    assert.deepEqual([sold.type, sold.status], [OrderType.ORDER_TYPE_MARKET, OrderStatus.ORDER_STATUS_FILLED]);
    // Half of the 0.999 held (the 0.1% entry fee is paid in BTC), rounded to the lot.
    assert.equal(sold.amount, "0.4995");
    assert.equal(sold.filled, "0.4995");
    assert.deepEqual(
      leg(closed, "tp2").orders.map((order) => [order.status, order.price]),
      [[OrderStatus.ORDER_STATUS_OPEN, "120"]],
    );
    assert.equal(closed.state, SmartTradeState.SMART_TRADE_STATE_ACTIVE);
  });

  test("a simulation over candles closes at its take profit and stores nothing", async () => {
    const { trades, metadata } = clients;
    const before = await tradeNames();

    const simulation = await unary(
      trades.simulateSmartTrade.bind(trades),
      SimulateSmartTradeRequest.fromPartial({
        smartTrade: {
          symbol: BTC,
          side: Side.SIDE_BUY,
          entry: { type: EntryType.ENTRY_TYPE_MARKET, size: { $case: "units", value: "1" } },
          takeProfit: { steps: [{ target: { $case: "price", value: "110" }, volumePercent: "100" }] },
        },
        candles: minuteCandles(["100", "100", "100", "100"], ["100", "111", "99", "110"], ["110", "112", "109", "111"]),
      }),
      metadata,
    );

    const trade = simulation.smartTrade!;
    assert.equal(trade.state, SmartTradeState.SMART_TRADE_STATE_CLOSED);
    assert.equal(trade.closeReason, CloseReason.CLOSE_REASON_TAKE_PROFIT);
    // Bought 0.999 net at 100, sold at 110 less the 0.1% fee: decimal strings, exactly.
    assert.equal(trade.position!.realizedPnl, "9.78011");
    assert.equal(simulation.candleCount, 3n);
    assert.ok(simulation.events.length > 0, "no events");
    assert.deepEqual(
      simulation.events.map((event) => event.sequence),
      simulation.events.map((_, index) => BigInt(index + 1)),
    );
    assert.deepEqual(await tradeNames(), before);
  });

  test("a simulation refuses a candle whose high is below its low, naming the field", async () => {
    const { trades, metadata } = clients;
    const error = await failure(
      unary(
        trades.simulateSmartTrade.bind(trades),
        SimulateSmartTradeRequest.fromPartial({
          smartTrade: {
            symbol: BTC,
            side: Side.SIDE_BUY,
            entry: { type: EntryType.ENTRY_TYPE_MARKET, size: { $case: "units", value: "1" } },
          },
          candles: minuteCandles(["100", "101", "99", "100"], ["100", "99", "101", "100"]),
        }),
        metadata,
      ),
    );

    assert.equal(error.code, status.INVALID_ARGUMENT);
    const rich = richError(error);
    assert.ok(rich, "no grpc-status-details-bin trailer");
    assert.equal(rich.reason, "INVALID_FIELD");
    assert.deepEqual(
      rich.fieldViolations.map((violation) => violation.field),
      ["candles[1].high"],
    );
  });

  test("a malformed trade name is INVALID_ARGUMENT with an ErrorInfo and a BadRequest naming the field", async () => {
    const { trades, metadata } = clients;
    const error = await failure(unary(trades.getSmartTrade.bind(trades), { name: "smartTrades/not-hex!" }, metadata));

    assert.equal(error.code, status.INVALID_ARGUMENT);
    const rich = richError(error);
    assert.ok(rich, "no grpc-status-details-bin trailer");
    assert.equal(rich.reason, "INVALID_FIELD");
    assert.equal(rich.domain, "smarttrade.v1");
    assert.deepEqual(
      rich.fieldViolations.map((violation) => violation.field),
      ["name"],
    );
  });
});
