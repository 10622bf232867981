"""Argument checking for the command line: argparse ``type=`` functions with ranges,
and a parser whose errors are one line.

Every value is checked when the command line is parsed, before anything runs, so a
bad value costs one line on standard error and exit status 2 (argparse's usage-error
status), never a traceback halfway through a run.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import sys
from collections.abc import Callable
from typing import NoReturn

__all__ = [
    "OneLineParser",
    "address",
    "fail",
    "interface",
    "interface_name",
    "mtu",
    "netns",
    "non_negative",
    "pcap_path",
    "port",
    "positive",
    "probability",
    "size_mib",
]

#: Linux IFNAMSIZ is 16 bytes, the terminating NUL included.
IFNAME_MAX = 15
#: IPv6 requires every link to carry 1280-byte packets (RFC 8200 §5).
IPV6_MIN_MTU = 1280
MAX_MTU = 65535
#: The demo holds the payload in memory twice (sent and received digests aside).
MAX_MIB = 1024.0


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on standard error (exit 2).

    argparse's own message starts with the whole usage text, which for a command with
    a dozen options buries the one line that matters.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if math.isnan(value) or math.isinf(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def probability(*, below_one: bool = False, why: str = "") -> Callable[[str], float]:
    """A probability in [0, 1] (or [0, 1) with ``below_one``)."""

    def check(text: str) -> float:
        value = _number(text)
        if below_one and not 0.0 <= value < 1.0:
            raise argparse.ArgumentTypeError(f"must be a probability in [0, 1){why}, got {text}")
        if not 0.0 <= value <= 1.0:
            raise argparse.ArgumentTypeError(f"must be a probability in [0, 1], got {text}")
        return value

    return check


def non_negative(text: str) -> float:
    """A finite number >= 0 (seconds)."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive(text: str) -> float:
    """A finite number > 0."""
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def size_mib(text: str) -> float:
    """A transfer size in MiB: > 0 and at most :data:`MAX_MIB`."""
    value = _number(text)
    if not 0 < value <= MAX_MIB:
        raise argparse.ArgumentTypeError(f"must be in (0, {MAX_MIB:g}] MiB, got {text}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def port(*, allow_zero: bool) -> Callable[[str], int]:
    """A TCP port: 1..65535, or 0..65535 with ``allow_zero`` (0: pick a free one)."""
    low = 0 if allow_zero else 1

    def check(text: str) -> int:
        value = _integer(text)
        if not low <= value <= 65535:
            raise argparse.ArgumentTypeError(f"a port is {low}..65535, got {text}")
        return value

    return check


def mtu(text: str) -> int:
    """An IPv6 link MTU: 1280..65535."""
    value = _integer(text)
    if not IPV6_MIN_MTU <= value <= MAX_MTU:
        raise argparse.ArgumentTypeError(
            f"an IPv6 MTU is {IPV6_MIN_MTU}..{MAX_MTU} bytes, got {text}"
        )
    return value


def address(text: str) -> ipaddress.IPv6Address:
    """A unicast IPv6 address a host can use (not ``::``, ``::1`` or multicast)."""
    literal = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        value = ipaddress.IPv6Address(literal)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IPv6 address: {text!r}") from None
    if value.is_unspecified or value.is_loopback or value.is_multicast:
        raise argparse.ArgumentTypeError(f"not a unicast host address: {text}")
    return value


def interface(text: str) -> ipaddress.IPv6Interface:
    """``ADDR/LEN``: an IPv6 host address with its prefix length (1..128)."""
    if "/" not in text:
        raise argparse.ArgumentTypeError(f"needs a prefix length, e.g. {text}/64")
    addr_text, _, length_text = text.partition("/")
    address(addr_text)
    length = _integer(length_text)
    if not 1 <= length <= 128:
        raise argparse.ArgumentTypeError(f"the prefix length is 1..128, got /{length_text}")
    return ipaddress.IPv6Interface(f"{addr_text}/{length}")


def interface_name(text: str) -> str:
    """A Linux interface name: 1..15 bytes, no ``/``, whitespace or ``:``, at most one
    ``%d`` (the kernel then picks the number); not ``.`` or ``..``."""
    if not text:
        raise argparse.ArgumentTypeError("an interface name cannot be empty")
    if len(text.encode()) > IFNAME_MAX:
        raise argparse.ArgumentTypeError(
            f"an interface name has at most {IFNAME_MAX} bytes, got {text!r}"
        )
    if text in (".", "..") or any(c in text for c in "/: \t\n") or text.count("%") > 1:
        raise argparse.ArgumentTypeError(f"not a valid interface name: {text!r}")
    if "%" in text and "%d" not in text:
        raise argparse.ArgumentTypeError(f"'%' is only allowed as '%d': {text!r}")
    return text


#: Where ``ip netns add NAME`` puts named namespaces.
NETNS_DIRS = ("/run/netns", "/var/run/netns")


def netns(text: str) -> str:
    """A named network namespace that exists (``ip netns add NAME``), or a path to one."""
    if "/" in text:
        if not os.path.exists(text):
            raise argparse.ArgumentTypeError(f"no network namespace at {text}")
        return text
    if text in ("", ".", ".."):
        raise argparse.ArgumentTypeError(f"not a namespace name: {text!r}")
    if not any(os.path.exists(os.path.join(d, text)) for d in NETNS_DIRS):
        raise argparse.ArgumentTypeError(
            f"no network namespace named {text!r} (create it: ip netns add {text})"
        )
    return text


def pcap_path(text: str) -> str:
    """A file path whose directory exists and is writable."""
    if not text:
        raise argparse.ArgumentTypeError("the capture path cannot be empty")
    directory = os.path.dirname(os.path.abspath(text))
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a directory")
    if not os.path.isdir(directory):
        raise argparse.ArgumentTypeError(f"no such directory: {directory}")
    if not os.access(directory, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write in {directory}")
    return text


def fail(prog: str, message: str, status: int = 2) -> int:
    """Print ``prog: error: message`` on standard error; return ``status``."""
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    return status
