"""What a process loaded at start-up is frozen out of the collector's full passes (project/gcfreeze.py)."""

from __future__ import annotations

import gc

from project.gcfreeze import freeze_startup_objects


def test_freezing_moves_every_surviving_object_out_of_the_collected_generations():
    gc.unfreeze()
    try:
        kept = [object() for _ in range(10)]  # noqa: F841  (alive while frozen)
        before = len(gc.get_objects())
        frozen = freeze_startup_objects()
        assert frozen == gc.get_freeze_count() > 0
        # The collector's generations now hold only what was made since.
        assert len(gc.get_objects()) < before // 10
        made_after = [[] for _ in range(5)]
        assert all(gc.is_tracked(x) for x in made_after)
        assert len(gc.get_objects()) >= len(made_after)
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0
