/**
 * The typed (ts-proto) client against the real service: a paper trade from creation to CLOSED,
 * read and watched, and a rich error decoded.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";

import { ServiceError, status } from "@grpc/grpc-js";

import { SmartTradeClients, richError, unary } from "../src";
import {
  CloseReason,
  EntryType,
  Side,
  SmartTradeEventType,
  SmartTradeState,
} from "../src/gen/smarttrade/v1/smart_trade";
import { CreateExchangeAccountRequest } from "../src/gen/smarttrade/v1/exchange_account_service";
import { SetPaperPriceRequest } from "../src/gen/smarttrade/v1/paper_market_service";
import {
  CreateSmartTradeRequest,
  WatchSmartTradesRequest,
  WatchSmartTradesResponse,
} from "../src/gen/smarttrade/v1/smart_trade_service";
import { RunningServer, startServer } from "./server";

const BTC = "BTC/USDT";

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
