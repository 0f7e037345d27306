"""What the strict RTP source costs the pjsua thread: pinning a call's sockets, and the once-a-second check.

usage: .venv/bin/python bench/rtp_pins.py [OTHER_FDS ...]
A worker at capacity has 4 calls, each an RTP and an RTCP socket; around them, other descriptors
(aiortc's sockets, log files, pipes). apply() finds a socket by port in /proc/self/fd, so the cost
grows with the process's descriptors: measured with several counts of them. The check, once a
second, reuses the descriptor found at pinning time.
"""

from __future__ import annotations

import os
import socket
import statistics
import sys
import time

from telephony.rtp_strict_source import MediaPin, Pinner

CALLS = 4
ROUNDS = 200


def measure(other_fds: int) -> tuple[float, float]:
    others = [os.open(os.devnull, os.O_RDONLY) for _ in range(other_fds // 2)]
    others_sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(other_fds - len(others))]
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    first: list[float] = []
    check: list[float] = []
    for _ in range(ROUNDS // 10):
        media = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2 * CALLS)]
        for sock in media:
            sock.bind(("127.0.0.1", 0))
        pins = [MediaPin(sock.getsockname()[1], peer.getsockname()) for sock in media]
        pinner = Pinner()
        start = time.perf_counter()
        for call in range(CALLS):
            # As the adapter does: a call's RTP and RTCP sockets located together, then pinned.
            pinner.locate(pins[2 * call : 2 * call + 2])
            for pin in pins[2 * call : 2 * call + 2]:
                pinner.apply(pin)
        first.append((time.perf_counter() - start) / CALLS)
        for _ in range(10):
            start = time.perf_counter()
            for pin in pins:
                pinner.apply(pin)
            check.append(time.perf_counter() - start)
        for sock in media:
            sock.close()
    for fd in others:
        os.close(fd)
    for sock in others_sockets:
        sock.close()
    peer.close()
    return statistics.median(first), statistics.median(check)


def main() -> None:
    counts = [int(arg) for arg in sys.argv[1:]] or [20, 200, 1000]
    print(f"{'other fds':>10} {'pin one call (ms)':>18} {f'check {CALLS} calls (ms)':>20} {'pjsua thread per s':>19}")
    for count in counts:
        first, check = measure(count)
        print(f"{count:>10} {first * 1e3:>18.3f} {check * 1e3:>20.3f} {check * 100:>18.3f}%")


if __name__ == "__main__":
    main()
