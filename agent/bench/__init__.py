"""Benchmarks behind ``store-agent bench``."""
