"""A sipp (3.6.1) harness: scenario files, an asyncio runner, and result parsing.

Typical use, N callers whose RTP goes to sockets the test owns:

    sinks = [await RtpSink.open() for _ in range(3)]
    result = await sipp_calls("127.0.0.1:5070", workdir=tmp_path, rtp_ports=[s.port for s in sinks],
                              callee="1001", hold_s=8, concurrency=3)
    assert result.ok, result.describe()
    assert all(7.9 < s < 8.3 for s in result.call_lengths_s)
    assert tone_present(sinks[0].samples(), 8000, 1000)

How it works
------------
* UAC scenarios offer ``m=audio [field0]`` with ``c=IN IP4 127.0.0.1``; the
  injection CSV (``-inf``, SEQUENTIAL, one line per call: ``rtp_port;callee;caller``)
  gives each call its own RTP port, so each call's media lands in its own
  ``RtpSink``. ``[field1]`` is the dialled user, ``[field2]`` the From user.
* Call length: the scenario starts rtd timer ``call`` when the 200 to the INVITE
  arrives and stops it when the 200 to our BYE (or the remote BYE) arrives;
  ``-trace_rtt -rtt_freq 1`` writes it per call (whole ms) to ``*_rtt.csv``.
  ``-trace_msg`` timestamps (microseconds, per Call-ID) give the same lengths
  per call: ``SippResult.call_lengths_by_call_id`` (verified to agree within
  a few ms in the peers self-test).
* sipp never draws on a terminal: stdin is /dev/null plus ``-nostdin``, its
  screen goes to ``sipp.stdout`` in the workdir, it runs in the foreground
  (``-bg`` would daemonise and return at once), bounded by ``-timeout`` and an
  asyncio deadline after which it is killed.
* Ports: the SIP port (``-p``), sipp's unused media echo ports (``-mp``, it binds
  mp and mp+2) and its control socket (``-cp``, else 8888 on all interfaces)
  are all free loopback ports chosen per run, never 5060.

Exit codes of sipp: 0 all calls succeeded, 1 at least one failed, 97 internal
exit, 99 no call processed, 255 fatal, 254 socket bind failure.
"""

from __future__ import annotations

import asyncio
import csv
import re
import shutil
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from peers.ports import free_port_range, free_udp_port
from peers.rtp import RtpPacket, RtpSink, decode_packets, parse_rtp
from peers.stopping import close_transport, stop_child

__all__ = [
    "RtpPacket",
    "RtpSink",
    "SippResult",
    "cancel_scenario",
    "decode_packets",
    "parse_rtp",
    "run_sipp",
    "sipp_available",
    "sipp_calls",
    "uac_scenario",
    "uas_digest_scenario",
    "write_injection_csv",
    "write_scenario",
]

SIPP = "sipp"
LOOPBACK = "127.0.0.1"

_HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
"""

_FROM = "From: <sip:[field2]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]"
_CONTACT = "Contact: <sip:[field2]@[local_ip]:[local_port]>"


def sipp_available() -> bool:
    return shutil.which(SIPP) is not None


def _sdp_offer(payload_types: Sequence[int]) -> str:
    names = {0: "PCMU/8000", 8: "PCMA/8000", 9: "G722/8000", 101: "telephone-event/8000"}
    pts = " ".join(str(p) for p in payload_types)
    lines = [
        "v=0",
        "o=sipp 1 1 IN IP[local_ip_type] [local_ip]",
        "s=-",
        "c=IN IP[media_ip_type] [media_ip]",
        "t=0 0",
        f"m=audio [field0] RTP/AVP {pts}",
        *[f"a=rtpmap:{p} {names[p]}" for p in payload_types if p in names],
        "a=ptime:20",
        "a=sendrecv",
    ]
    return "\n".join(lines)


def _invite(headers: Sequence[str], payload_types: Sequence[int], *, branch: str = "[branch]") -> str:
    # no blank line may appear among the headers: it would end them
    extra = "".join(f"\n      {h}" for h in headers if h.strip())
    return f"""  <send retrans="500" start_rtd="setup">
    <![CDATA[
      INVITE sip:[field1]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch={branch}
      {_FROM}
      To: <sip:[field1]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      {_CONTACT}
      Max-Forwards: 70{extra}
      Content-Type: application/sdp
      Content-Length: [len]

{_sdp_offer(payload_types)}

    ]]>
  </send>
