"""Load scripts; each prints its figures in a stable format (see benchmarks/README.md)."""
