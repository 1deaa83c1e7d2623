// Package e2e runs the generated Go client against the real service: a paper trade from
// creation to CLOSED, read and watched, and a rich error decoded.
package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

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
