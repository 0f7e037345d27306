"""Tenant files the end-to-end tests run the bridge with."""

from __future__ import annotations

from pathlib import Path

TENANTS = Path(__file__).resolve().parents[1] / "fixtures" / "tenants"
# Every admission outcome has a number: see the file's header.
E2E_TENANT = TENANTS / "e2e.toml"
# The same, plus a line that only takes digest-authenticated calls.
DIGEST_TENANT = TENANTS / "digest.toml"
