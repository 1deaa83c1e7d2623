"""The runtime: trade runners, order execution, recovery, market data and the event bus."""
