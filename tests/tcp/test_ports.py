"""Ephemeral port selection (RFC 6056 Algorithm 4)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_tcp6.tcp.ports import EphemeralPorts

A = ipaddress.IPv6Address("2001:db8::1").packed
B = ipaddress.IPv6Address("2001:db8::2").packed
C = ipaddress.IPv6Address("2001:db8::3").packed
SECRET = b"port-secret-0123456789"


def free(_port: int) -> bool:
    return False


def sequence(p: EphemeralPorts, remote: bytes, rport: int, n: int) -> list[int]:
    out = []
    for _ in range(n):
        port = p.choose(A, remote, rport, free)
        assert port is not None
        out.append(port)
    return out


def test_ports_within_range_and_distinct_for_one_destination() -> None:
    p = EphemeralPorts(SECRET)
    seq = sequence(p, B, 80, 1000)
    assert all(49152 <= x <= 65535 for x in seq)
    assert len(set(seq)) == 1000  # successive connections walk the range


def test_different_destinations_give_different_sequences() -> None:
    p = EphemeralPorts(SECRET)
    to_b = sequence(p, B, 80, 20)
    to_c = sequence(p, C, 80, 20)
    to_b443 = sequence(p, B, 443, 20)
    assert to_b != to_c and to_b != to_b443 and to_c != to_b443
    # Another secret, another sequence for the same destination.
    assert sequence(EphemeralPorts(b"another secret"), B, 80, 20) != sequence(
        EphemeralPorts(SECRET), B, 80, 20
    )


def test_same_secret_is_deterministic() -> None:
    assert sequence(EphemeralPorts(SECRET), B, 80, 10) == sequence(
        EphemeralPorts(SECRET), B, 80, 10
    )


def test_in_use_is_respected() -> None:
    p = EphemeralPorts(SECRET, low=1000, high=1009)
    taken = {1000, 1003, 1005, 1007, 1009}
    got = {p.choose(A, B, 80, taken.__contains__) for _ in range(20)}
    assert got == {1001, 1002, 1004, 1006, 1008}


def test_none_when_exhausted() -> None:
    p = EphemeralPorts(SECRET, low=2000, high=2099)
    calls: list[int] = []

    def in_use(port: int) -> bool:
        calls.append(port)
        return True

    assert p.choose(A, B, 80, in_use) is None
    assert sorted(calls) == list(range(2000, 2100))  # every port tried exactly once
    taken: set[int] = set()
    for _ in range(100):
        port = p.choose(A, B, 80, taken.__contains__)
        assert port is not None
        taken.add(port)
    assert p.choose(A, B, 80, taken.__contains__) is None
    # ... but another destination may reuse them (a different 4-tuple).
    assert p.choose(A, C, 80, lambda _p: False) is not None


def test_single_port_range_and_validation() -> None:
    p = EphemeralPorts(low=5000, high=5000)
    assert p.choose(A, B, 80, free) == 5000
    with pytest.raises(ValueError):
        EphemeralPorts(low=0)
    with pytest.raises(ValueError):
        EphemeralPorts(low=60000, high=50000)
    with pytest.raises(ValueError):
        EphemeralPorts(high=70000)
    with pytest.raises(ValueError):
        EphemeralPorts(b"")


@given(
    st.integers(1, 65535),
    st.integers(0, 300),
    st.binary(min_size=16, max_size=16),
    st.integers(0, 65535),
    st.frozensets(st.integers(0, 300)),
)
def test_choose_property(
    low: int, span: int, remote: bytes, rport: int, taken_offsets: frozenset[int]
) -> None:
    high = min(65535, low + span)
    taken = {low + o for o in taken_offsets if low + o <= high}
    p = EphemeralPorts(SECRET, low=low, high=high)
    port = p.choose(A, remote, rport, taken.__contains__)
    if len(taken) == high - low + 1:
        assert port is None
    else:
        assert port is not None
        assert low <= port <= high
        assert port not in taken


def test_known_answers_across_destinations() -> None:
    """The ports a seeded stack picks are fixed by the secret and the order of the
    connections: these values (of the first implementation, which hashed F and G
    anew for every call) must not move when the per-destination hashes are reused,
    including when a destination comes back after another one."""
    p = EphemeralPorts(SECRET)
    picks = [
        p.choose(A, B, 80, free),
        p.choose(A, B, 80, free),
        p.choose(A, B, 443, free),
        p.choose(A, B, 80, free),
        p.choose(A, C, 80, free),
        p.choose(A, b"", 0, free),
        p.choose(A, B, 80, lambda port: port % 3 != 0),
    ]
    assert picks == [55972, 55973, 62748, 55974, 50488, 54275, 55977]
