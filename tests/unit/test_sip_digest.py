"""Digest authentication of inbound INVITEs (RFC 2617 test arithmetic)."""

from __future__ import annotations

import hashlib

from dialplan.routing import Credentials
from dialplan.tenant import DigestCredentials
from telephony.sip_digest import DigestAuthority, ha1_for, parse_authorization

USERS = {"pbx": DigestCredentials("pbx", "hotline", ha1_for("pbx", "hotline", "s3cret"))}


def md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()


def answer(nonce: str, password: str = "s3cret", user: str = "pbx", uri: str = "sip:2002@127.0.0.1") -> str:
    ha1 = md5(f"{user}:hotline:{password}")
    ha2 = md5(f"INVITE:{uri}")
    response = md5(f"{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}")
    return (
        f'Digest username="{user}", realm="hotline", nonce="{nonce}", uri="{uri}", '
        f'response="{response}", algorithm=MD5, qop=auth, nc=00000001, cnonce="c0ffee"'
    )


def nonce_of(challenge: str) -> str:
    return challenge.split('nonce="', 1)[1].split('"', 1)[0]


def test_rfc2617_ha1() -> None:
    # RFC 2617 3.5: Mufasa / testrealm@host.com / Circle Of Life.
    assert ha1_for("Mufasa", "testrealm@host.com", "Circle Of Life") == "939e7578ed9e3c518a452acee763bce9"


def test_valid_response_names_the_user() -> None:
    auth = DigestAuthority(b"k" * 32)
    verdict = auth.verify("INVITE", answer(nonce_of(auth.challenge())), USERS)
    assert verdict.credentials is Credentials.VALID
    assert verdict.username == "pbx"


def test_wrong_password_and_unknown_user_are_both_invalid() -> None:
    auth = DigestAuthority(b"k" * 32)
    nonce = nonce_of(auth.challenge())
    assert auth.verify("INVITE", answer(nonce, password="nope"), USERS).credentials is Credentials.INVALID
    assert auth.verify("INVITE", answer(nonce, user="ghost"), USERS).credentials is Credentials.INVALID


def test_expired_or_foreign_nonce_with_the_right_password_is_challenged_again() -> None:
    clock = [1_000_000.0]
    auth = DigestAuthority(b"k" * 32, now=lambda: clock[0])
    nonce = nonce_of(auth.challenge())
    clock[0] += 301
    assert auth.verify("INVITE", answer(nonce), USERS).credentials is Credentials.ABSENT
    # A nonce from before a restart (another secret) is stale, not an attack.
    foreign = nonce_of(DigestAuthority(b"a" * 32).challenge())
    assert DigestAuthority(b"b" * 32).verify("INVITE", answer(foreign), USERS).credentials is Credentials.ABSENT


def test_forged_nonce_with_a_wrong_password_is_invalid() -> None:
    auth = DigestAuthority(b"k" * 32)
    forged = nonce_of(auth.challenge()).split(".")[0] + ".deadbeef"
    assert auth.verify("INVITE", answer(forged, password="guess"), USERS).credentials is Credentials.INVALID


def test_absent_and_non_digest_headers() -> None:
    auth = DigestAuthority()
    assert auth.verify("INVITE", None, USERS).credentials is Credentials.ABSENT
    assert auth.verify("INVITE", "Basic Zm9vOmJhcg==", USERS).credentials is Credentials.INVALID
    assert parse_authorization('Digest username="x"') is None
