"""What the policy says about one request: a value, never an exception."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["ALLOW", "HIDDEN", "Decision", "Outcome"]

Outcome = Literal["allow", "deny", "hidden", "shadow-deny"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one request, and the facts a reviewer (or a model) needs to understand it.

    `rule` is the `FILE:LINE:COL` of the rule that decided; `argument` and `constraint` name what
    failed for a denial.
    """

    outcome: Outcome
    reason: str = ""
    scope: str | None = None
    rule: str | None = None
    argument: str | None = None
    constraint: str | None = None

    @property
    def forwarded(self) -> bool:
        """Whether the request goes to the upstream (allowed, or only denied in shadow mode)."""
        return self.outcome == "allow" or self.outcome == "shadow-deny"


ALLOW: Final = Decision("allow")
HIDDEN: Final = Decision("hidden", reason="not granted")
