"""Live reporting without a broker: outcome parsing, the bounded deduplicated window, the `/stats`
figures and pixel health, all pure functions of records and `now`."""

from __future__ import annotations

import random

import orjson

from attribution.app.reports import (
    HOUR_MS,
    MINUTE_MS,
    Outcome,
    empty_health,
    health_of_buckets,
    parse_outcome,
    pixel_health,
    start_of_day,
    summarize,
    summarize_buckets,
)
from attribution.web.outcomes import OutcomeWindow
from attribution.web.reporting import Reporting

NOW = 1_795_000_000_000  # 2026-11-18T...Z
DAY = 86_400_000


def attributed(cid: str, pixel: int, at: int, kind: str = "post_click", **kw: object) -> Outcome:
    fields: dict[str, object] = {"value": None, "booked_revenue": None, "latency_ms": 1_000, **kw}
    return Outcome(cid, pixel, kind, True, at - 500, at, **fields)  # type: ignore[arg-type]


def unattributed(cid: str, pixel: int, at: int, reason: str = "no_eligible_touch") -> Outcome:
    return Outcome(cid, pixel, reason, False, at - 200, at)


# --- parsing ----------------------------------------------------------------------------------


def test_an_attributed_record_becomes_an_outcome_with_its_value_revenue_and_latency() -> None:
    raw = orjson.dumps(
        {
            "conversion_id": "v1",
            "pixel_id": 3,
            "conversion_timestamp": 5_000,
            "attribution": "post_view",
            "latency_ms": 4_000,
            "value": 2,
            "booked_revenue": 0.5,
        }
    )
    assert parse_outcome("attributed-conversions", raw, 9_000) == Outcome(
        "v1", 3, "post_view", True, 5_000, 9_000, 2.0, 0.5, 4_000
    )


def test_an_unattributed_record_becomes_an_outcome_named_by_its_reason() -> None:
    raw = b'{"conversion_id":"v2","pixel_id":4,"user_id":"u","conversion_timestamp":7,"reason":"pixel_paused"}'
    assert parse_outcome("unattributed-conversions", raw, 8) == Outcome("v2", 4, "pixel_paused", False, 7, 8)


def test_damaged_or_foreign_records_are_skipped_rather_than_raising() -> None:
    assert parse_outcome("attributed-conversions", b"{not json", 1) is None
    assert parse_outcome("attributed-conversions", b'{"conversion_id":"x"}', 1) is None
    assert (
        parse_outcome("unattributed-conversions", b'{"conversion_id":1,"pixel_id":1,"conversion_timestamp":1}', 1)
        is None
    )
    assert parse_outcome("attributed-conversions", None, 1) is None
    assert parse_outcome("piggyback-fires", b'{"conversion_id":"x","pixel_id":1,"conversion_timestamp":1}', 1) is None


# --- the window -------------------------------------------------------------------------------


def test_the_window_keeps_each_conversion_once_whatever_the_redeliveries() -> None:
    window = OutcomeWindow()
    assert window.add(attributed("v1", 1, NOW))
    assert not window.add(attributed("v1", 1, NOW + 5))
    assert [o.conversion_id for o in window] == ["v1"]
    assert (window.read, window.duplicates) == (2, 1)


def test_the_window_forgets_the_minutes_that_ended_more_than_a_day_ago() -> None:
    window = OutcomeWindow()
    window.add(unattributed("old", 1, NOW - DAY - 60_001))
    window.add(unattributed("boundary", 1, NOW - DAY - 1))  # in the minute the day starts in: kept...
    window.add(unattributed("new", 1, NOW - DAY + 1))
    assert window.prune(NOW) == 1
    assert [o.conversion_id for o in window] == ["boundary", "new"]
    day = summarize(window, NOW)["windows"]["day"]["totals"]
    assert day["conversions"] == 1  # ... but not counted: figures are exact to the millisecond


def test_the_window_never_holds_more_than_its_cap_dropping_the_oldest() -> None:
    window = OutcomeWindow(max_records=3)
    for i in range(5):
        window.add(unattributed(f"v{i}", 1, NOW + i))
    assert [o.conversion_id for o in window] == ["v2", "v3", "v4"]
    assert window.evicted == 2


# --- /stats -------------------------------------------------------------------------------------


def test_stats_count_outcomes_by_pixel_and_kind_over_the_hour_and_the_day() -> None:
    outcomes = [
        attributed("a", 1, NOW - 10_000, value=3.0, booked_revenue=2.5, latency_ms=1_000),
        attributed("b", 1, NOW - 2 * HOUR_MS, kind="post_view", value=1.0, latency_ms=9_000),
        unattributed("c", 2, NOW - 60_000, "repeat_limited"),
        unattributed("d", 2, NOW - 3 * HOUR_MS, "unknown_pixel"),
        unattributed("old", 2, NOW - DAY - 1),
    ]
    stats = summarize(outcomes, NOW)
    hour, day = stats["windows"]["hour"], stats["windows"]["day"]
    assert hour["totals"]["conversions"] == 2
    assert hour["totals"]["attributed"] == {"post_click": 1, "post_view": 0, "total": 1}
    assert hour["totals"]["unattributed"]["repeat_limited"] == 1
    assert hour["totals"]["unattributed"]["total"] == 1
    assert (hour["totals"]["value"], hour["totals"]["booked_revenue"]) == (3.0, 2.5)
    assert day["totals"]["conversions"] == 4
    assert day["pixels"]["1"]["attributed"] == {"post_click": 1, "post_view": 1, "total": 2}
    assert day["pixels"]["1"]["value"] == 4.0
    assert day["pixels"]["2"]["unattributed"]["unknown_pixel"] == 1
    assert set(hour["pixels"]) == {"1", "2"}
    assert (day["from"], day["to"]) == (NOW - DAY, NOW)


