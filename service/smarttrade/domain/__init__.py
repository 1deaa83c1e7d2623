"""The pure core: specs, position maths and the SmartTrade state machine.

Standard library only: no I/O, no asyncio, no protobuf, no SQLAlchemy, no ccxt.
`decide(trade, input) -> Decision(trade, events, intents)` is the one entry point
that changes a trade.
"""
