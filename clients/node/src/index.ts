/**
 * The typed Node client of smarttrade.v1: the ts-proto stubs of the three services, the bearer
 * token on every call, promises instead of callbacks, and the google.rpc error details decoded.
 *
 * Message types live in the generated modules, for example
 * `import { Side } from "smarttrade-client-node/dist/src/gen/smarttrade/v1/smart_trade"`.
 */
import {
  CallOptions,
  ChannelCredentials,
  ClientUnaryCall,
  Metadata,
  ServiceError,
  credentials,
} from "@grpc/grpc-js";

import { ExchangeAccountServiceClient } from "./gen/smarttrade/v1/exchange_account_service";
import { PaperMarketServiceClient } from "./gen/smarttrade/v1/paper_market_service";
import { SmartTradeServiceClient } from "./gen/smarttrade/v1/smart_trade_service";

export { richError, RichError, FieldViolation } from "./rich-error";
export { ExchangeAccountServiceClient, PaperMarketServiceClient, SmartTradeServiceClient };

/** Unary calls without a deadline of their own get this one. */
export const DEFAULT_DEADLINE_MS = 10_000;

/** The three services on one address, authenticated as one tenant. */
export class SmartTradeClients {
  readonly trades: SmartTradeServiceClient;
  readonly accounts: ExchangeAccountServiceClient;
  readonly paper: PaperMarketServiceClient;
  /** `authorization: Bearer <token>`; pass it to every call. */
  readonly metadata: Metadata;

  constructor(address: string, token: string, channel: ChannelCredentials = credentials.createInsecure()) {
    // grpc-js refuses call credentials on an insecure channel, so the token travels as
    // per-call metadata (the service listens on loopback without TLS in its quick start).
    this.trades = new SmartTradeServiceClient(address, channel);
    this.accounts = new ExchangeAccountServiceClient(address, channel);
    this.paper = new PaperMarketServiceClient(address, channel);
    this.metadata = new Metadata();
    this.metadata.set("authorization", `Bearer ${token}`);
  }

  close(): void {
    this.trades.close();
    this.accounts.close();
    this.paper.close();
  }
}

type UnaryMethod<Request, Response> = (
  request: Request,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Response) => void,
) => ClientUnaryCall;

/**
 * Calls a unary method of a generated client and resolves with its response, or rejects with
 * the grpc-js `ServiceError` (decode it with `richError`).
 *
 *     const { smartTrade } = await unary(clients.trades.getSmartTrade.bind(clients.trades),
 *                                        { name }, clients.metadata);
 */
export function unary<Request, Response>(
  method: UnaryMethod<Request, Response>,
  request: Request,
  metadata: Metadata,
  deadlineMs: number = DEFAULT_DEADLINE_MS,
): Promise<Response> {
  return new Promise((resolve, reject) => {
    method(request, metadata, { deadline: Date.now() + deadlineMs }, (error, response) =>
      error ? reject(error) : resolve(response),
    );
  });
}
