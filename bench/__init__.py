"""Benchmarks, one command each (``python -m bench.<name>``), ratios measured in one run."""