def test_stats_give_nearest_rank_percentiles_of_latency_and_delay() -> None:
    outcomes = [attributed(f"v{i}", 1, NOW - 1_000, latency_ms=i * 100) for i in range(1, 101)]
    totals = summarize(outcomes, NOW)["windows"]["hour"]["totals"]
    assert totals["latency_ms"] == {"p50": 5_000, "p90": 9_000, "p99": 9_900}
    assert totals["delay_ms"] == {"p50": 500, "p90": 500, "p99": 500}


def test_stats_of_nothing_are_zeros_and_no_percentiles() -> None:
    totals = summarize([], NOW)["windows"]["day"]["totals"]
    assert totals["conversions"] == 0
    assert totals["latency_ms"] is None
    assert totals["delay_ms"] is None


def test_the_series_counts_outcomes_per_minute_of_the_last_hour_in_order() -> None:
    outcomes = [
        attributed("now", 1, NOW),
        unattributed("a-minute-ago", 1, NOW - MINUTE_MS),
        unattributed("two-hours-ago", 1, NOW - 2 * HOUR_MS),
    ]
    series = summarize(outcomes, NOW)["series"]
    assert len(series["attributed"]) == len(series["unattributed"]) == 60
    assert series["attributed"][-1] == 1
    assert series["unattributed"][-2] == 1
    assert sum(series["unattributed"]) == 1
    assert series["from"] <= NOW - 59 * MINUTE_MS


def test_a_record_stamped_a_little_in_the_future_still_counts_as_recent() -> None:
    stats = summarize([attributed("skewed", 1, NOW + 2_000)], NOW)
    assert stats["windows"]["hour"]["totals"]["conversions"] == 1
    assert stats["series"]["attributed"][-1] == 1


# --- pixel health --------------------------------------------------------------------------------


def test_health_counts_loads_of_the_last_12_hours_and_names_the_latest_load() -> None:
    outcomes = [
        unattributed("recent", 7, NOW - 1_000),
        attributed("earlier", 7, NOW - 11 * HOUR_MS),
        unattributed("too-old", 7, NOW - 13 * HOUR_MS),
        unattributed("other-pixel", 8, NOW),
    ]
    health = pixel_health(outcomes, NOW)
    assert health[7]["loads_12h"] == 2
    assert health[7]["last_load_at"] == NOW - 1_000 - 200  # the conversion's own timestamp
    assert health[8]["loads_12h"] == 1


def test_health_counts_todays_attributed_conversions_since_midnight_utc() -> None:
    midnight = start_of_day(NOW)
    outcomes = [
        attributed("click-today", 7, midnight + 1),
        attributed("view-today", 7, midnight + 2, kind="post_view"),
        attributed("click-yesterday", 7, midnight - 1),
        unattributed("not-attributed", 7, midnight + 3),
    ]
    assert pixel_health(outcomes, NOW)[7]["attributed_today"] == {"post_click": 1, "post_view": 1}
    assert midnight % DAY == 0
    assert midnight <= NOW < midnight + DAY


def test_a_pixel_with_no_load_has_empty_health_figures() -> None:
    reporting = Reporting(OutcomeWindow(), lambda: NOW)
    assert (
        reporting.health(99)
        == empty_health()
        == {
            "loads_12h": 0,
            "last_load_at": None,
            "attributed_today": {"post_click": 0, "post_view": 0},
        }
    )


def test_reporting_recomputes_when_the_window_changes_even_within_the_same_second() -> None:
    window = OutcomeWindow()
    reporting = Reporting(window, lambda: NOW)
    assert reporting.stats()["windows"]["hour"]["totals"]["conversions"] == 0
    window.add(attributed("v1", 1, NOW))
    stats = reporting.stats()
    assert stats["windows"]["hour"]["totals"]["conversions"] == 1
    assert stats["source"] == {"outcomes": 1, "oldest": NOW, "duplicates": 0, "evicted": 0, "caught_up": True}
    assert reporting.health(1)["loads_12h"] == 1


def test_figures_from_cached_minute_tallies_equal_a_pass_over_every_record() -> None:
    rng = random.Random(7)
    window = OutcomeWindow(max_records=500)
    reporting = Reporting(window, lambda: NOW)
    kinds = ["post_click", "post_view", "no_eligible_touch", "repeat_limited"]
    for step in range(6):
        for i in range(300):
            at = NOW - rng.randint(-5_000, DAY + 120_000)
            kind = rng.choice(kinds)
            o = Outcome(f"{step}-{i}", rng.randint(1, 4), kind, kind.startswith("post"), at - 50, at, 1.5, 0.5, i)
            window.add(o)
        window.prune(NOW)
        cached = summarize_buckets(window.buckets(), NOW, reporting.tallies)
        assert cached == summarize(list(window), NOW)
        assert health_of_buckets(window.buckets(), NOW, reporting.tallies) == pixel_health(list(window), NOW)
    assert len(window) == 500


def test_a_window_boundary_inside_a_minute_is_exact_to_the_millisecond() -> None:
    cutoff = NOW - HOUR_MS
    outcomes = [unattributed("at", 1, cutoff), unattributed("after", 1, cutoff + 1), unattributed("late", 1, NOW)]
    assert summarize(outcomes, NOW)["windows"]["hour"]["totals"]["conversions"] == 2
