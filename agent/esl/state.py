"""Per-label delivery state in memory, written back to ``esl_labels`` in batches (see :mod:`agent.esl.schema`)."""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, fields

#: Delivery states: ``unlinked`` (no article), ``idle`` (shows what it should), ``due`` (new content to push),
#: ``pending`` (a gateway accepted
#: the content, waiting for the label), ``dropped`` (the gateway lost it: re-push), ``retry`` (the gateway
#: refused or did not answer: re-push after ``retry_at``), ``orphan`` (linked to a PLU the price book lacks),
#: ``render_error`` (the template cannot draw the article; fixed by a new template or article).
STATES = ("unlinked", "idle", "due", "pending", "dropped", "retry", "orphan", "render_error")


@dataclass(slots=True)
class LabelRow:
    """One ``esl_labels`` row."""

    mac: str
    gateway: str
    label_type: str
    plu: str | None = None
    template: str | None = None
    aisle: str | None = None
    shelf: int | None = None
    slot: int | None = None
    fridge_group: str | None = None
    desired_key: str | None = None
    desired_hash: str | None = None
    desired_since: float | None = None
    pushed_hash: str | None = None
    push_token: str | None = None
    pushed_at: float | None = None
    push_count: int = 0
    base_seen: float | None = None
    base_count: int | None = None
    confirmed_hash: str | None = None
    confirmed_at: float | None = None
    state: str = "unlinked"
    last_error: str | None = None
    retry_at: float | None = None
    last_seen: float | None = None
    shown_token: str | None = None
    update_count: int | None = None
    temperature_c: float | None = None
    battery_mv: int | None = None
    rssi: int | None = None
    updated_at: float = 0.0

    @property
    def position_text(self) -> str | None:
        if self.aisle is None:
            return None
        return f"aisle {self.aisle}, shelf {self.shelf or 1}, slot {self.slot or 1}"

    def brief(self) -> dict[str, object]:
        """What status and command results show of a label."""
        return {"label": self.mac, "plu": self.plu, "state": self.state, "position": self.position_text,
                "fridge_group": self.fridge_group, "last_seen": self.last_seen, "temperature_c": self.temperature_c,
                "battery_mv": self.battery_mv, "error": self.last_error}


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(LabelRow))
#: Columns owned by ``esl.relink`` (the reconciler only reads them, so its writes never undo a relink).
LINK_COLUMNS: tuple[str, ...] = ("label_type", "plu", "template", "aisle", "shelf", "slot", "fridge_group")
_INSERT = f"INSERT INTO esl_labels({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
_UPSERT = _INSERT + " ON CONFLICT(mac) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}" for c in COLUMNS if c != "mac")
_UPSERT_DELIVERY = _INSERT + " ON CONFLICT(mac) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}" for c in COLUMNS if c != "mac" and c not in LINK_COLUMNS)


def load_labels(conn: sqlite3.Connection, gateway: str | None = None) -> dict[str, LabelRow]:
    """Rows of one gateway (all with ``None``), by MAC."""
    sql = f"SELECT {', '.join(COLUMNS)} FROM esl_labels"
    rows = conn.execute(sql + " WHERE gateway = ?", (gateway,)) if gateway else conn.execute(sql)
    return {r[0]: LabelRow(*r) for r in rows}


def get_label(conn: sqlite3.Connection, mac: str) -> LabelRow | None:
    r = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM esl_labels WHERE mac = ?", (mac,)).fetchone()
    return LabelRow(*r) if r else None


def save_labels(conn: sqlite3.Connection, rows: list[LabelRow], *, links: bool = True) -> None:
    """Upsert ``rows`` (the caller owns the transaction); ``links=False`` leaves the link columns of existing
    rows alone (the reconciler's writes)."""
    conn.executemany(_UPSERT if links else _UPSERT_DELIVERY, [tuple(asdict(r).values()) for r in rows])


def labels_of_plu(conn: sqlite3.Connection, plu: str) -> list[LabelRow]:
    rows = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM esl_labels WHERE plu = ? ORDER BY mac", (plu,))
    return [LabelRow(*r) for r in rows]


def save_links(conn: sqlite3.Connection, rows: list[LabelRow]) -> None:
    """Write only the link/position columns of existing ``rows`` (``esl.relink``)."""
    conn.executemany(f"UPDATE esl_labels SET {', '.join(f'{c} = ?' for c in LINK_COLUMNS)}, updated_at = ?"
                     " WHERE mac = ?", [(*(getattr(r, c) for c in LINK_COLUMNS), r.updated_at, r.mac) for r in rows])
