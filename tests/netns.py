"""Network namespaces for tests that talk to the real kernel (TUN interop tests).

Everything here is synchronous (``subprocess``) and works from sync and trio tests
alike; setup calls block for milliseconds only.

* :func:`new_netns` — context manager: a fresh namespace with a unique name
  (``t6-<pid>-<n>``), loopback up, always deleted on exit, with every background
  process it started killed first.
* The ``netns`` pytest fixture yields one :class:`NetNS`; ``netns_factory`` makes as
  many as a test needs. Both skip (with the reason) unless root with ``ip`` available.
* :func:`ula_prefix` — a distinct ULA /64 per call, inside ``fd00:7463:70::/48``.
  Only send traffic to addresses in namespaces you made, or loopback.
* :meth:`NetNS.configure_tun` — the kernel side of a TUN link: address (``nodad``),
  interface up; :meth:`NetNS.python` starts a ``python3 -c`` helper inside;
  :meth:`NetNS.tcp_server` starts a TCP server with a chosen behaviour.

Use in a test::

    async def test_x(netns: NetNS) -> None:
        prefix = ula_prefix()
        async with open_tun(tun_name(), netns=netns.name) as link:
            netns.configure_tun(link.name, prefix[1])   # kernel is prefix::1
            ...                                           # our stack uses prefix::2
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import select
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import pytest

__all__ = [
    "BackgroundProcess",
    "NetNS",
    "NetNSFactory",
    "can_use_netns",
    "cleanup_stale",
    "netns_factory_fixture",
    "netns_fixture",
    "new_netns",
    "requires_netns",
    "tun_name",
    "ula_prefix",
    "unique_name",
]

_counter = itertools.count(1)
_prefix_counter = itertools.count(1)
_NAME_PREFIX = "t6-"
#: Every prefix handed out by :func:`ula_prefix` lies in this /48.
ULA_BASE = ipaddress.IPv6Network("fd00:7463:70::/48")


def unique_name(prefix: str = _NAME_PREFIX) -> str:
    """A name unique in this machine for this process's lifetime: prefix-pid-n."""
    return f"{prefix}{os.getpid()}-{next(_counter)}"


def tun_name() -> str:
    """A TUN interface name (15 bytes at most) unique for this process."""
    return f"tt{os.getpid() % 100000}x{next(_counter)}"[:15]


def ula_prefix() -> ipaddress.IPv6Network:
    """A fresh /64 inside :data:`ULA_BASE` (distinct per call, per process)."""
    n = (os.getpid() * 64 + next(_prefix_counter)) & 0xFFFF
    return ipaddress.IPv6Network((int(ULA_BASE.network_address) | (n << 64), 64))


def can_use_netns() -> tuple[bool, str]:
    """(usable, reason): root, ``ip`` on PATH and Linux."""
    if not sys.platform.startswith("linux"):
        return False, "network namespaces need Linux"
    if os.geteuid() != 0:
        return False, "network namespaces need root (CAP_SYS_ADMIN and CAP_NET_ADMIN)"
    if shutil.which("ip") is None:
        return False, "the ip command (iproute2) is not installed"
    return True, ""


_ok, _why = can_use_netns()
#: Mark for tests that need namespaces: skipped with the reason otherwise.
requires_netns = pytest.mark.skipif(not _ok, reason=_why or "network namespaces usable")


def _kernel_reason() -> str:
    if not _ok:
        return _why
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun (modprobe tun)"
    return ""


#: Why tests against the kernel over TUN cannot run here ("" when they can).
KERNEL_REASON = _kernel_reason()
_F = TypeVar("_F", bound=Callable[..., Any])


def needs_kernel(test: _F) -> _F:
    """Mark a test ``tun`` and skip it (with the reason) without root, ``ip`` or
    ``/dev/net/tun``."""
    marked: _F = pytest.mark.tun(
        pytest.mark.skipif(bool(KERNEL_REASON), reason=KERNEL_REASON or "kernel usable")(test)
    )
    return marked


def _run(argv: Sequence[str], *, check: bool = True, timeout: float = 30.0) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


