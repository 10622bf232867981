"""Attack scenarios for bench/attack_bench.py, one module each."""
