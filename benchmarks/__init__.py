"""Measurements of the finished step: bench.py (requests per second) and loadtest.py (10,000 mixed requests)."""
