"""The application: one module per use case (create, act, refresh, read and list, watch,
accounts, shares, sandbox), each running in units of work and owning its request ids."""
