"""ISNs (RFC 6528), SYN cookies and the timestamp-encoded SYN options."""

from __future__ import annotations

import ipaddress
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_tcp6.tcp.isn import (
    COOKIE_SLOT,
    MSS_TABLE,
    ISNGenerator,
    SynCookies,
    decode_ts_options,
    encode_ts_options,
    mss_index,
)

A = ipaddress.IPv6Address("2001:db8::1").packed
B = ipaddress.IPv6Address("2001:db8::2").packed
SECRET = b"0123456789abcdef0123456789abcdef"

addrs = st.binary(min_size=16, max_size=16)
ports = st.integers(0, 65535)
u32 = st.integers(0, 2**32 - 1)


def test_isn_depends_on_each_part_of_the_tuple() -> None:
    g = ISNGenerator(SECRET)
    base = g.isn(A, 1000, B, 80, 10.0)
    assert 0 <= base < 2**32
    assert g.isn(A, 1000, B, 80, 10.0) == base  # deterministic for one secret
    variants = {
        g.isn(B, 1000, B, 80, 10.0),
        g.isn(A, 1001, B, 80, 10.0),
        g.isn(A, 1000, A, 80, 10.0),
        g.isn(A, 1000, B, 81, 10.0),
        g.isn(B, 80, A, 1000, 10.0),  # the reverse direction is another tuple
    }
    assert base not in variants
    assert len(variants) == 5


def test_isn_clock_runs_at_250000_per_second() -> None:
    g = ISNGenerator(SECRET)
    t0 = g.isn(A, 1000, B, 80, 100.0)
    t1 = g.isn(A, 1000, B, 80, 101.0)
    assert (t1 - t0) % 2**32 == 250_000
    t2 = g.isn(A, 1000, B, 80, 100.000004)  # one 4-microsecond tick
    assert (t2 - t0) % 2**32 in (0, 1)
    # It wraps modulo 2**32 after 2**32 / 250000 s (about 4.77 hours).
    assert g.isn(A, 1000, B, 80, 100.0 + 2**32 / 250_000) == t0


def test_isn_unpredictable_without_the_secret() -> None:
    g1 = ISNGenerator(SECRET)
    g2 = ISNGenerator(SECRET[::-1])
    g3 = ISNGenerator()  # random secret
    g4 = ISNGenerator()
    isns = {g.isn(A, 1000, B, 80, 5.0) for g in (g1, g2, g3, g4)}
    assert len(isns) == 4
    # Offsets of neighbouring ports look unrelated (not a constant stride).
    offs = [g1.offset(A, p, B, 80) for p in range(1000, 1010)]
    diffs = {(b - a) % 2**32 for a, b in itertools.pairwise(offs)}
    assert len(diffs) == 9


def test_isn_secret_validation_and_long_secret() -> None:
    with pytest.raises(ValueError):
        ISNGenerator(b"")
    g = ISNGenerator(b"x" * 100)
    assert 0 <= g.isn(A, 1, B, 2, 0.0) < 2**32


# -- SYN cookies --------------------------------------------------------------------


def test_cookie_round_trip() -> None:
    c = SynCookies(SECRET)
    cookie = c.make(A, 80, B, 40000, 123456, 1440, 1000.0)
    assert 0 <= cookie < 2**32
    assert c.check(A, 80, B, 40000, 123456, cookie, 1000.5) == 1440
    assert c.check(A, 80, B, 40000, 123456, cookie, 1000.0 + COOKIE_SLOT) == 1440


def test_cookie_rejects_wrong_tuple_and_isn() -> None:
    c = SynCookies(SECRET)
    cookie = c.make(A, 80, B, 40000, 123456, 1440, 1000.0)
    assert c.check(B, 80, B, 40000, 123456, cookie, 1000.0) is None
    assert c.check(A, 81, B, 40000, 123456, cookie, 1000.0) is None
    assert c.check(A, 80, A, 40000, 123456, cookie, 1000.0) is None
    assert c.check(A, 80, B, 40001, 123456, cookie, 1000.0) is None
    assert c.check(A, 80, B, 40000, 123457, cookie, 1000.0) is None
    assert c.check(A, 80, B, 40000, 123456, cookie ^ 1, 1000.0) is None
    assert c.check(A, 80, B, 40000, 123456, (cookie + 1) % 2**32, 1000.0) is None
    # Tampering with the MSS index is caught by the MAC.
    assert c.check(A, 80, B, 40000, 123456, cookie ^ (1 << 24), 1000.0) is None
    assert SynCookies(SECRET[::-1]).check(A, 80, B, 40000, 123456, cookie, 1000.0) is None


def test_cookie_expires() -> None:
    c = SynCookies(SECRET)
    made = 64 * 100 + 10.0  # early in a slot
    cookie = c.make(A, 80, B, 40000, 7, 1220, made)
    assert c.check(A, 80, B, 40000, 7, cookie, made + 60) == 1220
    assert c.check(A, 80, B, 40000, 7, cookie, made + 100) == 1220  # previous slot
    assert c.check(A, 80, B, 40000, 7, cookie, made + 2 * COOKIE_SLOT) is None
    assert c.check(A, 80, B, 40000, 7, cookie, made + 300) is None
    # The 5-bit counter wraps after 32 slots: still stale, the full slot is in the MAC.
    assert c.check(A, 80, B, 40000, 7, cookie, made + 32 * COOKIE_SLOT) is None
    # A cookie "from the future" is no good either.
    assert c.check(A, 80, B, 40000, 7, cookie, made - COOKIE_SLOT) is None


