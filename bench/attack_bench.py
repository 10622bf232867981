"""Attack benchmark: CPU per attacking packet and memory held, one attack a module.

Each attack is a module ``bench/attacks/<name>.py`` exposing
``run(quick: bool) -> list[tuple[str, str]]`` (label, figure); this script runs
them (all, or those named) and prints their rows.

    python bench/attack_bench.py [--quick] [name ...]

The repository this file lives in is put first on ``sys.path``, so the engine
measured is the one beside it, not whatever copy is installed. Real time
throughout: figures are CPU cost on this machine.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def attack_names() -> list[str]:
    """Every module in bench/attacks that exposes ``run``, in name order."""
    names = []
    for info in pkgutil.iter_modules([str(ROOT / "bench" / "attacks")]):
        if hasattr(importlib.import_module(f"bench.attacks.{info.name}"), "run"):
            names.append(info.name)
    return sorted(names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller attacks")
    parser.add_argument("names", nargs="*", help="attacks to run (default: all)")
    args = parser.parse_args()
    for name in args.names or attack_names():
        module = importlib.import_module(f"bench.attacks.{name}")
        print(f"== {name}")
        # An attack may give, by label, the figure issue 9 measured before its defence.
        before: dict[str, str] = getattr(module, "BEFORE", {})
        for label, figure in module.run(args.quick):
            was = f"  (before: {before[label]})" if label in before else ""
            print(f"  {label}: {figure}{was}", flush=True)


if __name__ == "__main__":
    main()
