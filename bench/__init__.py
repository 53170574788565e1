"""Benchmarks (not part of the test suite's pass/fail): ``python -m bench.admission``."""
