"""Hypothesis settings for every property test, chosen once by the TRACT_HYPOTHESIS_PROFILE variable.

- `ci` (the default): each property runs the examples its test asks for;
- `dev`: a quarter of them, for a quick loop while editing;
- `deep`: ten times as many, for a long run before a release.

A test states what its property is worth at `ci` (`@examples(40)`); the
profile scales it. Deadlines are off everywhere (the machine is shared, and a
slow example is not a wrong one), and so are the health checks that only say
a strategy or a fixture is slow or large.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SCALES = {"dev": 0.25, "ci": 1.0, "deep": 10.0}
PROFILE = os.environ.get("TRACT_HYPOTHESIS_PROFILE", "ci")
if PROFILE not in SCALES:
    raise ValueError(f"TRACT_HYPOTHESIS_PROFILE must be one of {', '.join(SCALES)}, not {PROFILE!r}")

for name, scale in SCALES.items():
    settings.register_profile(
        name,
        max_examples=max(1, round(100 * scale)),
        deadline=None,
        database=None if name == "ci" else settings.default.database,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )
settings.load_profile(PROFILE)


def examples(count: int, *, steps: int | None = None) -> settings:
    """Settings for a property worth `count` examples (and, for a state machine, `steps` steps a run) at `ci`."""
    scaled = max(1, round(count * SCALES[PROFILE]))
    return settings(max_examples=scaled) if steps is None else settings(max_examples=scaled, stateful_step_count=steps)