@pytest.mark.parametrize(
    ("peer_mss", "expected"),
    [
        (1220, 1220),
        (1440, 1440),
        (1500, 1460),
        (1439, 1420),
        (9000, 8940),
        (65535, 8940),
        (8939, 4036),
        (500, 536),
        (536, 536),
    ],
)
def test_cookie_mss_table(peer_mss: int, expected: int) -> None:
    c = SynCookies(SECRET)
    cookie = c.make(A, 80, B, 40000, 99, peer_mss, 0.0)
    assert c.check(A, 80, B, 40000, 99, cookie, 1.0) == expected
    assert MSS_TABLE[mss_index(peer_mss)] == expected


@given(addrs, ports, addrs, ports, u32, st.sampled_from(MSS_TABLE), st.floats(0, 1e9))
def test_cookie_round_trip_property(
    la: bytes, lp: int, ra: bytes, rp: int, isn: int, mss: int, now: float
) -> None:
    c = SynCookies(SECRET)
    cookie = c.make(la, lp, ra, rp, isn, mss, now)
    assert c.check(la, lp, ra, rp, isn, cookie, now) == mss
    assert c.check(la, lp, ra, rp, isn, cookie, now + 2 * COOKIE_SLOT) is None


def test_forged_cookies_rarely_pass() -> None:
    c = SynCookies(SECRET)
    now = 5000.0
    good = sum(
        c.check(A, 80, B, 40000, 1, guess * 2654435761 % 2**32, now) is not None
        for guess in range(20_000)
    )
    assert good <= 2  # 24-bit MAC; the expected count is about 0.002


# -- options in TSval ---------------------------------------------------------------


@given(u32, st.one_of(st.none(), st.integers(0, 14)), st.booleans())
def test_ts_options_round_trip(tsval: int, wscale: int | None, sack: bool) -> None:
    encoded = encode_ts_options(tsval, wscale, sack)
    assert 0 <= encoded < 2**32
    assert (tsval - encoded) & 0xFFFFFFFF < 32  # only the low 5 bits, never ahead
    assert decode_ts_options(encoded) == (wscale, sack)


def test_ts_options_layout() -> None:
    assert encode_ts_options(0xFFFFFFF7, 7, True) == 0xFFFFFFF7
    assert encode_ts_options(0xFFFFFFFF, 7, True) == 0xFFFFFFF7
    assert encode_ts_options(0xFFFFFFF6, 7, True) == 0xFFFFFFD7  # one unit back
    assert encode_ts_options(0x1234561F, None, False) == 0x1234560F
    assert encode_ts_options(0x12345600, None, False) == 0x123455EF
    assert encode_ts_options(0x00000003, None, True) == 0xFFFFFFFF  # back across the wrap
    assert decode_ts_options(0x1F) == (None, True)
    assert decode_ts_options(0x0E) == (14, False)
    with pytest.raises(ValueError):
        encode_ts_options(0, 15, False)


#: Clock values at the edges: around zero and the 2^32 wrap, and just below and above
#: every multiple of the 32-value unit the options occupy.
_EDGE_CLOCKS = sorted(
    {
        v & 0xFFFFFFFF
        for base in (0, 1 << 31, 0xFFFFFFE0, 0x12345600)
        for v in range(base - 40, base + 40)
    }
)


def test_cookie_tsval_never_ahead_of_the_clock() -> None:
    """A cookie SYN-ACK's TSval is never later than the timestamp clock (Linux
    cookie_init_timestamp): a peer's PAWS would otherwise drop our first data, whose
    TSval comes from the clock, until the clock catches up with the SYN-ACK's."""
    options = [(ws, sack) for ws in (None, *range(15)) for sack in (False, True)]
    for clock in _EDGE_CLOCKS:
        for wscale, sack in options:
            encoded = encode_ts_options(clock, wscale, sack)
            behind = (clock - encoded) & 0xFFFFFFFF
            assert behind < 32, (clock, wscale, sack, encoded)  # at or before the clock
            assert decode_ts_options(encoded) == (wscale, sack)


@given(u32, st.one_of(st.none(), st.integers(0, 14)), st.booleans())
def test_cookie_tsval_at_most_one_unit_behind(tsval: int, wscale: int | None, sack: bool) -> None:
    encoded = encode_ts_options(tsval, wscale, sack)
    assert (tsval - encoded) & 0xFFFFFFFF < 32
    assert decode_ts_options(encoded) == (wscale, sack)


def test_known_answers() -> None:
    """The hashes are fixed functions of the secret and the tuple: these values (of
    the first implementation, which keyed a new BLAKE2s per call) must not move when
    the computation is made cheaper, or a stack's seeded runs would change."""
    g = ISNGenerator(SECRET)
    assert g.isn(A, 1000, B, 80, 10.0) == 2770143060
    assert g.offset(A, 1000, B, 80) == 2767643060
    assert g.offset(b"\x01\x02\x03\x04", 1000, B, 80) == 1365592274  # (not IPv6-sized)
    assert ISNGenerator(b"short").offset(A, 1000, B, 80) == 2295409688
    assert SynCookies(SECRET).make(A, 80, B, 1000, 12345, 1440, 100.0) == 212629744
