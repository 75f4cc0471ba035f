"""Benchmarks: ``python -m bench [--only PREFIX]`` (``make bench``) writes bench/results.json."""
