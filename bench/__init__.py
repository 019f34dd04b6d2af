"""Benchmarks at county scale: `make bench` (see README, "Benchmarks")."""
