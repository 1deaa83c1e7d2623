package com.smarttrade.e2e;

import com.smarttrade.client.RichError;
import com.smarttrade.client.SmartTradeClients;
import com.google.protobuf.Timestamp;
import com.smarttrade.v1.Candle;
import com.smarttrade.v1.CloseReason;
import com.smarttrade.v1.CloseSmartTradeStepRequest;
import com.smarttrade.v1.CreateExchangeAccountRequest;
import com.smarttrade.v1.CreateSmartTradeRequest;
import com.smarttrade.v1.Entry;
import com.smarttrade.v1.EntryType;
import com.smarttrade.v1.ExchangeAccount;
import com.smarttrade.v1.GetSmartTradeRequest;
import com.smarttrade.v1.Leg;
import com.smarttrade.v1.LegState;
import com.smarttrade.v1.ListSmartTradesRequest;
import com.smarttrade.v1.Order;
import com.smarttrade.v1.OrderStatus;
import com.smarttrade.v1.OrderType;
import com.smarttrade.v1.SetPaperPriceRequest;
import com.smarttrade.v1.Side;
import com.smarttrade.v1.SimulateSmartTradeRequest;
import com.smarttrade.v1.SimulateSmartTradeResponse;
import com.smarttrade.v1.SmartTrade;
import com.smarttrade.v1.SmartTradeAction;
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
import java.time.Instant;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/**
 * The generated Java client against the real service: a paper trade from creation to CLOSED,
 * read and watched, one take-profit step closed at market, a simulation over candles, and rich
 * errors decoded. A plain main class (no test framework in Debian's
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
          "closing take-profit step 1 sells it at market while step 2 keeps working",
          tests::closingStep1SellsItAtMarketWhileStep2KeepsWorking);
      checks.put(
          "a simulation over candles closes at its take profit and stores nothing",
          tests::aSimulationClosesAtItsTakeProfitAndStoresNothing);
      checks.put(
          "a simulation refuses a candle whose high is below its low, naming the field",
          tests::aSimulationRefusesAHighBelowTheLow);
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

  private String createPaperAccount(String displayName) {
    return clients
        .accounts()
        .createExchangeAccount(
            CreateExchangeAccountRequest.newBuilder()
                .setExchangeAccount(ExchangeAccount.newBuilder().setExchange("paper").setDisplayName(displayName))
                .setRequestId(requestId())
                .build())
        .getExchangeAccount()
        .getName();
  }

  private SmartTrade getSmartTrade(String name) {
    return clients.trades().getSmartTrade(GetSmartTradeRequest.newBuilder().setName(name).build()).getSmartTrade();
  }

  /** The trade once {@code holds} is true of it, read every 50 ms for up to 10 s. */
  private SmartTrade eventually(String name, Predicate<SmartTrade> holds) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (true) {
      SmartTrade trade = getSmartTrade(name);
      if (holds.test(trade) || System.nanoTime() > deadline) {
        return trade;
      }
      Thread.sleep(50);
    }
  }

  private static Leg leg(SmartTrade trade, String id) {
    return trade.getLegsList().stream()
        .filter(candidate -> candidate.getId().equals(id))
        .findFirst()
        .orElseThrow(() -> new AssertionError("no leg " + id));
  }

  /** One-minute candles from 2026-03-01 00:00 UTC, each row open, high, low, close. */
  private static List<Candle> minuteCandles(String[]... rows) {
    Instant start = Instant.parse("2026-03-01T00:00:00Z");
    List<Candle> candles = new ArrayList<>();
    for (int minute = 0; minute < rows.length; minute++) {
      String[] row = rows[minute];
      candles.add(
          Candle.newBuilder()
              .setTime(Timestamp.newBuilder().setSeconds(start.plusSeconds(60L * minute).getEpochSecond()))
              .setOpen(row[0])
              .setHigh(row[1])
              .setLow(row[2])
              .setClose(row[3])
              .build());
    }
    return candles;
  }

  private List<String> tradeNames() {
    return clients
        .trades()
        .listSmartTrades(ListSmartTradesRequest.newBuilder().setPageSize(500).build())
        .getSmartTradesList()
        .stream()
        .map(SmartTrade::getName)
        .toList();
  }

  private static SmartTrade.Builder aMarketBuyOfOneUnit() {
    return SmartTrade.newBuilder()
        .setSymbol(BTC)
        .setSide(Side.SIDE_BUY)
        .setEntry(Entry.newBuilder().setType(EntryType.ENTRY_TYPE_MARKET).setUnits("1"));
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

  void closingStep1SellsItAtMarketWhileStep2KeepsWorking() throws InterruptedException {
    String account = createPaperAccount("java e2e close step");
    setPrice("100");
    SmartTrade created =
        clients
            .trades()
            .createSmartTrade(
                CreateSmartTradeRequest.newBuilder()
                    .setSmartTrade(
                        aMarketBuyOfOneUnit()
                            .setAccount(account)
                            .setTakeProfit(
                                TakeProfit.newBuilder()
                                    .addSteps(TakeProfitStep.newBuilder().setPrice("110").setVolumePercent("50"))
                                    .addSteps(TakeProfitStep.newBuilder().setPrice("120").setVolumePercent("50"))))
                    .setRequestId(requestId())
                    .build())
            .getSmartTrade();
    expectEqual(created.getState(), SmartTradeState.SMART_TRADE_STATE_ACTIVE, "state after create");
    expect(
        created.getAvailableActionsList().contains(SmartTradeAction.SMART_TRADE_ACTION_CLOSE_STEP),
        "available actions %s: want CLOSE_STEP among them",
        created.getAvailableActionsList());

    clients
        .trades()
        .closeSmartTradeStep(
            CloseSmartTradeStepRequest.newBuilder()
                .setName(created.getName())
                .setRequestId(requestId())
                .setStep(1)
                .build());

    SmartTrade closed =
        eventually(created.getName(), trade -> leg(trade, "tp1").getState() == LegState.LEG_STATE_FILLED);
    Leg tp1 = leg(closed, "tp1");
    expectEqual(tp1.getState(), LegState.LEG_STATE_FILLED, "tp1 state");
    Order sold = tp1.getOrders(tp1.getOrdersCount() - 1);
    expectEqual(sold.getType(), OrderType.ORDER_TYPE_MARKET, "tp1's last order type");
    expectEqual(sold.getStatus(), OrderStatus.ORDER_STATUS_FILLED, "tp1's last order status");
    // Half of the 0.999 held (the 0.1% entry fee is paid in BTC), rounded to the lot.
    expectEqual(sold.getAmount(), "0.4995", "tp1's market order amount");
    expectEqual(sold.getFilled(), "0.4995", "tp1's market order filled");
    List<Order> working = leg(closed, "tp2").getOrdersList();
    expectEqual(working.size(), 1, "tp2's orders");
    expectEqual(working.get(0).getStatus(), OrderStatus.ORDER_STATUS_OPEN, "tp2's order status");
    expectEqual(working.get(0).getPrice(), "120", "tp2's order price");
    expectEqual(closed.getState(), SmartTradeState.SMART_TRADE_STATE_ACTIVE, "state after closing step 1");
  }

  void aSimulationClosesAtItsTakeProfitAndStoresNothing() {
    List<String> before = tradeNames();

    SimulateSmartTradeResponse simulation =
        clients
            .trades()
            .simulateSmartTrade(
                SimulateSmartTradeRequest.newBuilder()
                    .setSmartTrade(
                        aMarketBuyOfOneUnit()
                            .setTakeProfit(
                                TakeProfit.newBuilder()
                                    .addSteps(TakeProfitStep.newBuilder().setPrice("110").setVolumePercent("100"))))
                    .addAllCandles(
                        minuteCandles(
                            new String[] {"100", "100", "100", "100"},
                            new String[] {"100", "111", "99", "110"},
                            new String[] {"110", "112", "109", "111"}))
                    .build());

    SmartTrade trade = simulation.getSmartTrade();
    expectEqual(trade.getState(), SmartTradeState.SMART_TRADE_STATE_CLOSED, "simulated state");
    expectEqual(trade.getCloseReason(), CloseReason.CLOSE_REASON_TAKE_PROFIT, "simulated close reason");
    // Bought 0.999 net at 100, sold at 110 less the 0.1% fee: decimal strings, exactly.
    expectEqual(trade.getPosition().getRealizedPnl(), "9.78011", "simulated realized PnL");
    expectEqual(simulation.getCandleCount(), 3L, "candle count");
    expect(simulation.getEventsCount() > 0, "no events");
    for (int index = 0; index < simulation.getEventsCount(); index++) {
      expectEqual(simulation.getEvents(index).getSequence(), index + 1L, "sequence of event " + index);
    }
    expectEqual(tradeNames(), before, "trades listed after the simulation");
  }

  void aSimulationRefusesAHighBelowTheLow() {
    StatusRuntimeException error;
    try {
      clients
          .trades()
          .simulateSmartTrade(
              SimulateSmartTradeRequest.newBuilder()
                  .setSmartTrade(aMarketBuyOfOneUnit())
                  .addAllCandles(
                      minuteCandles(new String[] {"100", "101", "99", "100"}, new String[] {"100", "99", "101", "100"}))
                  .build());
      throw new AssertionError("the call succeeded");
    } catch (StatusRuntimeException e) {
      error = e;
    }

    expectEqual(error.getStatus().getCode(), Status.Code.INVALID_ARGUMENT, "code");
    RichError rich = RichError.of(error).orElseThrow(() -> new AssertionError("no grpc-status-details-bin"));
    expectEqual(rich.reason(), "INVALID_FIELD", "ErrorInfo.reason");
    expectEqual(rich.fieldViolations().keySet(), java.util.Set.of("candles[1].high"), "BadRequest fields");
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
