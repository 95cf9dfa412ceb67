"""The pure attribution engine: frozen dataclasses and functions, no I/O, no clock.

`step(state, event, config, limits) -> (state, outputs)` applies every rule of docs/design.md, Attribution rules.
"""

from attribution.domain.config import (
    Config,
    LineItem,
    PiggybackPixel,
    Pixel,
    PixelLink,
    Status,
)
from attribution.domain.engine import DEFAULT_LIMITS, judge, release, step
from attribution.domain.outputs import (
    REASONS,
    AttributedConversion,
    Outcome,
    Output,
    PiggybackFire,
    Reason,
    UnattributedConversion,
)
from attribution.domain.records import TOUCH_IMP_TYPES, Conversion, Event, Touch
from attribution.domain.state import EMPTY, Forgotten, Limits, UserState, expires_at, hold

__all__ = [
    "DEFAULT_LIMITS",
    "EMPTY",
    "REASONS",
    "TOUCH_IMP_TYPES",
    "AttributedConversion",
    "Config",
    "Conversion",
    "Event",
    "Forgotten",
    "Limits",
    "LineItem",
    "Outcome",
    "Output",
    "PiggybackFire",
    "PiggybackPixel",
    "Pixel",
    "PixelLink",
    "Reason",
    "Status",
    "Touch",
    "UnattributedConversion",
    "UserState",
    "expires_at",
    "hold",
    "judge",
    "release",
    "step",
]
