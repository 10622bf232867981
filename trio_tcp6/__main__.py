"""Command line: ``python -m trio_tcp6 demo``, ``python -m trio_tcp6 tun ...`` (and
``--help`` for the rest)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import trio
import trio.testing

from .demo import DemoOptions, run_demo
from .tun_cli import add_tun_parser


def _demo(args: argparse.Namespace) -> int:
    options = DemoOptions(
        pcap=args.pcap,
        megabytes=args.megabytes,
        loss=args.loss,
        delay=args.delay,
        seed=args.seed,
        congestion=args.congestion,
    )
    print("trio_tcp6 demo: a userspace TCP/IPv6 stack on trio, over an in-memory network")
    if args.virtual:
        print("(virtual time: trio.testing.MockClock; times below are simulated)")
        clock = trio.testing.MockClock(autojump_threshold=0)
        report = trio.run(run_demo, options, clock=clock)
    else:
        report = trio.run(run_demo, options)
    return 0 if report.http_status == 200 and report.intact else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trio_tcp6", description="trio_tcp6: a userspace TCP/IPv6 stack on trio"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="two stacks on a virtual network: HTTP, an impaired transfer, a pcap"
    )
    demo.add_argument("--pcap", default="trio_tcp6-demo.pcap", help="where to write the capture")
    demo.add_argument("--megabytes", type=float, default=2.0, help="size of the transfer (MiB)")
    demo.add_argument("--loss", type=float, default=0.02, help="packet loss probability")
    demo.add_argument("--delay", type=float, default=0.005, help="one-way delay (s)")
    demo.add_argument("--seed", type=int, default=6528, help="seed of the network's randomness")
    demo.add_argument("--congestion", choices=("cubic", "newreno"), default="cubic")
    demo.add_argument("--virtual", action="store_true", help="run in virtual time (MockClock)")
    demo.set_defaults(func=_demo)
    add_tun_parser(sub)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
