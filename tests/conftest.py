"""Shared test setup: `tests/` is on sys.path (for `helpers`) and Hypothesis profiles.

The `ci` profile (the default) keeps the property tier fast: at most 150 examples per property,
no deadline (the first example pays for schema compilation), failing examples printed with their
reproduction blob. `HYPOTHESIS_PROFILE=thorough` runs 2000 examples per property.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("thorough", parent=settings.get_profile("ci"), max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
