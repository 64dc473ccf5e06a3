"""Benchmarks: the service against bare baselines and raw backends, measured in one run."""
