"""The garbage-collector set-up `cart-cds serve` (and the benchmark) apply once the app is loaded."""

from __future__ import annotations

import gc

from cds_service.gunicorn_conf import YOUNG_THRESHOLD, tune_garbage_collection


def test_freezes_the_loaded_objects_and_raises_only_the_young_threshold():
    thresholds = gc.get_threshold()
    loaded = {"long-lived": [object() for _ in range(10)]}
    try:
        tune_garbage_collection()
        # a hook's cyclic garbage still goes at the next young collection; the older generations as before
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *thresholds[1:])
        assert gc.get_freeze_count() > 0
        assert all(o is not loaded for o in gc.get_objects())  # frozen: out of the collector's view
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
