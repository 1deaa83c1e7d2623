package com.smarttrade.e2e;

import com.smarttrade.client.RichError;
import com.smarttrade.client.SmartTradeClients;
import com.smarttrade.v1.CloseReason;
import com.smarttrade.v1.CreateExchangeAccountRequest;
import com.smarttrade.v1.CreateSmartTradeRequest;
import com.smarttrade.v1.Entry;
import com.smarttrade.v1.EntryType;
import com.smarttrade.v1.ExchangeAccount;
import com.smarttrade.v1.GetSmartTradeRequest;
import com.smarttrade.v1.SetPaperPriceRequest;
import com.smarttrade.v1.Side;
import com.smarttrade.v1.SmartTrade;
import com.smarttrade.v1.SmartTradeEvent;
import com.smarttrade.v1.SmartTradeEventType;
import com.smarttrade.v1.SmartTradeState;
import com.smarttrade.v1.TakeProfit;
import com.smarttrade.v1.TakeProfitStep;
import com.smarttrade.v1.WatchSmartTradesRequest;
import com.smarttrade.v1.WatchSmartTradesResponse;
import io.grpc.Context;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

/**
 * The generated Java client against the real service: a paper trade from creation to CLOSED,
 * read and watched, and a rich error decoded. A plain main class (no test framework in Debian's
 * jars is needed): each test is a method, and the run ends with "N passed, N failed".
 */
public final class EndToEnd {
  private static final String BTC = "BTC/USDT";

  private final SmartTradeClients clients;

  private EndToEnd(SmartTradeClients clients) {
    this.clients = clients;
  }

  public static void main(String[] args) throws Exception {
    int failed;
    try (ServerProcess server = ServerProcess.start();
        SmartTradeClients clients = SmartTradeClients.connect(server.target, server.token)) {
      EndToEnd tests = new EndToEnd(clients);
      Map<String, Check> checks = new LinkedHashMap<>();
      checks.put(
          "a market buy goes ACTIVE, is read, and is watched to CLOSED at its take profit",
          tests::aMarketBuyIsWatchedToClosedAtItsTakeProfit);
      checks.put(
          "a malformed trade name is INVALID_ARGUMENT with an ErrorInfo and a BadRequest naming the field",
          tests::aMalformedNameIsInvalidArgumentWithRichDetails);
      failed = run(checks);
    }
    System.exit(failed == 0 ? 0 : 1);
  }

  @FunctionalInterface
  interface Check {
    void run() throws Exception;
  }

  private static int run(Map<String, Check> checks) {
    int passed = 0;
    int failed = 0;
    for (Map.Entry<String, Check> check : checks.entrySet()) {
      long started = System.nanoTime();
      try {
        check.getValue().run();
        passed++;
        System.out.printf("PASS %s (%d ms)%n", check.getKey(), (System.nanoTime() - started) / 1_000_000);
      } catch (Exception | AssertionError e) {
        failed++;
        System.out.printf("FAIL %s%n", check.getKey());
        e.printStackTrace(System.out);
      }
    }
    System.out.printf("java: %d passed, %d failed%n", passed, failed);
    return failed;
  }

  private static void expect(boolean condition, String what, Object... args) {
    if (!condition) {
      throw new AssertionError(String.format(what, args));
    }
  }

  private static void expectEqual(Object actual, Object expected, String what) {
    expect(Objects.equals(actual, expected), "%s: got %s, want %s", what, actual, expected);
  }

  private static String requestId() {
    return UUID.randomUUID().toString();
  }

  private void setPrice(String price) {
    clients
        .paper()
        .setPaperPrice(
            SetPaperPriceRequest.newBuilder().setSymbol(BTC).setPrice(price).setRequestId(requestId()).build());
  }

