"""Helpers for tests and smoke benchmarks that the package ships, so scripts import them plainly."""