"""


def _in_dialog(method: str, cseq: int) -> str:
    return f"""  <send{' retrans="500"' if method != "ACK" else ""}>
    <![CDATA[
      {method} [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      {_FROM}
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} {method}
      {_CONTACT}
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""


_ACK_NON_2XX = """  <send>
    <![CDATA[
      ACK sip:[field1]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""

_OK_TO_BYE = """  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
"""


def uac_scenario(
    *,
    hold_s: float = 5.0,
    expect_status: int = 200,
    hangup: Literal["local", "remote"] = "local",
    remote_bye_timeout_s: float = 60.0,
    headers: Sequence[str] = (),
    payload_types: Sequence[int] = (0, 8),
    name: str = "hotline uac",
) -> str:
    """XML of a caller scenario.

    * ``expect_status == 200``: INVITE, (100/180/183 optional), 200 -> ACK; then with
      ``hangup="local"`` pause ``hold_s`` and send BYE, with ``hangup="remote"`` wait
      (at most ``remote_bye_timeout_s``) for the far end's BYE and answer it.
      rtd ``setup``: INVITE sent -> 200 received; rtd ``call``: 200 received ->
      200-to-BYE received (local) or BYE received (remote).
    * any other ``expect_status`` (404, 403, 480, 503, ...): the INVITE must end with
      exactly that final response (ACKed); anything else fails the call.
    """
    parts = [_HEAD, f'<scenario name="{name}">\n', _invite(headers, payload_types)]
    parts.append('  <recv response="100" optional="true"/>\n')
    parts.append('  <recv response="180" optional="true"/>\n')
    parts.append('  <recv response="183" optional="true"/>\n')
    if expect_status != 200:
        parts.append(f'  <recv response="{expect_status}" rtd="setup"/>\n')
        parts.append(_ACK_NON_2XX)
    else:
        parts.append('  <recv response="200" rrs="true" rtd="setup" start_rtd="call"/>\n')
        parts.append(_in_dialog("ACK", 1))
        if hangup == "local":
            parts.append(f'  <pause milliseconds="{round(hold_s * 1000)}"/>\n')
            parts.append(_in_dialog("BYE", 2))
            parts.append('  <recv response="200" crlf="true" rtd="call"/>\n')
        else:
            parts.append(f'  <recv request="BYE" timeout="{round(remote_bye_timeout_s * 1000)}" rtd="call"/>\n')
            parts.append(_OK_TO_BYE)
    parts.append('  <ResponseTimeRepartition value="10, 20, 50, 100, 200, 500, 1000"/>\n')
    parts.append('  <CallLengthRepartition value="1000, 5000, 10000, 30000, 60000"/>\n')
    parts.append("</scenario>\n")
    return "".join(parts)


# The INVITE's own branch, written out so that its CANCEL carries the same one
# (RFC 3261 9.1). sipp's transactions (start_txn/response_txn) match responses by
# that branch alone, so they cannot tell the INVITE's responses from the CANCEL's:
# the cancel scenario tells them apart by their CSeq instead.
_INVITE_BRANCH = "z9hG4bK-hl-[pid]-[call_number]-invite"


def _request(method: str, cseq: int, *, branch: str = "[branch]", to: str = "[last_To:]") -> str:
    # Addressed like the INVITE: pjsip matches in-dialog requests by Call-ID and tags.
    return f"""  <send{' retrans="500"' if method != "ACK" else ""}>
    <![CDATA[
      {method} sip:[field1]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch={branch}
      {_FROM}
      {to}
      Call-ID: [call_id]
      CSeq: {cseq} {method}
      {_CONTACT}
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""


def _recv_200_for(method: str, var: str) -> str:
    """A 200 (to whatever request) that sets ``var`` when its CSeq method is ``method``."""
    return f"""  <recv response="200">
    <action>
      <ereg regexp="{method}" search_in="hdr" header="CSeq:" check_it="false" assign_to="{var}"/>
    </action>
  </recv>
"""


def cancel_scenario(*, delay_ms: int = 0, payload_types: Sequence[int] = (0, 8), name: str = "hotline cancel") -> str:
    """XML of a caller that CANCELs its INVITE before the answer.

    INVITE; its 100 Trying (RFC 3261 9.1: no CANCEL before a provisional
    response; pjsua sends the 100 as the INVITE arrives, before the application
    sees the call); then, after ``delay_ms`` (0: at once, without waiting for
    any final response), CANCEL. Expected: 200 to the CANCEL, then 487 to the
    INVITE, ACKed.

    If the far end answers 200 first (the CANCEL lost the race, or ``delay_ms``
    made it lose on purpose), the call takes the answered path: ACK, then BYE.
    A 200 that crosses the CANCEL is told from the CANCEL's 200 by its CSeq; one
    that arrives before the CANCEL is even sent lands in sipp's ``_unexp.main``
    handler. On that path the CANCEL's own response (200, or 481 once the INVITE
    transaction is gone), if a CANCEL went out, is accepted before the BYE's 200.
    Which path each call took: ``SippResult.final_status_by_call_id()`` (487 or 200).
    rtd ``setup``: INVITE sent -> final response received.
    """
    to_invite = "To: <sip:[field1]@[remote_ip]:[remote_port]>"
    parts = [_HEAD, f'<scenario name="{name}">\n']
    # Naming _unexp.retaddr makes sipp remember where a jump to _unexp.main came
    # from, so that a second unexpected message aborts the call instead of looping.
    parts.append('  <nop hide="true"><action><assign assign_to="_unexp.retaddr" value="0"/></action></nop>\n')
    parts.append(_invite((), payload_types, branch=_INVITE_BRANCH))
    parts.append('  <recv response="100"/>\n')
    if delay_ms:
        parts.append(f'  <pause milliseconds="{delay_ms}"/>\n')
    parts.append(_request("CANCEL", 1, branch=_INVITE_BRANCH, to=to_invite))
    parts.append('  <recv response="180" optional="true"/>\n')
    parts.append('  <recv response="183" optional="true"/>\n')
    parts.append(_recv_200_for("INVITE", "crossed"))
    parts.append('  <nop hide="true" test="crossed" next="answered"/>\n')
    parts.append('  <recv response="180" optional="true"/>\n')
    parts.append('  <recv response="183" optional="true"/>\n')
    parts.append('  <recv response="487" rtd="setup"/>\n')
    parts.append(_ACK_NON_2XX)
    parts.append('  <nop hide="true" next="end"/>\n')
    # Only a 200 to the INVITE can come before the CANCEL is sent and be unexpected.
    parts.append('  <label id="_unexp.main"/>\n')
    parts.append('  <recv response="200"/>\n')
    parts.append('  <label id="answered"/>\n')
    parts.append('  <nop hide="true" rtd="setup"/>\n')
    parts.append(_request("ACK", 1))
    parts.append(_request("BYE", 2))
    parts.append('  <recv response="481" optional="true"/>\n')
    parts.append(_recv_200_for("BYE", "bye_done"))
    parts.append('  <nop hide="true" test="bye_done" next="end"/>\n')
    parts.append('  <recv response="200"/>\n')
    parts.append('  <label id="end"/>\n')
    parts.append('  <ResponseTimeRepartition value="10, 20, 50, 100, 200, 500, 1000"/>\n')
    parts.append("</scenario>\n")
    return "".join(parts)


def uas_digest_scenario(*, username: str, password: str, realm: str = "hotline.test", challenge: int = 401) -> str:
    """XML of an answering scenario that challenges the INVITE (401/407), verifies the digest
    answer with ``verifyauth``, then answers 200 (wrong credentials: 403) and waits for BYE."""
    header = "WWW-Authenticate" if challenge == 401 else "Proxy-Authenticate"
    reason = "Unauthorized" if challenge == 401 else "Proxy Authentication Required"
    return f"""{_HEAD}<scenario name="uas digest">
  <recv request="INVITE"/>
  <send>
    <![CDATA[
      SIP/2.0 {challenge} {reason}
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      {header}: Digest realm="{realm}", nonce="5f2b1d9c0e6a47b3a1d2c3b4e5f60718", algorithm=MD5
      Content-Length: 0

    ]]>
  </send>
  <recv request="ACK"/>
  <recv request="INVITE">
    <action>
      <verifyauth assign_to="authvalid" username="{username}" password="{password}"/>
    </action>
  </recv>
  <nop hide="true" test="authvalid" next="goodauth"/>
  <send next="badauth">
    <![CDATA[
      SIP/2.0 403 Forbidden
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <label id="goodauth"/>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:uas@[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv request="ACK"/>
  <recv request="BYE"/>
{_OK_TO_BYE}  <nop next="end"/>
  <label id="badauth"/>
  <recv request="ACK"/>
  <label id="end"/>
</scenario>
"""


def write_scenario(path: Path, xml: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(xml, encoding="iso-8859-1")
    return path


def write_injection_csv(path: Path, rows: Sequence[Sequence[str | int]], order: str = "SEQUENTIAL") -> Path:
    """sipp ``-inf`` file: first line the order, then one ``;``-separated line per call."""
    lines = [order] + [";".join(str(v) for v in row) + ";" for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class SipMessage:
    """One entry of sipp's ``-trace_msg`` log."""

    at: datetime
    direction: Literal["sent", "received"]
    first_line: str
    call_id: str
    cseq: str
    text: str

    @property
    def status(self) -> int | None:
        m = re.match(r"SIP/2\.0 (\d{3})", self.first_line)
        return int(m.group(1)) if m else None

    @property
    def method(self) -> str | None:
        return None if self.first_line.startswith("SIP/2.0") else self.first_line.split(" ", 1)[0]


_MSG_SPLIT = re.compile(r"^-{20,} (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6})\s*$", re.MULTILINE)


def parse_message_log(text: str) -> list[SipMessage]:
    """Parse sipp's ``-trace_msg`` file (blocks separated by dashed lines with a timestamp)."""
    parts = _MSG_SPLIT.split(text)
    out: list[SipMessage] = []
    for i in range(1, len(parts) - 1, 2):
        stamp, block = parts[i], parts[i + 1].strip("\n")
        head, _, body = block.partition("\n")
        direction: Literal["sent", "received"] = "sent" if "message sent" in head else "received"
        lines = body.strip("\n").splitlines()
        if not lines:
            continue
        first = lines[0].strip()
        call_id = _header(lines, ("call-id", "i"))
        cseq = _header(lines, ("cseq",))
        out.append(
            SipMessage(
                at=datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f"),
                direction=direction,
                first_line=first,
                call_id=call_id,
                cseq=cseq,
                text=body,
            )
        )
    return out


def _header(lines: list[str], names: tuple[str, ...]) -> str:
    for line in lines[1:]:
        if not line.strip():
            break
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() in names:
            return value.strip()
    return ""


def call_lengths_from_messages(messages: Sequence[SipMessage]) -> dict[str, float]:
    """Per Call-ID: seconds from the 200 to INVITE received to the 200 to BYE received
    (or to the BYE received, when the far end hung up)."""
    answered: dict[str, datetime] = {}
    ended: dict[str, datetime] = {}
    for m in messages:
        if m.direction != "received":
            continue
        if m.status == 200 and m.cseq.endswith("INVITE") and m.call_id not in answered:
            answered[m.call_id] = m.at
        elif (
            m.call_id in answered
            and m.call_id not in ended
            and ((m.status == 200 and m.cseq.endswith("BYE")) or m.method == "BYE")
        ):
            ended[m.call_id] = m.at
    return {cid: (ended[cid] - answered[cid]).total_seconds() for cid in answered if cid in ended}


@dataclass
class SippResult:
    returncode: int
    command: list[str]
    workdir: Path
    stdout: str
    stderr: str
    errors: str
    rtd_ms: dict[str, list[int]] = field(default_factory=dict)
    stats: dict[str, str] = field(default_factory=dict)
    messages: list[SipMessage] = field(default_factory=list)
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    @property
    def call_lengths_s(self) -> list[float]:
        """rtd ``call`` per completed call (ms resolution), in completion order."""
        return [ms / 1000.0 for ms in self.rtd_ms.get("call", [])]

    @property
    def setup_times_s(self) -> list[float]:
        return [ms / 1000.0 for ms in self.rtd_ms.get("setup", [])]

    @property
    def call_lengths_by_call_id(self) -> dict[str, float]:
        return call_lengths_from_messages(self.messages)

    def stat(self, name: str) -> int:
        """A cumulative counter from the ``-trace_stat`` file, e.g. ``SuccessfulCall(C)``."""
        try:
            return int(self.stats.get(name, "0"))
        except ValueError:
            return 0

    @property
    def successful_calls(self) -> int:
        return self.stat("SuccessfulCall(C)")

    @property
    def failed_calls(self) -> int:
        return self.stat("FailedCall(C)")

    def final_statuses(self) -> list[int]:
        """Final (>= 200) responses to INVITE received, one per call, in arrival order."""
        return list(self.final_status_by_call_id().values())

    def final_status_by_call_id(self) -> dict[str, int]:
        """Call-ID -> the first final (>= 200) response to its INVITE, in arrival order."""
        seen: dict[str, int] = {}
        for m in self.messages:
            st = m.status
            if m.direction == "received" and st is not None and st >= 200 and m.cseq.endswith("INVITE"):
                seen.setdefault(m.call_id, st)
        return seen

    def describe(self) -> str:
        return (
            f"sipp exit {self.returncode}{' (timed out)' if self.timed_out else ''}\n"
            f"command: {' '.join(self.command)}\n"
            f"successful={self.successful_calls} failed={self.failed_calls} rtd={self.rtd_ms}\n"
            f"errors:\n{self.errors[-3000:]}\nstderr:\n{self.stderr[-2000:]}\nscreen:\n{self.stdout[-3000:]}"
        )


def _parse_rtt(files: Sequence[Path]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for f in files:
        for row in csv.reader(f.read_text().splitlines()[1:], delimiter=";"):
            if len(row) >= 3 and row[1].strip():
                out.setdefault(row[2].strip(), []).append(int(float(row[1])))
    return out


def _parse_stats(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    rows = [r for r in csv.reader(path.read_text().splitlines(), delimiter=";") if r]
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


# ----------------------------------------------------------------------------- running


async def run_sipp(
    scenario: Path,
    target: str,
    *,
    workdir: Path,
    calls: int = 1,
    concurrency: int | None = None,
    rate: float | None = None,
    rate_period_ms: int | None = None,
    local_port: int | None = None,
    inf: Path | None = None,
    timeout_s: float = 60.0,
    trace_msg: bool = True,
    uas: bool = False,
    extra_args: Sequence[str] = (),
    started: asyncio.Event | None = None,
    local_ip: str = LOOPBACK,
) -> SippResult:
    """Run sipp in the foreground as an asyncio subprocess and collect its traces.

    ``target`` is ``host:port`` of the system under test (ignored for ``uas``).
    ``calls`` -> ``-m``, ``concurrency`` -> ``-l``, ``rate`` -> ``-r`` (calls per
    second, or per ``rate_period_ms``), ``local_port`` -> ``-p`` (default: a free
    port, never 5060). sipp exits by itself after ``calls`` calls, or after
    ``timeout_s`` (``-timeout``, counted as a failure); it is killed 10 s later if
    still running. ``started`` is set once the process has been spawned.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = local_port if local_port else free_udp_port(local_ip)
    media_port = free_port_range(3)
    stem = scenario.stem
    files = {
        "errors": workdir / f"{stem}.errors.log",
        "messages": workdir / f"{stem}.messages.log",
        "stats": workdir / f"{stem}.stats.csv",
        "stdout": workdir / f"{stem}.stdout",
        "stderr": workdir / f"{stem}.stderr",
    }
    for old in [*files.values(), *workdir.glob(f"{stem}_*_rtt.csv")]:
        old.unlink(missing_ok=True)
    cmd = [SIPP]
    if not uas:
        cmd.append(target)
    cmd += ["-sf", str(scenario), "-m", str(calls)]
    cmd += ["-i", local_ip, "-mi", local_ip, "-bind_local", "-p", str(port), "-mp", str(media_port)]
    cmd += ["-ci", LOOPBACK, "-cp", str(free_udp_port())]
    if concurrency is not None:
        cmd += ["-l", str(concurrency)]
    if rate is not None:
        cmd += ["-r", str(rate)]
        if rate_period_ms is not None:
            cmd += ["-rp", str(rate_period_ms)]
    if inf is not None:
        cmd += ["-inf", str(inf)]
    cmd += ["-nostdin", "-timeout", f"{timeout_s:g}s", "-timeout_error"]
    cmd += ["-trace_err", "-error_file", str(files["errors"])]
    cmd += ["-trace_rtt", "-rtt_freq", "1"]
    cmd += ["-trace_stat", "-stf", str(files["stats"]), "-fd", "1"]
    if trace_msg:
        cmd += ["-trace_msg", "-message_file", str(files["messages"])]
    cmd += list(extra_args)

    timed_out = False
    with files["stdout"].open("wb") as out, files["stderr"].open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            *cmd, cwd=workdir, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=err
        )
        if started is not None:
            started.set()
        who = f"sipp {'UAS' if uas else 'UAC'} {scenario.name} on port {port}"
        try:
            await asyncio.wait_for(proc.wait(), timeout_s + 10.0)
        except TimeoutError:
            timed_out = True
            # Soft exit first (finish calls, write traces), then SIGKILL; bounded either way.
            await stop_child(proc, who, first=signal.SIGUSR1)
        except BaseException:
            # Cancelled (e.g. a test that failed before awaiting its UAS task): it must not outlive the test.
            await stop_child(proc, who, first=None, grace=0)
            raise
        finally:
            close_transport(proc)
    assert proc.returncode is not None

    def read(p: Path) -> str:
        return p.read_text(errors="replace") if p.exists() else ""

    return SippResult(
        returncode=proc.returncode,
        command=cmd,
        workdir=workdir,
        stdout=read(files["stdout"]),
        stderr=read(files["stderr"]),
        errors=read(files["errors"]),
        rtd_ms=_parse_rtt(sorted(workdir.glob(f"{stem}_*_rtt.csv"))),
        stats=_parse_stats(files["stats"]),
        messages=parse_message_log(read(files["messages"])),
        timed_out=timed_out,
    )


async def sipp_calls(
    target: str,
    *,
    workdir: Path,
    rtp_ports: Sequence[int],
    callee: str | Sequence[str] = "service",
    caller: str | Sequence[str] = "sipp",
    hold_s: float = 5.0,
    expect_status: int = 200,
    hangup: Literal["local", "remote"] = "local",
    headers: Sequence[str] = (),
    payload_types: Sequence[int] = (0, 8),
    concurrency: int | None = None,
    rate: float | None = None,
    timeout_s: float | None = None,
    name: str = "uac",
    started: asyncio.Event | None = None,
    local_ip: str = LOOPBACK,
) -> SippResult:
    """One sipp run of ``len(rtp_ports)`` calls, call i offering RTP port ``rtp_ports[i]``.

    ``callee``/``caller`` (dialled user / From user) are one value for all calls or
    one per call. Concurrency defaults to all calls at once; rate to 10 per second.
    """
    n = len(rtp_ports)
    if n == 0:
        raise ValueError("need at least one RTP port")
    callees = [callee] * n if isinstance(callee, str) else list(callee)
    callers = [caller] * n if isinstance(caller, str) else list(caller)
    if len(callees) != n or len(callers) != n:
        raise ValueError("callee/caller lists must have one entry per call")
    scenario = write_scenario(
        workdir / f"{name}.xml",
        uac_scenario(
            hold_s=hold_s,
            expect_status=expect_status,
            hangup=hangup,
            headers=headers,
            payload_types=payload_types,
            name=name,
        ),
    )
    inf = write_injection_csv(
        workdir / f"{name}.csv", [(p, c, f) for p, c, f in zip(rtp_ports, callees, callers, strict=True)]
    )
    bound = timeout_s if timeout_s is not None else hold_s * (2 if hangup == "local" else 1) + 30.0
    return await run_sipp(
        scenario,
        target,
        workdir=workdir,
        calls=n,
        concurrency=concurrency if concurrency is not None else n,
        rate=rate,
        inf=inf,
        timeout_s=bound,
        started=started,
        local_ip=local_ip,
    )
