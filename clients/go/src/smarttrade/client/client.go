// Package client dials the SmartTrade service: the three smarttrade.v1 stubs on one
// connection, the bearer token on every call, and the google.rpc details of a failed call.
package client

import (
	"context"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	smarttradev1 "smarttrade/gen/go/smarttrade/v1"
)

// Clients are the stubs of smarttrade.v1 on one connection, authenticated as one tenant.
type Clients struct {
	Trades   smarttradev1.SmartTradeServiceClient
	Accounts smarttradev1.ExchangeAccountServiceClient
	Paper    smarttradev1.PaperMarketServiceClient
	Conn     *grpc.ClientConn
}

// Dial connects to address (without TLS, as the quick start listens on loopback) and sends
// `authorization: Bearer <token>` on every call. Extra options come after the defaults.
func Dial(address, token string, options ...grpc.DialOption) (*Clients, error) {
	defaults := []grpc.DialOption{grpc.WithInsecure(), grpc.WithPerRPCCredentials(bearer(token))}
	conn, err := grpc.Dial(address, append(defaults, options...)...)
	if err != nil {
		return nil, err
	}
	return &Clients{
		Trades:   smarttradev1.NewSmartTradeServiceClient(conn),
		Accounts: smarttradev1.NewExchangeAccountServiceClient(conn),
		Paper:    smarttradev1.NewPaperMarketServiceClient(conn),
		Conn:     conn,
	}, nil
}

// Close closes the connection.
func (c *Clients) Close() error { return c.Conn.Close() }

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity is false so that the token also travels on a plaintext loopback
// connection; use TLS (grpc.WithTransportCredentials) anywhere else.
func (bearer) RequireTransportSecurity() bool { return false }

// RichError is what a failed call says beyond its code.
type RichError struct {
	Code    codes.Code
	Message string
	// Reason is ErrorInfo.reason, for example "INVALID_FIELD": stable, for programs to branch on.
	Reason   string
	Domain   string
	Metadata map[string]string
	// FieldViolations maps each field named by google.rpc.BadRequest to its description.
	FieldViolations map[string]string
	// Preconditions are google.rpc.PreconditionFailure violations as "type: subject".
	Preconditions []string
}

// Rich decodes the google.rpc.Status details of err; false when err is not a gRPC status.
func Rich(err error) (*RichError, bool) {
	st, ok := status.FromError(err)
	if !ok {
		return nil, false
	}
	rich := &RichError{Code: st.Code(), Message: st.Message(), FieldViolations: map[string]string{}}
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			rich.Reason, rich.Domain, rich.Metadata = d.GetReason(), d.GetDomain(), d.GetMetadata()
		case *errdetails.BadRequest:
			for _, violation := range d.GetFieldViolations() {
				rich.FieldViolations[violation.GetField()] = violation.GetDescription()
			}
		case *errdetails.PreconditionFailure:
			for _, violation := range d.GetViolations() {
				rich.Preconditions = append(rich.Preconditions, violation.GetType()+": "+violation.GetSubject())
			}
		}
	}
	return rich, true
}
