"""Attacks for the attack benchmark: each module exposes ``run(quick) -> [(label, figure)]``."""
