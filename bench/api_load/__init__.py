"""Tollgate's API under load beside MLflow's model registry (issue 19): ``python -m bench.api_load``.

A benchmark, not a test: nothing under tests/ imports it and pytest collects tests/ only.
"""
