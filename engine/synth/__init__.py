"""Synthetic SED Machine: renders complete raw nights with their truth.

Used by tests, benchmarks and the demo; the reduction code never imports it.
"""
