"""What a waiting caller is told: the words of queue announcements.

Pure text. Whoever plays an announcement turns these words into speech.
"""

from __future__ import annotations

from dialplan.wait_estimate import announce_rounding

_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")


def position_prompt(position: int, wait_s: float | None) -> str:
    """ "You are second in line. Your estimated wait is about 2 minutes."

    Ordinals read better than "caller number 2" up to ten; past that the
    number is said. Without an estimate (nobody serving yet) the wait is not
    mentioned rather than guessed.
    """
    if position < 1:
        raise ValueError(f"position is 1-based, got {position!r}")
    place = (
        f"You are {_ORDINALS[position - 1]} in line."
        if position <= len(_ORDINALS)
        else (f"There are {position - 1} callers ahead of you.")
    )
    if wait_s is None:
        return place
    minutes = announce_rounding(wait_s)
    return f"{place} Your estimated wait is about {minutes} minute{'s' if minutes > 1 else ''}."
