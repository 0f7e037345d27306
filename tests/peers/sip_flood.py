"""A sipp INVITE flood from one source: the scenario, and one bounded run of it.

No retransmissions and nothing answered: the INVITEs pile up, as a flooder's do.
Used by tests/e2e/test_sip_attackers.py and bench/sip_flood_one_worker.py.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from peers.ports import free_port_range
from peers.sipp import SippResult, run_sipp, write_scenario

FLOODER = "127.0.0.77"

FLOOD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="invite flood">
  <send>
    <![CDATA[
INVITE sip:1001@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:flood@[local_ip]>;tag=[call_number]
To: <sip:1001@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:flood@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
</scenario>
"""


# With it, each INVITE carries an audio offer, as a real caller's does (pjsua then opens media sockets).
SDP = """Content-Type: application/sdp
Content-Length: [len]

v=0
o=flood 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
"""


async def invite_flood(
    target: str, workdir: Path, *, calls: int, rate: int, timeout_s: float, sdp: bool = False
) -> tuple[SippResult, float]:
    """`calls` INVITEs at `rate` a second from FLOODER to `target`; sipp's result and the seconds it took."""
    scenario = write_scenario(workdir / "flood.xml", FLOOD.replace("Content-Length: 0\n", SDP) if sdp else FLOOD)
    started = time.monotonic()
    flood = await run_sipp(
        scenario,
        target,
        workdir=workdir,
        calls=calls,
        concurrency=calls,
        rate=rate,
        timeout_s=timeout_s,
        trace_msg=False,
        local_ip=FLOODER,
        extra_args=["-nr"],
    )
    return flood, time.monotonic() - started


def front_port() -> int:
    """A port free for UDP and TCP right now, for a lone worker behind the front (the harness gives it none)."""
    for _ in range(50):
        port = free_port_range(1, even=False)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port for the worker")
