"""Simulated shelf-label gateways for tests, the demo and benchmarks."""
