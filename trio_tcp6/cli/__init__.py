"""The command line, ``python -m trio_tcp6`` (or ``trio-tcp6``): applications built on
the library, beside it.

``demo``
    two stacks on an in-memory network: HTTP, an impaired transfer, a summary, a pcap
    (:mod:`trio_tcp6.cli.demo`);
``tun ...``
    the stack on a Linux TUN device: HTTP, echo and discard servers, netcat
    (:mod:`trio_tcp6.cli.tun`);
``plot INPUT``
    pictures of a flow from a trace or a pcap (:mod:`trio_tcp6.cli.plot`).

Both serve HTTP with the one h11-based implementation in :mod:`trio_tcp6.cli.http`.
"""

from __future__ import annotations

from collections.abc import Sequence

from .args import OneLineParser
from .build import build_description, package_version
from .demo import add_demo_parser
from .plot import add_plot_parser
from .tun import add_tun_parser

__all__ = ["build_parser", "main"]


def build_parser() -> OneLineParser:
    """The parser of the whole command line. Every value is checked as it is parsed:
    a bad one is a one-line error and exit status 2."""
    parser = OneLineParser(
        prog="python -m trio_tcp6", description="trio_tcp6: a userspace TCP/IPv6 stack on trio"
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"trio_tcp6 {package_version()}, {build_description()}",
        help="print the version and which build (pure Python or compiled) runs, and exit",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_demo_parser(sub)
    add_tun_parser(sub)
    add_plot_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the subcommand, return its exit
    status."""
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result
