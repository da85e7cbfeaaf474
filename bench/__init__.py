"""Benchmarks, one command each (``python -m bench.<name>``), printing ratios measured in one run."""
