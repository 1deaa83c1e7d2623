// Package e2e runs the generated Go client against the real service: a paper trade from
// creation to CLOSED, read and watched, one take-profit step closed at market, a simulation over
// candles, and rich errors decoded.
package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"smarttrade/client"
	pb "smarttrade/gen/go/smarttrade/v1"
)

const btc = "BTC/USDT"

var clients *client.Clients

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

// run starts one server for all the tests; a server that does not stop cleanly fails the run.
func run(m *testing.M) (code int) {
	srv, err := startServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer func() {
		if err := srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			code = 1
		}
	}()
	clients, err = client.Dial(srv.Address, srv.Token)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer clients.Close()
	return m.Run()
}

// requestID is a random UUID (version 4), the idempotency key of a mutation.
func requestID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func setPrice(ctx context.Context, t *testing.T, price string) {
	t.Helper()
	request := &pb.SetPaperPriceRequest{Symbol: btc, Price: price, RequestId: requestID()}
	if _, err := clients.Paper.SetPaperPrice(ctx, request); err != nil {
		t.Fatalf("SetPaperPrice %s: %v", price, err)
	}
}

func createPaperAccount(ctx context.Context, t *testing.T, displayName string) string {
	t.Helper()
	account, err := clients.Accounts.CreateExchangeAccount(ctx, &pb.CreateExchangeAccountRequest{
		ExchangeAccount: &pb.ExchangeAccount{Exchange: "paper", DisplayName: displayName},
		RequestId:       requestID(),
	})
	if err != nil {
		t.Fatalf("CreateExchangeAccount: %v", err)
	}
	return account.GetExchangeAccount().GetName()
}

