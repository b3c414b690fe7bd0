"""The garbage collector tuned for a busy `flares serve` or `flares worker` while it runs."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Young collections every 50,000 allocations instead of 700: the objects of the requests in
# flight then rarely outlive one, and no longer fill the old generation, whose full passes
# under load came twice a second and held every request in flight (bench/load.py).
THRESHOLDS = (50_000, 20, 20)


@contextmanager
def tuned_gc() -> Iterator[None]:
    """Exempt what exists now (the app, its routes and models, the runtime: some 100,000
    objects, 100 ms to scan) from every full collection, and collect less often; both undone
    on exit."""
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
