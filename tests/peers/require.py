"""Skip a peer test when its external tool is missing, except under CI=true, where it FAILS.

CI installs every peer (pjsua2 wheel, sipp, kamailio, espeak-ng); a green run
that silently skipped them would prove nothing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require(available: bool, what: str) -> None:
    if available:
        return
    if under_ci():
        pytest.fail(f"{what} is required when CI=true but is not installed", pytrace=False)
    pytest.skip(f"{what} not installed")


def require_pjsua2() -> None:
    require(importlib.util.find_spec("pjsua2") is not None, "pjsua2 (pip: pjsua2-python)")


def require_program(name: str, package: str | None = None) -> None:
    require(shutil.which(name) is not None, f"{name} (apt: {package or name})")


def require_sipp() -> None:
    require_program("sipp", "sip-tester")


def require_espeak() -> None:
    require_program("espeak-ng")
