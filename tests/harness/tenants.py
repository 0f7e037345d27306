"""Tenant files the end-to-end tests run the bridge with."""

from __future__ import annotations

from pathlib import Path

TENANTS = Path(__file__).resolve().parents[1] / "fixtures" / "tenants"
# Every admission outcome has a number: see the file's header.
E2E_TENANT = TENANTS / "e2e.toml"
# The same, plus a line that only takes digest-authenticated calls.
DIGEST_TENANT = TENANTS / "digest.toml"

# Supervisors to append to softphone.toml: sam supervises acme and globex, gus only globex.
# Both sign in with "alice-demo" (the same argon2 hash as alice's).
SUPERVISOR_PASSWORD = "alice-demo"
_SUPERVISOR_HASH = "$argon2id$v=19$m=65536,t=3,p=4$evHPEdnDksQN//VzfmSbzw$02ZtIsxcCKJSfkV9gp9xgvL+8mxQnRbJteVAiNE2Fw0"
SAM_AND_GUS = f"""
[[supervisors]]
login = "sam"
name = "Sam Lee"
password_hash = "{_SUPERVISOR_HASH}"
clients = ["acme", "globex"]

[[supervisors]]
login = "gus"
name = "Gus Roy"
password_hash = "{_SUPERVISOR_HASH}"
clients = ["globex"]
"""
