"""Exact and MinHash deduplication, and decontamination against evaluation benchmarks."""
