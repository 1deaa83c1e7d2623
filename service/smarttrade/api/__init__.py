"""The gRPC API: servicers, converters (parse, render), error mapping, authentication."""
