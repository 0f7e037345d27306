"""Run a sipvicious tool with every socket bound to one loopback address.

sipvicious 0.3.8's svwar and svcrack accept -b/--bindingip but never pass
it on, so they always send from the address the kernel picks (127.0.0.1
towards 127.0.0.1). Attack tests give each tool its own address, so one
ban doesn't hide the next tool's behaviour: this binds every socket there.

    python sipvicious_from.py 127.0.0.66 svwar -m INVITE -e 1000-1100 -p 5060 127.0.0.1
"""

from __future__ import annotations

import importlib
import socket
import sys
from typing import Any


def main() -> None:
    address, tool, *args = sys.argv[1:]
    if not address.startswith("127."):
        raise SystemExit("attackers stay on loopback")
    original = socket.socket.bind

    def bind(self: socket.socket, where: Any) -> None:
        host, port = where[0], where[1]
        original(self, (address if host in ("", "0.0.0.0") else host, port))

    socket.socket.bind = bind  # type: ignore[method-assign]
    sys.argv = [f"sipvicious_{tool}", *args]
    importlib.import_module(f"sipvicious.{tool}").main()


if __name__ == "__main__":
    main()
