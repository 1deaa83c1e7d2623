"""SmartTrade: a gRPC service that runs and manages SmartTrades on crypto exchanges."""

__version__ = "0.1.0"
