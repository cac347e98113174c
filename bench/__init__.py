"""Benchmarks: ``make bench`` (``python -m bench``) writes ``bench/results/<date>.json``."""
