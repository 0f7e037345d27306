"""The one error type configuration code raises."""

from __future__ import annotations

from collections.abc import Sequence


class ConfigError(Exception):
    """Configuration that can't be used. `problems` are complete, printable lines."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))
