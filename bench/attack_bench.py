"""Attack benchmark: runs each attack in ``bench/attacks/`` and prints its figures.

Each attack is a module ``bench/attacks/<name>.py`` exposing
``run(quick: bool) -> list[tuple[str, str]]`` (label, figure)::

    python bench/attack_bench.py [--quick] [name ...]
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

#: The registered attacks, in the order they are run.
ATTACKS = ["ack_loop", "ptb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("names", nargs="*", help=f"attacks to run (default: {ATTACKS})")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    for name in args.names or ATTACKS:
        module = importlib.import_module(f"attacks.{name}")
        print(f"== {name}")
        for label, figure in module.run(args.quick):
            print(f"  {label:<62} {figure}")


if __name__ == "__main__":
    main()
