"""Benchmarks for camtutor (run: python -m benchmarks.run)."""
