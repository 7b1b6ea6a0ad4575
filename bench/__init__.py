"""kb's benchmarks: one module per benchmark, run by bench/run.py."""
