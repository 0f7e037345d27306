"""No toll-fraud path: nothing a caller sends makes the bridge call anywhere.

A trusted caller's INVITE carries a Refer-To; once answered, the caller
asks the bridge, inside the call, to transfer it to a premium number
(REFER). pjsua's default would accept (202) and dial it. The "premium
number" is a UDP socket on loopback: it must never hear from the bridge,
and the REFER must be declined (603).
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from harness.bridge import BridgeProcess
from harness.tenants import E2E_TENANT
from peers.sipp import run_sipp, write_scenario

pytestmark = [pytest.mark.peers]


def scenario(trap_port: int) -> str:
    refer_to = f"<sip:0899123456@127.0.0.1:{trap_port}>"
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="refer to a premium number">
  <send retrans="500">
    <![CDATA[
      INVITE sip:1001@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:0612345678@[local_ip]:[local_port]>;tag=[call_number]
      To: <sip:1001@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:0612345678@[local_ip]:[local_port]>
      Refer-To: {refer_to}
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [local_ip]
      t=0 0
      m=audio [auto_media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:0612345678@[local_ip]:[local_port]>;tag=[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:0612345678@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="500"/>
  <send retrans="500">
    <![CDATA[
      REFER [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:0612345678@[local_ip]:[local_port]>;tag=[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 REFER
      Contact: <sip:0612345678@[local_ip]:[local_port]>
      Refer-To: {refer_to}
      Referred-By: <sip:0612345678@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="603"/>
  <pause milliseconds="2000"/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:0612345678@[local_ip]:[local_port]>;tag=[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 3 BYE
      Contact: <sip:0612345678@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"""


async def test_a_caller_s_refer_to_a_premium_number_is_declined_and_nothing_is_dialled(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as trap:
        trap.bind(("127.0.0.1", 0))
        trap.setblocking(False)
        async with BridgeProcess.configured(tmp_path, tenant=E2E_TENANT) as bridge:
            await bridge.wait_ready()
            xml = write_scenario(tmp_path / "refer" / "refer.xml", scenario(trap.getsockname()[1]))
            result = await run_sipp(xml, f"127.0.0.1:{bridge.sip_port}", workdir=tmp_path / "refer", timeout_s=20)
            await asyncio.sleep(1.0)
            log = bridge.log_text()
        heard: list[bytes] = []
        while True:
            try:
                heard.append(trap.recv(65535))
            except BlockingIOError:
                break
    assert result.ok, result.describe()
    assert heard == [], f"the bridge called the premium number: {heard[:1]!r}"
    assert "sip_takeover_refused" in log
