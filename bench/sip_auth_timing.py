"""Does a digest answer take the same time for an unknown user as for a known user's wrong password?

usage: .venv/bin/python bench/sip_auth_timing.py [ROUNDS]
Starts `hotline serve` (one worker) on the digest test tenant and, from an untrusted loopback address,
answers each 407 with a computed digest: alternately for user "nobody" and for the real user "pbx" with a
wrong password. Both must get 403; the figures are the times from the authenticated INVITE to its 403.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness.bridge import BridgeProcess
from harness.tenants import DIGEST_TENANT

SOURCE = "127.0.0.2"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def request(
    method: str, port: int, local: int, call_id: str, cseq: int, branch: str, *, to_tag: str = "", auth: str = ""
) -> bytes:
    lines = [
        f"{method} sip:2002@127.0.0.1:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP {SOURCE}:{local};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:probe@{SOURCE}>;tag={call_id[:8]}",
        f"To: <sip:2002@127.0.0.1:{port}>{';tag=' + to_tag if to_tag else ''}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:probe@{SOURCE}:{local}>",
    ]
    if auth:
        lines.append(f"Proxy-Authorization: {auth}")
    return ("\r\n".join([*lines, "Content-Length: 0", "", ""])).encode()


def final(sock: socket.socket, port: int, call_id: str, cseq: int, branch: str) -> tuple[int, str]:
    """The INVITE's final answer (retransmissions of earlier ones skipped), ACKed as a non-2xx is."""
    local = sock.getsockname()[1]
    while True:
        data = sock.recv(65535).decode(errors="replace")
        status = int(data.split(" ", 2)[1])
        if status >= 200 and f"CSeq: {cseq} INVITE" in data:
            tag = re.search(r"^To:.*;tag=([^;\s]+)", data, re.MULTILINE | re.IGNORECASE)
            ack = request("ACK", port, local, call_id, cseq, branch, to_tag=tag.group(1) if tag else "")
            sock.sendto(ack, ("127.0.0.1", port))
            return status, data


def one(sock: socket.socket, port: int, user: str, password: str) -> float:
    local = sock.getsockname()[1]
    call_id = uuid.uuid4().hex
    branch = f"z9hG4bK{uuid.uuid4().hex}"
    sock.sendto(request("INVITE", port, local, call_id, 1, branch), ("127.0.0.1", port))
    status, challenge = final(sock, port, call_id, 1, branch)
    nonce = re.search(r'nonce="([^"]+)"', challenge)
    if status != 407 or nonce is None:
        raise SystemExit(f"expected a 407 challenge, got {status}")
    uri = f"sip:2002@127.0.0.1:{port}"
    ha1, ha2 = md5(f"{user}:hotline:{password}"), md5(f"INVITE:{uri}")
    cnonce, nc = uuid.uuid4().hex[:8], "00000001"
    response = md5(f"{ha1}:{nonce.group(1)}:{nc}:{cnonce}:auth:{ha2}")
    authorization = (
        f'Digest username="{user}", realm="hotline", nonce="{nonce.group(1)}", uri="{uri}", '
        f'response="{response}", algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}"'
    )
    branch = f"z9hG4bK{uuid.uuid4().hex}"
    started = time.perf_counter()
    sock.sendto(request("INVITE", port, local, call_id, 2, branch, auth=authorization), ("127.0.0.1", port))
    status, _ = final(sock, port, call_id, 2, branch)
    elapsed = time.perf_counter() - started
    if status != 403:
        raise SystemExit(f"expected 403 for {user}, got {status}")
    return elapsed


def measure(port: int, rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"unknown user": [], "wrong password": []}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((SOURCE, 0))
        sock.settimeout(5.0)
        for _ in range(rounds):
            times["unknown user"].append(one(sock, port, "nobody", "pbx-secret"))
            times["wrong password"].append(one(sock, port, "pbx", "not-the-password"))
    return times


async def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    with tempfile.TemporaryDirectory() as tmp:
        async with BridgeProcess.configured(Path(tmp), tenant=DIGEST_TENANT) as bridge:
            await bridge.wait_ready()
            measure(bridge.sip_port, 10)  # warm-up
            times = await asyncio.to_thread(measure, bridge.sip_port, rounds)
    print(f"{rounds} of each, INVITE with credentials to its 403 (ms):")
    print("| case | median | p90 | mean |")
    print("| --- | --- | --- | --- |")
    for case, values in times.items():
        ms = sorted(v * 1000 for v in values)
        p90 = ms[int(len(ms) * 0.9)]
        print(f"| {case} | {statistics.median(ms):.2f} | {p90:.2f} | {statistics.fmean(ms):.2f} |")
    a, b = (sorted(v) for v in times.values())
    print(f"difference of medians: {abs(statistics.median(a) - statistics.median(b)) * 1e6:.0f} µs")


if __name__ == "__main__":
    asyncio.run(main())
