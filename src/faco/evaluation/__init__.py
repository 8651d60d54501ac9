"""Benchmark suite and lm-evaluation-harness evaluation."""
