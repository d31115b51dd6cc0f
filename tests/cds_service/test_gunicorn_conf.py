"""The garbage-collector set-up `cart-cds serve` (and the benchmark) apply once the app is loaded."""

from __future__ import annotations

import gc

from cds_service.gunicorn_conf import tune_garbage_collection


def test_freezes_the_loaded_objects_and_keeps_the_thresholds():
    thresholds = gc.get_threshold()
    loaded = {"long-lived": [object() for _ in range(10)]}
    try:
        tune_garbage_collection()
        assert gc.get_threshold() == thresholds  # the hooks' own cyclic garbage is collected as before
        assert gc.get_freeze_count() > 0
        assert all(o is not loaded for o in gc.get_objects())  # frozen: out of the collector's view
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