// eventually reads the trade every 50 ms until holds is true of it or ctx ends; it answers the
// last trade read.
func eventually(ctx context.Context, t *testing.T, name string, holds func(*pb.SmartTrade) bool) *pb.SmartTrade {
	t.Helper()
	for {
		read, err := clients.Trades.GetSmartTrade(ctx, &pb.GetSmartTradeRequest{Name: name})
		if err != nil {
			t.Fatalf("GetSmartTrade: %v", err)
		}
		if holds(read.GetSmartTrade()) {
			return read.GetSmartTrade()
		}
		select {
		case <-ctx.Done():
			return read.GetSmartTrade()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func leg(trade *pb.SmartTrade, id string) *pb.Leg {
	for _, candidate := range trade.GetLegs() {
		if candidate.GetId() == id {
			return candidate
		}
	}
	return nil
}

// minuteCandles are one-minute candles from 2026-03-01 00:00 UTC, each row open/high/low/close.
func minuteCandles(rows ...[4]string) []*pb.Candle {
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	candles := make([]*pb.Candle, len(rows))
	for minute, row := range rows {
		candles[minute] = &pb.Candle{
			Time: timestamppb.New(start.Add(time.Duration(minute) * time.Minute)),
			Open: row[0], High: row[1], Low: row[2], Close: row[3],
		}
	}
	return candles
}

func tradeNames(ctx context.Context, t *testing.T) []string {
	t.Helper()
	listed, err := clients.Trades.ListSmartTrades(ctx, &pb.ListSmartTradesRequest{PageSize: 500})
	if err != nil {
		t.Fatalf("ListSmartTrades: %v", err)
	}
	var names []string
	for _, trade := range listed.GetSmartTrades() {
		names = append(names, trade.GetName())
	}
	return names
}

func TestAMarketBuyGoesActiveIsReadAndIsWatchedToClosedAtItsTakeProfit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	account, err := clients.Accounts.CreateExchangeAccount(ctx, &pb.CreateExchangeAccountRequest{
		ExchangeAccount: &pb.ExchangeAccount{Exchange: "paper", DisplayName: "go e2e"},
		RequestId:       requestID(),
	})
	if err != nil {
		t.Fatalf("CreateExchangeAccount: %v", err)
	}
	setPrice(ctx, t, "100")

	created, err := clients.Trades.CreateSmartTrade(ctx, &pb.CreateSmartTradeRequest{
		SmartTrade: &pb.SmartTrade{
			Account: account.GetExchangeAccount().GetName(),
			Symbol:  btc,
			Side:    pb.Side_SIDE_BUY,
			Entry:   &pb.Entry{Type: pb.EntryType_ENTRY_TYPE_MARKET, Size: &pb.Entry_Units{Units: "1"}},
			TakeProfit: &pb.TakeProfit{Steps: []*pb.TakeProfitStep{
				{Target: &pb.TakeProfitStep_Price{Price: "110"}, VolumePercent: "100"},
			}},
		},
		RequestId: requestID(),
	})
	if err != nil {
		t.Fatalf("CreateSmartTrade: %v", err)
	}
	name := created.GetSmartTrade().GetName()
	if state := created.GetSmartTrade().GetState(); state != pb.SmartTradeState_SMART_TRADE_STATE_ACTIVE {
		t.Fatalf("created in %v, want ACTIVE", state)
	}

	read, err := clients.Trades.GetSmartTrade(ctx, &pb.GetSmartTradeRequest{Name: name})
	if err != nil {
		t.Fatalf("GetSmartTrade: %v", err)
	}
	trade := read.GetSmartTrade()
	if trade.GetName() != name || trade.GetState() != pb.SmartTradeState_SMART_TRADE_STATE_ACTIVE {
		t.Fatalf("read %s in %v, want %s ACTIVE", trade.GetName(), trade.GetState(), name)
	}
	if got := trade.GetTakeProfit().GetSteps()[0].GetPrice(); got != "110" {
		t.Errorf("take-profit price %q, want 110", got)
	}
	if got := trade.GetPosition().GetUnitsHeld(); got != "0.999" { // the 0.1% fee is paid in BTC
		t.Errorf("units held %q, want 0.999", got)
	}

	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	stream, err := clients.Trades.WatchSmartTrades(watchCtx, &pb.WatchSmartTradesRequest{Name: name})
	if err != nil {
		t.Fatalf("WatchSmartTrades: %v", err)
	}
	first, err := stream.Recv()
	if err != nil || first.GetSnapshot().GetName() != name {
		t.Fatalf("first message %v (%v), want the snapshot of %s", first, err, name)
	}
	end, err := stream.Recv()
	if err != nil || end.GetSnapshotEnd() == nil {
		t.Fatalf("second message %v (%v), want snapshot_end", end, err)
	}

	setPrice(ctx, t, "111")

	last := end.GetSnapshotEnd().GetSequence()
	for {
		message, err := stream.Recv()
		if err != nil {
			t.Fatalf("watching for CLOSED: %v", err)
		}
		if message.GetHeartbeat() != nil {
			continue
		}
		event := message.GetEvent()
		if event == nil {
			t.Fatalf("unexpected message %v", message)
		}
		if event.GetSmartTradeName() != name || event.GetSequence() <= last {
			t.Fatalf("event %d of %s after %d: want events of %s in sequence order",
				event.GetSequence(), event.GetSmartTradeName(), last, name)
		}
		last = event.GetSequence()
		if event.GetType() == pb.SmartTradeEventType_SMART_TRADE_EVENT_TYPE_STATE_CHANGED &&
			event.GetState() == pb.SmartTradeState_SMART_TRADE_STATE_CLOSED {
			if reason := event.GetSmartTrade().GetCloseReason(); reason != pb.CloseReason_CLOSE_REASON_TAKE_PROFIT {
				t.Errorf("close reason %v, want TAKE_PROFIT", reason)
			}
			break
		}
	}
	stopWatching()

	closed, err := clients.Trades.GetSmartTrade(ctx, &pb.GetSmartTradeRequest{Name: name})
	if err != nil {
		t.Fatalf("GetSmartTrade: %v", err)
	}
	if state := closed.GetSmartTrade().GetState(); state != pb.SmartTradeState_SMART_TRADE_STATE_CLOSED {
		t.Errorf("read in %v after the watch, want CLOSED", state)
	}
	// Sold 0.999 at 110 less the 0.1% fee, against a cost of 100: decimal strings, exactly.
	if pnl := closed.GetSmartTrade().GetPosition().GetRealizedPnl(); pnl != "9.78011" {
		t.Errorf("realized PnL %q, want 9.78011", pnl)
	}
}

func TestClosingTakeProfitStep1SellsItAtMarketWhileStep2KeepsWorking(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	account := createPaperAccount(ctx, t, "go e2e close step")
	setPrice(ctx, t, "100")
	created, err := clients.Trades.CreateSmartTrade(ctx, &pb.CreateSmartTradeRequest{
		SmartTrade: &pb.SmartTrade{
			Account: account,
			Symbol:  btc,
			Side:    pb.Side_SIDE_BUY,
			Entry:   &pb.Entry{Type: pb.EntryType_ENTRY_TYPE_MARKET, Size: &pb.Entry_Units{Units: "1"}},
			TakeProfit: &pb.TakeProfit{Steps: []*pb.TakeProfitStep{
				{Target: &pb.TakeProfitStep_Price{Price: "110"}, VolumePercent: "50"},
				{Target: &pb.TakeProfitStep_Price{Price: "120"}, VolumePercent: "50"},
			}},
		},
		RequestId: requestID(),
	})
	if err != nil {
		t.Fatalf("CreateSmartTrade: %v", err)
	}
	name := created.GetSmartTrade().GetName()
	if state := created.GetSmartTrade().GetState(); state != pb.SmartTradeState_SMART_TRADE_STATE_ACTIVE {
		t.Fatalf("created in %v, want ACTIVE", state)
	}
	offered := false
	for _, action := range created.GetSmartTrade().GetAvailableActions() {
		offered = offered || action == pb.SmartTradeAction_SMART_TRADE_ACTION_CLOSE_STEP
	}
	if !offered {
		t.Fatalf("available actions %v, want CLOSE_STEP among them", created.GetSmartTrade().GetAvailableActions())
	}

	_, err = clients.Trades.CloseSmartTradeStep(ctx, &pb.CloseSmartTradeStepRequest{
		Name: name, RequestId: requestID(), Step: 1,
	})
	if err != nil {
		t.Fatalf("CloseSmartTradeStep: %v", err)
	}

	closed := eventually(ctx, t, name, func(trade *pb.SmartTrade) bool {
		return leg(trade, "tp1").GetState() == pb.LegState_LEG_STATE_FILLED
	})
	tp1, tp2 := leg(closed, "tp1"), leg(closed, "tp2")
	if state := tp1.GetState(); state != pb.LegState_LEG_STATE_FILLED || len(tp1.GetOrders()) == 0 {
		t.Fatalf("tp1 in %v with %d orders, want FILLED by an order", state, len(tp1.GetOrders()))
	}
	sold := tp1.GetOrders()[len(tp1.GetOrders())-1]
	if sold.GetType() != pb.OrderType_ORDER_TYPE_MARKET || sold.GetStatus() != pb.OrderStatus_ORDER_STATUS_FILLED {
		t.Errorf("tp1's last order %v %v, want a FILLED MARKET order", sold.GetType(), sold.GetStatus())
	}
	// Half of the 0.999 held (the 0.1% entry fee is paid in BTC), rounded to the lot.
	if sold.GetAmount() != "0.4995" || sold.GetFilled() != "0.4995" {
		t.Errorf("tp1 sold %q of %q, want 0.4995 of 0.4995", sold.GetFilled(), sold.GetAmount())
	}
	if orders := tp2.GetOrders(); len(orders) != 1 ||
		orders[0].GetStatus() != pb.OrderStatus_ORDER_STATUS_OPEN || orders[0].GetPrice() != "120" {
		t.Errorf("tp2's orders %v, want one OPEN at 120", orders)
	}
	if state := closed.GetState(); state != pb.SmartTradeState_SMART_TRADE_STATE_ACTIVE {
		t.Errorf("trade in %v after closing step 1, want ACTIVE", state)
	}
}

func TestASimulationOverCandlesClosesAtItsTakeProfitAndStoresNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before := tradeNames(ctx, t)

	simulation, err := clients.Trades.SimulateSmartTrade(ctx, &pb.SimulateSmartTradeRequest{
		SmartTrade: &pb.SmartTrade{
			Symbol: btc,
			Side:   pb.Side_SIDE_BUY,
			Entry:  &pb.Entry{Type: pb.EntryType_ENTRY_TYPE_MARKET, Size: &pb.Entry_Units{Units: "1"}},
			TakeProfit: &pb.TakeProfit{Steps: []*pb.TakeProfitStep{
				{Target: &pb.TakeProfitStep_Price{Price: "110"}, VolumePercent: "100"},
			}},
		},
		Candles: minuteCandles(
			[4]string{"100", "100", "100", "100"},
			[4]string{"100", "111", "99", "110"},
			[4]string{"110", "112", "109", "111"},
		),
	})
	if err != nil {
		t.Fatalf("SimulateSmartTrade: %v", err)
	}

	trade := simulation.GetSmartTrade()
	if trade.GetState() != pb.SmartTradeState_SMART_TRADE_STATE_CLOSED ||
		trade.GetCloseReason() != pb.CloseReason_CLOSE_REASON_TAKE_PROFIT {
		t.Errorf("simulated trade %v (%v), want CLOSED at TAKE_PROFIT", trade.GetState(), trade.GetCloseReason())
	}
	// Bought 0.999 net at 100, sold at 110 less the 0.1% fee: decimal strings, exactly.
	if pnl := trade.GetPosition().GetRealizedPnl(); pnl != "9.78011" {
		t.Errorf("realized PnL %q, want 9.78011", pnl)
	}
	if count := simulation.GetCandleCount(); count != 3 {
		t.Errorf("candle count %d, want 3", count)
	}
	events := simulation.GetEvents()
	if len(events) == 0 {
		t.Errorf("no events")
	}
	for index, event := range events {
		if event.GetSequence() != int64(index+1) {
			t.Errorf("event %d has sequence %d, want %d", index, event.GetSequence(), index+1)
		}
	}
	if after := tradeNames(ctx, t); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("trades listed %v after the simulation, want %v as before", after, before)
	}
}

