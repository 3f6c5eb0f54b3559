"""StaffRegistry: marks, links across id switches (both directions), pruning."""

from __future__ import annotations

import numpy as np

from agent.analytics.staff import StaffRegistry


def test_marks_and_links_propagate_both_ways() -> None:
    staff = StaffRegistry()
    staff.link(2, 1)
    staff.link(3, 2)
    assert not staff.is_staff(1)
    staff.mark(3, "zone:counter")
    assert all(staff.is_staff(i) for i in (1, 2, 3)) and not staff.is_staff(4)
    staff.mark(10, "manual")
    staff.link(11, 10)
    assert staff.is_staff(11) and staff.reason(11) == "manual"
    assert staff.staff_mask(np.array([1, 4, 11])).tolist() == [True, False, True]
    assert len(staff) == 2


def test_linking_two_marked_groups_keeps_one_reason() -> None:
    staff = StaffRegistry()
    staff.mark(1, "a")
    staff.mark(2, "b")
    staff.link(2, 1)
    assert staff.reason(2) in {"a", "b"} and len(staff) == 1


def test_prune_forgets_groups_untouched_for_the_ttl() -> None:
    staff = StaffRegistry(ttl_s=100.0)
    staff.mark(1, "a", ts=0.0)
    staff.link(2, 1, ts=50.0)
    staff.mark(5, "b", ts=120.0)
    assert staff.prune(140.0) == 0  # group {1, 2} last touched at 50
    assert staff.prune(151.0) == 2
    assert not staff.is_staff(1) and not staff.is_staff(2) and staff.is_staff(5)


def test_empty_registry_mask() -> None:
    assert StaffRegistry().staff_mask([1, 2]).tolist() == [False, False]
