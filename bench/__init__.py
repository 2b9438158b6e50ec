"""The benchmarks: `python -m bench.<name>` from the checkout (bench/README.md)."""