class BackgroundProcess:
    """A process started in a namespace; killed when the namespace closes.

    Its stdout is a pipe read line by line with :meth:`readline` (with a timeout);
    stderr is captured too and shown by :meth:`describe` when something fails.
    """

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        # Lines are split here from raw reads of the pipe: select() on a buffered file
        # object misses a line already sitting in its buffer and would hang.
        self._pending = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def readline(self, timeout: float = 10.0) -> str:
        """The next line of stdout (without the newline); raises TimeoutError."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError(f"no output within {timeout}s from {self.describe()}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError(f"process ended: {self.describe()}")
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode(errors="replace")

    def wait_for(self, marker: str, timeout: float = 10.0) -> str:
        """Read lines until one starts with ``marker``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.readline(max(0.0, deadline - time.monotonic()))
            if line.startswith(marker):
                return line

    def wait(self, timeout: float = 10.0) -> int:
        return self.proc.wait(timeout)

    def describe(self) -> str:
        code = self.proc.poll()
        err = ""
        if code is not None and self.proc.stderr is not None:
            err = self.proc.stderr.read()[-2000:]
        return f"{self.argv[:4]}... exit={code} stderr={err!r}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(2.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5.0)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


class NetNS:
    """One named network namespace made by :func:`new_netns`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.processes: list[BackgroundProcess] = []
        self.closed = False

    def __repr__(self) -> str:
        return f"<NetNS {self.name}{' closed' if self.closed else ''}>"

    def ip(self, *args: str, check: bool = True) -> str:
        """``ip -n NAME args...``; returns stdout."""
        return _run(["ip", "-n", self.name, *args], check=check)

    def run(self, *argv: str, check: bool = True, timeout: float = 30.0) -> str:
        """Run a command inside (``ip netns exec``) and wait; returns stdout."""
        return _run(["ip", "netns", "exec", self.name, *argv], check=check, timeout=timeout)

    def start(self, *argv: str) -> BackgroundProcess:
        """Start a background command inside; it is killed when the namespace closes."""
        proc = BackgroundProcess(["ip", "netns", "exec", self.name, *argv])
        self.processes.append(proc)
        return proc

    def python(self, code: str, *args: str) -> BackgroundProcess:
        """Start ``python3 -u -c code args...`` inside (the same interpreter as ours)."""
        return self.start(sys.executable, "-u", "-c", textwrap.dedent(code), *args)

    def run_python(self, code: str, *args: str, timeout: float = 30.0) -> str:
        """Run ``python3 -c code args...`` inside and wait; returns stdout."""
        return self.run(sys.executable, "-c", textwrap.dedent(code), *args, timeout=timeout)

    def sysctl(self, key: str, value: str | int) -> None:
        self.run("sysctl", "-q", "-w", f"{key}={value}")

    def configure_tun(
        self,
        ifname: str,
        address: ipaddress.IPv6Address | str,
        prefixlen: int = 64,
        *,
        mtu: int | None = None,
    ) -> None:
        """The kernel side of a TUN link: ``address/prefixlen`` without DAD, the
        interface up (the on-link prefix route comes with the address)."""
        if mtu is not None:
            self.ip("link", "set", ifname, "mtu", str(mtu))
        self.ip("addr", "add", f"{address}/{prefixlen}", "dev", ifname, "nodad")
        self.ip("link", "set", ifname, "up")
        self.wait_address(ifname, address)

    def wait_address(
        self, ifname: str, address: ipaddress.IPv6Address | str, timeout: float = 5.0
    ) -> None:
        """Wait until ``address`` is usable: not tentative and in the local table.

        Even a ``nodad`` address becomes local only when the kernel's addrconf work
        runs after the interface comes up; on a loaded machine that can lag behind
        ``ip link set up``, and packets to the address are dropped meanwhile.
        """
        want = str(ipaddress.IPv6Address(address))
        deadline = time.monotonic() + timeout
        while True:
            tentative = self.ip("-6", "addr", "show", "dev", ifname, "tentative")
            local = self.ip("-6", "route", "show", "table", "local", "dev", ifname)
            if f"{want}/" not in tentative and f"local {want} " in local:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{want} on {ifname} not ready: {tentative!r} {local!r}")
            time.sleep(0.01)

    def tcp_server(
        self, address: ipaddress.IPv6Address | str, port: int, mode: str = "echo", *, data: int = 0
    ) -> BackgroundProcess:
        """A TCP server on ``[address]:port`` inside; returns once it listens.

        Modes (one connection each): ``echo`` echoes until EOF; ``sink`` reads until
        EOF and prints ``RECEIVED <n> <sha256>``; ``source`` sends ``data`` bytes
        (byte i is ``i % 251``) then closes. Each prints ``ACCEPTED`` on accept and
        ``DONE`` at the end.
        """
        code = """
            import hashlib, socket, sys
            addr, port, mode, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, port))
            s.listen(8)
            print("LISTENING", flush=True)
            c, peer = s.accept()
            print("ACCEPTED", peer[0], peer[1], flush=True)
            if mode == "echo":
                while True:
                    b = c.recv(65536)
                    if not b:
                        break
                    c.sendall(b)
            elif mode == "sink":
                h = hashlib.sha256()
                total = 0
                while True:
                    b = c.recv(65536)
                    if not b:
                        break
                    total += len(b)
                    h.update(b)
                    print("PROGRESS", total, flush=True)
                print("RECEIVED", total, h.hexdigest(), flush=True)
            elif mode == "source":
                c.sendall(bytes(i % 251 for i in range(n)))
            c.close()
            print("DONE", flush=True)
        """
        proc = self.python(code, str(address), str(port), mode, str(data))
        proc.wait_for("LISTENING")
        return proc

    def close(self) -> None:
        """Kill the background processes, then delete the namespace. Idempotent."""
        if self.closed:
            return
        self.closed = True
        try:
            for proc in self.processes:
                with contextlib.suppress(Exception):
                    proc.kill()
        finally:
            _run(["ip", "netns", "del", self.name], check=False)


@contextlib.contextmanager
def new_netns(prefix: str = _NAME_PREFIX) -> Iterator[NetNS]:
    """A fresh namespace (loopback up), deleted on exit whatever happens."""
    ok, why = can_use_netns()
    if not ok:
        pytest.skip(why)
    ns = NetNS(unique_name(prefix))
    _run(["ip", "netns", "add", ns.name])
    try:
        ns.ip("link", "set", "lo", "up")
        yield ns
    finally:
        ns.close()


def cleanup_stale(prefix: str = _NAME_PREFIX) -> list[str]:
    """Delete namespaces named ``<prefix><pid>-<n>`` whose creating process is gone
    (left behind by a killed test run). Returns the names deleted."""
    removed = []
    for line in _run(["ip", "netns", "list"], check=False).splitlines():
        name = line.split(" ", 1)[0]
        if not name.startswith(prefix):
            continue
        pid_text = name[len(prefix) :].split("-", 1)[0]
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            _run(["ip", "netns", "del", name], check=False)
            removed.append(name)
        except PermissionError:
            pass
    return removed


def pytest_sessionstart(session: pytest.Session) -> None:
    """A run killed before its fixtures' ``finally`` (a timeout, SIGKILL) leaves its
    namespaces behind: the next run deletes them."""
    if can_use_netns()[0]:
        cleanup_stale()


class NetNSFactory:
    """Makes namespaces on demand; all are deleted at teardown."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self._stack = stack

    def __call__(self) -> NetNS:
        return self._stack.enter_context(new_netns())


@pytest.fixture(name="netns_factory")
def netns_factory_fixture() -> Iterator[NetNSFactory]:
    """``ns = netns_factory()`` as often as needed; every one deleted at teardown."""
    with contextlib.ExitStack() as stack:
        yield NetNSFactory(stack)


@pytest.fixture(name="netns")
def netns_fixture() -> Iterator[NetNS]:
    """One fresh namespace, deleted at teardown (skips unless root with iproute2)."""
    with new_netns() as ns:
        yield ns
