"""``Decision``: what the identity service answers for one track (see ``agent/identity/service.py``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Decision"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one track decision: ``kind`` new/returning/regular (anonymous visitor), member, vip,
    staff, watchlist or optout; ``visitor_id`` the pseudonymous id it is about; ``score`` the cosine similarity of
    the match (None for a new face)."""

    kind: str
    visitor_id: str | None
    score: float | None
    gallery: str | None
    status: str | None = None  # new | returning | regular for visitors and members/VIPs with visits
    watchlist_kind: str | None = None
    alert_id: str | None = None
    visit_id: int | None = None

    @property
    def customer(self) -> bool:
        """Whether this person counts in customer figures (staff and opt-outs do not)."""
        return self.kind not in ("staff", "optout")
