"""Helpers shared by tests, benchmarks and `make demo`: real servers on loopback ports."""
