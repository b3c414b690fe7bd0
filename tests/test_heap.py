"""The garbage collector tuned for serving, and put back as it was."""

from __future__ import annotations

import gc

from aggregator.heap import THRESHOLDS, tuned_gc


class Held:
    """An object the collector tracks."""


def test_the_collector_is_tuned_while_serving_and_put_back_after() -> None:
    before = gc.get_threshold()
    assert before != THRESHOLDS
    held = Held()
    with tuned_gc():
        assert gc.get_threshold() == THRESHOLDS
        # What existed on entry is out of the collector's reach, so its passes skip it.
        assert gc.get_freeze_count() > 0
        assert not any(o is held for o in gc.get_objects())
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
    assert any(o is held for o in gc.get_objects())
