/**
 * The dynamic client (@grpc/proto-loader reads the .proto files at run time, no generated code)
 * against the real service: the same scenario as the typed test, in plain JavaScript objects
 * with the proto's own snake_case field names.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

import { PROTOS, RunningServer, startServer } from "./server";

const BTC = "BTC/USDT";

const definition = protoLoader.loadSync(
  [
    "smarttrade/v1/smart_trade_service.proto",
    "smarttrade/v1/exchange_account_service.proto",
    "smarttrade/v1/paper_market_service.proto",
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
  ].map((file) => join(PROTOS, file)),
  // Enums as their names, int64 as strings, unset fields with their defaults, and a
  // `payload` property naming the member set in each oneof.
  { includeDirs: [PROTOS], keepCase: true, enums: String, longs: String, defaults: true, oneofs: true },
);
const v1 = (grpc.loadPackageDefinition(definition).smarttrade as grpc.GrpcObject).v1 as grpc.GrpcObject;

type Message = Record<string, any>;
type Callback = (error: grpc.ServiceError | null, response: Message) => void;
type DynamicClient = grpc.Client &
  Record<string, (request: Message, metadata: grpc.Metadata, options: grpc.CallOptions, callback: Callback) => void>;

function client(service: string, address: string): DynamicClient {
  const Service = v1[service] as grpc.ServiceClientConstructor;
  return new Service(address, grpc.credentials.createInsecure()) as unknown as DynamicClient;
}

function call(target: DynamicClient, method: string, request: Message, metadata: grpc.Metadata): Promise<Message> {
  return new Promise((resolve, reject) =>
    target[method](request, metadata, { deadline: Date.now() + 10_000 }, (error, response) =>
      error ? reject(error) : resolve(response),
    ),
  );
}

/** The ErrorInfo and BadRequest of the google.rpc.Status in the error's trailers. */
function details(error: grpc.ServiceError): { reason: string; domain: string; fields: string[] } {
  const [bytes] = error.metadata.get("grpc-status-details-bin");
  assert.ok(bytes instanceof Buffer, "no grpc-status-details-bin trailer");
  const decode = (type: string, value: Buffer) =>
    (definition[type] as protoLoader.MessageTypeDefinition<Message, Message>).deserialize(value);
  const found = { reason: "", domain: "", fields: [] as string[] };
  for (const any of decode("google.rpc.Status", bytes).details as Message[]) {
    const type = String(any.type_url).split("/").pop()!;
    if (type === "google.rpc.ErrorInfo") {
      const info = decode(type, any.value);
      Object.assign(found, { reason: info.reason, domain: info.domain });
    } else if (type === "google.rpc.BadRequest") {
      found.fields = (decode(type, any.value).field_violations as Message[]).map((v) => v.field);
    }
  }
  return found;
}

describe("the dynamic JavaScript client (@grpc/proto-loader)", () => {
  let server: RunningServer;
  let trades: DynamicClient;
  let accounts: DynamicClient;
  let paper: DynamicClient;
  const metadata = new grpc.Metadata();

  before(async () => {
    server = await startServer();
    trades = client("SmartTradeService", server.address);
    accounts = client("ExchangeAccountService", server.address);
    paper = client("PaperMarketService", server.address);
    metadata.set("authorization", `Bearer ${server.token}`);
  });

  after(async () => {
    for (const each of [trades, accounts, paper]) each?.close();
    await server?.stop();
  });

  const setPrice = (price: string) =>
    call(paper, "SetPaperPrice", { symbol: BTC, price, request_id: randomUUID() }, metadata);

  test("a market buy goes ACTIVE, is read, and is watched to CLOSED at its take profit", async () => {
    const { exchange_account: account } = await call(
      accounts,
      "CreateExchangeAccount",
      { exchange_account: { exchange: "paper" }, request_id: randomUUID() },
      metadata,
    );
    await setPrice("100");
    const { smart_trade: created } = await call(
      trades,
      "CreateSmartTrade",
      {
        smart_trade: {
          account: account.name,
          symbol: BTC,
          side: "SIDE_BUY",
          entry: { type: "ENTRY_TYPE_MARKET", units: "1" },
          take_profit: { steps: [{ price: "110", volume_percent: "100" }] },
        },
        request_id: randomUUID(),
      },
      metadata,
    );
    assert.equal(created.state, "SMART_TRADE_STATE_ACTIVE");

    const { smart_trade: read } = await call(trades, "GetSmartTrade", { name: created.name }, metadata);
    assert.equal(read.state, "SMART_TRADE_STATE_ACTIVE");
    assert.equal(read.entry.size, "units");
    assert.equal(read.position.units_held, "0.999");

    const stream = (trades as any).WatchSmartTrades({ name: created.name }, metadata, {
      deadline: Date.now() + 30_000,
    }) as grpc.ClientReadableStream<Message>;
    stream.on("error", () => undefined); // the cancel below ends the stream with CANCELLED
    const messages = stream[Symbol.asyncIterator]();
    const next = async (): Promise<Message> => (await messages.next()).value;
    try {
      const snapshot = await next();
      assert.equal(snapshot.payload, "snapshot");
      assert.equal(snapshot.snapshot.name, created.name);
      const end = await next();
      assert.equal(end.payload, "snapshot_end");

      await setPrice("111");

      let last = BigInt(end.snapshot_end.sequence);
      for (;;) {
        const message = await next();
        if (message.payload === "heartbeat") continue;
        assert.equal(message.payload, "event");
        const event = message.event;
        assert.ok(BigInt(event.sequence) > last, "events arrive in sequence order");
        last = BigInt(event.sequence);
        if (event.type === "SMART_TRADE_EVENT_TYPE_STATE_CHANGED" && event.state === "SMART_TRADE_STATE_CLOSED") {
          assert.equal(event.smart_trade.close_reason, "CLOSE_REASON_TAKE_PROFIT");
          break;
        }
      }
    } finally {
      stream.cancel();
    }

    const { smart_trade: closed } = await call(trades, "GetSmartTrade", { name: created.name }, metadata);
    assert.equal(closed.state, "SMART_TRADE_STATE_CLOSED");
    assert.equal(closed.position.realized_pnl, "9.78011");
  });

  test("a malformed trade name is INVALID_ARGUMENT with an ErrorInfo and a BadRequest naming the field", async () => {
    const error = await call(trades, "GetSmartTrade", { name: "smartTrades/not-hex!" }, metadata).then(
      () => assert.fail("the call succeeded"),
      (failure: grpc.ServiceError) => failure,
    );

    assert.equal(error.code, grpc.status.INVALID_ARGUMENT);
    assert.deepEqual(details(error), { reason: "INVALID_FIELD", domain: "smarttrade.v1", fields: ["name"] });
  });
});