  void aMarketBuyIsWatchedToClosedAtItsTakeProfit() {
    String account =
        clients
            .accounts()
            .createExchangeAccount(
                CreateExchangeAccountRequest.newBuilder()
                    .setExchangeAccount(
                        ExchangeAccount.newBuilder().setExchange("paper").setDisplayName("java e2e"))
                    .setRequestId(requestId())
                    .build())
            .getExchangeAccount()
            .getName();
    setPrice("100");

    SmartTrade created =
        clients
            .trades()
            .createSmartTrade(
                CreateSmartTradeRequest.newBuilder()
                    .setSmartTrade(
                        SmartTrade.newBuilder()
                            .setAccount(account)
                            .setSymbol(BTC)
                            .setSide(Side.SIDE_BUY)
                            .setEntry(Entry.newBuilder().setType(EntryType.ENTRY_TYPE_MARKET).setUnits("1"))
                            .setTakeProfit(
                                TakeProfit.newBuilder()
                                    .addSteps(TakeProfitStep.newBuilder().setPrice("110").setVolumePercent("100"))))
                    .setRequestId(requestId())
                    .build())
            .getSmartTrade();
    expectEqual(created.getState(), SmartTradeState.SMART_TRADE_STATE_ACTIVE, "state after create");

    SmartTrade read =
        clients.trades().getSmartTrade(GetSmartTradeRequest.newBuilder().setName(created.getName()).build()).getSmartTrade();
    expectEqual(read.getName(), created.getName(), "name read");
    expectEqual(read.getState(), SmartTradeState.SMART_TRADE_STATE_ACTIVE, "state read");
    expectEqual(read.getTakeProfit().getSteps(0).getPrice(), "110", "take-profit price");
    expectEqual(read.getPosition().getUnitsHeld(), "0.999", "units held (the 0.1% fee is paid in BTC)");

    // The stream belongs to a cancellable context: cancelling it ends the call on the server.
    Context.CancellableContext watching = Context.current().withCancellation();
    try {
      Iterator<WatchSmartTradesResponse> stream =
          watching.wrap(
                  () ->
                      clients
                          .trades()
                          .withDeadlineAfter(30, TimeUnit.SECONDS)
                          .watchSmartTrades(WatchSmartTradesRequest.newBuilder().setName(created.getName()).build()))
              .call();
      WatchSmartTradesResponse snapshot = stream.next();
      expectEqual(snapshot.getPayloadCase(), WatchSmartTradesResponse.PayloadCase.SNAPSHOT, "first message");
      expectEqual(snapshot.getSnapshot().getName(), created.getName(), "snapshot of");
      WatchSmartTradesResponse end = stream.next();
      expectEqual(end.getPayloadCase(), WatchSmartTradesResponse.PayloadCase.SNAPSHOT_END, "second message");

      setPrice("111");

      long last = end.getSnapshotEnd().getSequence();
      while (true) {
        WatchSmartTradesResponse message = stream.next();
        if (message.hasHeartbeat()) {
          continue;
        }
        expectEqual(message.getPayloadCase(), WatchSmartTradesResponse.PayloadCase.EVENT, "message");
        SmartTradeEvent event = message.getEvent();
        expectEqual(event.getSmartTradeName(), created.getName(), "event of");
        expect(event.getSequence() > last, "event %d after %d: out of sequence", event.getSequence(), last);
        last = event.getSequence();
        if (event.getType() == SmartTradeEventType.SMART_TRADE_EVENT_TYPE_STATE_CHANGED
            && event.getState() == SmartTradeState.SMART_TRADE_STATE_CLOSED) {
          expectEqual(event.getSmartTrade().getCloseReason(), CloseReason.CLOSE_REASON_TAKE_PROFIT, "close reason");
          break;
        }
      }
    } catch (Exception e) {
      throw new AssertionError("watching for CLOSED", e);
    } finally {
      watching.cancel(null);
    }

    SmartTrade closed =
        clients.trades().getSmartTrade(GetSmartTradeRequest.newBuilder().setName(created.getName()).build()).getSmartTrade();
    expectEqual(closed.getState(), SmartTradeState.SMART_TRADE_STATE_CLOSED, "state after the watch");
    // Sold 0.999 at 110 less the 0.1% fee, against a cost of 100: decimal strings, exactly.
    expectEqual(closed.getPosition().getRealizedPnl(), "9.78011", "realized PnL");
  }

  void aMalformedNameIsInvalidArgumentWithRichDetails() {
    StatusRuntimeException error;
    try {
      clients.trades().getSmartTrade(GetSmartTradeRequest.newBuilder().setName("smartTrades/not-hex!").build());
      throw new AssertionError("the call succeeded");
    } catch (StatusRuntimeException e) {
      error = e;
    }

    expectEqual(error.getStatus().getCode(), Status.Code.INVALID_ARGUMENT, "code");
    RichError rich = RichError.of(error).orElseThrow(() -> new AssertionError("no grpc-status-details-bin"));
    expectEqual(rich.reason(), "INVALID_FIELD", "ErrorInfo.reason");
    expectEqual(rich.domain(), "smarttrade.v1", "ErrorInfo.domain");
    expectEqual(rich.fieldViolations().keySet(), java.util.Set.of("name"), "BadRequest fields");
  }
}