func TestASimulationRefusesACandleWhoseHighIsBelowItsLowNamingTheField(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, err := clients.Trades.SimulateSmartTrade(ctx, &pb.SimulateSmartTradeRequest{
		SmartTrade: &pb.SmartTrade{
			Symbol: btc,
			Side:   pb.Side_SIDE_BUY,
			Entry:  &pb.Entry{Type: pb.EntryType_ENTRY_TYPE_MARKET, Size: &pb.Entry_Units{Units: "1"}},
		},
		Candles: minuteCandles([4]string{"100", "101", "99", "100"}, [4]string{"100", "99", "101", "100"}),
	})

	rich, ok := client.Rich(err)
	if !ok {
		t.Fatalf("got %v, want a gRPC status", err)
	}
	if rich.Code != codes.InvalidArgument || rich.Reason != "INVALID_FIELD" {
		t.Errorf("got %v %q, want InvalidArgument INVALID_FIELD", rich.Code, rich.Reason)
	}
	if _, named := rich.FieldViolations["candles[1].high"]; !named || len(rich.FieldViolations) != 1 {
		t.Errorf("BadRequest fields %v, want only candles[1].high", rich.FieldViolations)
	}
}

func TestAMalformedTradeNameIsInvalidArgumentWithErrorInfoAndBadRequestNamingTheField(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, err := clients.Trades.GetSmartTrade(ctx, &pb.GetSmartTradeRequest{Name: "smartTrades/not-hex!"})

	rich, ok := client.Rich(err)
	if !ok {
		t.Fatalf("got %v, want a gRPC status", err)
	}
	if rich.Code != codes.InvalidArgument {
		t.Errorf("code %v, want InvalidArgument", rich.Code)
	}
	if rich.Reason != "INVALID_FIELD" || rich.Domain != "smarttrade.v1" {
		t.Errorf("ErrorInfo %q in %q, want INVALID_FIELD in smarttrade.v1", rich.Reason, rich.Domain)
	}
	if _, named := rich.FieldViolations["name"]; !named || len(rich.FieldViolations) != 1 {
		t.Errorf("BadRequest fields %v, want only name", rich.FieldViolations)
	}
}
