"""`bench.targets` reads the stream harness's figures into the target table: each ratio against the
baseline of the same run, met only when it reaches its target."""

from __future__ import annotations

from typing import Any

from bench.targets import Row, stream_rows, table


def result(memory: float, rocksdb: float, pair: float, p99: float, missing: int = 0) -> dict[str, Any]:
    runs = {"passthrough-raw": 80_000.0, "worker-memory": memory, "worker-rocksdb": rocksdb, "worker-memory-x2": pair}
    return {
        "runs": [{"name": n, "events_per_s": v} for n, v in runs.items()],
        "latency": {"p99_ms": p99, "rate_events_per_s": memory / 2, "conversions_without_outcome": missing},
    }


def test_each_stream_ratio_is_taken_against_the_same_runs_baseline() -> None:
    rows = stream_rows(result(memory=16_000, rocksdb=24_000, pair=20_000, p99=4_500))

    assert [r.met for r in rows] == [False, True, False, False]
    assert rows[0].figure.startswith("0.200 ")
    assert rows[1].figure.startswith("0.300 ")
    assert rows[2].figure == "4,500 ms at 8,000 events/s"
    assert rows[3].figure.startswith("1.25x")


def test_targets_reached_are_met_and_a_conversion_without_outcome_fails_the_latency_target() -> None:
    met = stream_rows(result(memory=40_000, rocksdb=20_000, pair=64_000, p99=200))
    missing = stream_rows(result(memory=40_000, rocksdb=20_000, pair=64_000, p99=200, missing=1))

    assert all(r.met for r in met)
    assert not missing[2].met


def test_the_table_has_a_line_per_measure() -> None:
    text = table([Row("a", ">= 1", "2", True), Row("b", "< 3", "4", False)])

    assert text.splitlines()[2:] == ["| a | >= 1 | 2 | yes |", "| b | < 3 | 4 | no |"]


def test_a_contender_run_in_rounds_keeps_its_median_round_and_lists_every_rate() -> None:
    from bench.stream.driver import median
    from bench.stream.run import RunResult

    def run(wall_s: float) -> RunResult:
        return RunResult("worker-memory", 150_000, wall_s, 6.0, 0, 0.5, 0.5)

    chosen = median([run(6.0), run(10.0), run(5.0)])

    assert chosen.rate == 150_000 / 6.0
    assert chosen.extra["rates"] == [25_000.0, 15_000.0, 30_000.0]
    assert "rates" not in median([run(6.0)]).extra
