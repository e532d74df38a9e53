"""Helpers for the test suite and the benchmarks (real processes and brokers); not used at runtime."""
