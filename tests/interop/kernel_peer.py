"""The kernel side of the interop tests: a plain-socket TCP peer run in a namespace.

    python kernel_peer.py listen ADDR PORT MODE [ARGS...]
    python kernel_peer.py connect ADDR PORT MODE [ARGS...]

It prints ``LISTENING`` once bound (listen), then one line per event. Modes (one
connection each):

``sink``            read to EOF; print ``RECEIVED <n> <sha256>``; then close.
``source N SEED``   send ``random.Random(SEED).randbytes(N)``, shut down the write side,
                    then read until EOF and print ``PEER_EOF <bytes read>``.
``both N SEED``     send N bytes (as ``source``) while reading to EOF in a thread;
                    print ``RECEIVED <n> <sha256>`` and ``SENT <n>``.
``halfclose``       read to EOF, print ``EOF <n>``, then send ``b"after-eof"`` and close.
``reset N``         send N bytes, then block reading; print ``ERROR <errno name>`` or
                    ``EOF <n>``.
``tls CERT KEY N SEED``  TLS server (``ssl``): read an 8-byte big-endian length and
                    that many bytes, print ``RECEIVED <n> <sha256>``, answer with the
                    SHA-256 (64 hex digits) and N bytes of ``randbytes``, then read
                    until the client closes (close_notify or EOF).

Each prints ``DONE`` at the end. Everything is stdlib, so the file runs under any
``python3`` inside ``ip netns exec``.
"""

from __future__ import annotations

import errno
import hashlib
import random
import socket
import ssl
import sys
import threading

CHUNK = 1 << 18


def data_for(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def read_exactly(conn: socket.socket | ssl.SSLSocket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        b = conn.recv(min(CHUNK, n - len(out)))
        if not b:
            raise EOFError(f"EOF after {len(out)} of {n} bytes")
        out += b
    return bytes(out)


def read_to_eof(conn: socket.socket | ssl.SSLSocket) -> tuple[int, str]:
    h = hashlib.sha256()
    total = 0
    while True:
        b = conn.recv(CHUNK)
        if not b:
            return total, h.hexdigest()
        total += len(b)
        h.update(b)


def serve(conn: socket.socket, mode: str, args: list[str]) -> None:
    if mode == "sink":
        n, digest = read_to_eof(conn)
        print("RECEIVED", n, digest, flush=True)
    elif mode == "source":
        conn.sendall(data_for(int(args[0]), int(args[1])))
        conn.shutdown(socket.SHUT_WR)
        print("SENT", args[0], flush=True)
        n, _ = read_to_eof(conn)
        print("PEER_EOF", n, flush=True)
    elif mode == "both":
        result: list[tuple[int, str]] = []
        reader = threading.Thread(target=lambda: result.append(read_to_eof(conn)))
        reader.start()
        conn.sendall(data_for(int(args[0]), int(args[1])))
        conn.shutdown(socket.SHUT_WR)
        print("SENT", args[0], flush=True)
        reader.join()
        print("RECEIVED", result[0][0], result[0][1], flush=True)
    elif mode == "halfclose":
        n, _ = read_to_eof(conn)
        print("EOF", n, flush=True)
        conn.sendall(b"after-eof")
    elif mode == "reset":
        conn.sendall(data_for(int(args[0]), 7))
        print("SENT", args[0], flush=True)
        try:
            n, _ = read_to_eof(conn)
        except OSError as exc:
            print("ERROR", errno.errorcode.get(exc.errno or 0, str(exc.errno)), flush=True)
        else:
            print("EOF", n, flush=True)
    else:
        raise SystemExit(f"unknown mode {mode}")
    conn.close()


def main() -> None:
    role, addr, port, mode, *args = sys.argv[1:]
    if role == "listen":
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, int(port)))
        s.listen(8)
        print("LISTENING", flush=True)
        conn, peer = s.accept()
        print("ACCEPTED", peer[0], peer[1], flush=True)
        if mode == "tls":
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(args[0], args[1])
            tls = ctx.wrap_socket(conn, server_side=True)
            size = int.from_bytes(read_exactly(tls, 8), "big")
            digest = hashlib.sha256(read_exactly(tls, size)).hexdigest()
            print("RECEIVED", size, digest, flush=True)
            tls.sendall(digest.encode() + data_for(int(args[2]), int(args[3])))
            try:
                read_to_eof(tls)
            except (ssl.SSLError, OSError) as exc:
                print("CLOSE_ERROR", exc, flush=True)
            else:
                print("CLOSED", flush=True)
            tls.close()
        else:
            serve(conn, mode, args)
        s.close()
    else:
        conn = socket.create_connection((addr, int(port)), timeout=30)
        conn.settimeout(None)
        print("CONNECTED", flush=True)
        serve(conn, mode, args)
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
