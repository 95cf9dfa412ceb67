"""Benchmarks: synthetic traffic (`bench.generate`) and the replay benchmark (`bench.replay_bench`)."""
