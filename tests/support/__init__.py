"""Helpers shared by tests and benchmarks (the local system itself lives in local/)."""
