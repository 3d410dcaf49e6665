"""Benchmarks: storage search at scale, streaming accuracy/latency/cost."""
