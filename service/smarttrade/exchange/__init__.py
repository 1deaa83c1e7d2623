"""The Exchange port and its adapters: ccxt for real venues, paper for the simulated one."""
