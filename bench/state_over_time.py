"""State store size over simulated days: users and bytes kept, with expired users deleted.

Synthetic traffic is replayed day by day through the engine (`domain.step`) with the same expiry
deletion as the stream and `replay` (`attribution.expiry_index.ExpiryIndex`, horizon = the current
event's timestamp), and the store's size is printed at the end of every simulated day: the users
kept, their encoded state bytes (the state table's value format), and the users a store that never
deletes would hold.

Traffic: every day `--new-users` users arrive; each is active for 1 to 7 days (a few impressions a
day, sometimes a click, sometimes a conversion), and a fixed set of `--loyal` users is active every
day. Six pixels over three advertisers with default windows (1 day view, 14 days click), repeat
rules null (one per user), 0 and 60 minutes; `--longest-windows` turns expiration off on one of
them, so touches are kept 30 / 90 days. Deterministic for a seed.

    .venv/bin/python bench/state_over_time.py --days 120 [--longest-windows]

Users who had a conversion counted by a "one per user" pixel are kept for the 90-day repeat
retention, but once they are quiet only that counter is kept (`expiry_index.due_state` compacts
them, as the stream and `replay` do); everything else goes once its touches pass their retention.
So the users kept grow until day 90, their bytes mostly stop growing once the first users' touches
and dedup ids expire, and the store is flat from day 90 on, while a store that never deletes
keeps growing.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Iterator

from attribution.contract.state_codec import encode_state
from attribution.domain import EMPTY, Config, Conversion, Limits, LineItem, Pixel, PixelLink, Touch, UserState, step
from attribution.domain.config import DAY_MS
from attribution.expiry_index import ExpiryIndex, expire_due, first_look

T0 = 1_700_000_000_000
ADVERTISERS = (1, 2, 3)


def configuration(longest: bool) -> Config:
    """Six pixels, default windows; with `longest`, pixel 5 has expiration off (30 / 90 days)."""
    off = {"post_view_expire_mins": None, "post_click_expire_mins": None} if longest else {}
    pixels = [
        Pixel(1, 1, "purchase", min_minutes_per_conv=None),
        Pixel(2, 1, "item view", min_minutes_per_conv=0),
        Pixel(3, 2, "lead", min_minutes_per_conv=60),
        Pixel(4, 2, "landing", min_minutes_per_conv=0),
        Pixel(5, 3, "checkout", min_minutes_per_conv=None, **off),  # type: ignore[arg-type]
        Pixel(6, 3, "cart", min_minutes_per_conv=0),
    ]
    line_items = [
        LineItem(10 * a + i, a, pixels=tuple(PixelLink(p.id) for p in pixels if p.advertiser_id == a))
        for a in ADVERTISERS
        for i in range(4)
    ]
    return Config.of(pixels, line_items)


def day_events(rng: random.Random, day: int, users: list[tuple[str, int, int]]) -> Iterator[Touch | Conversion]:
    """One simulated day's events of the active users, in timestamp order."""
    start = T0 + day * DAY_MS
    events: list[Touch | Conversion] = []
    n = 0
    for uid, first, last in users:
        if not first <= day <= last:
            continue
        for _ in range(rng.randint(1, 6)):
            n += 1
            ts = start + rng.randrange(DAY_MS)
            a = rng.choice(ADVERTISERS)
            li = 10 * a + rng.randrange(4)
            kind = "click" if rng.random() < 0.1 else "impression"
            events.append(Touch(kind, f"t{day}-{n}", uid, ts, a, li, 1, f"auction-{day}-{n}"))  # type: ignore[arg-type]
        if rng.random() < 0.3:
            n += 1
            events.append(Conversion(f"c{day}-{n}", rng.randint(1, 6), uid, start + rng.randrange(DAY_MS)))
    events.sort(key=lambda e: (e.timestamp, isinstance(e, Conversion)))
    return iter(events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--new-users", type=int, default=1000, help="users arriving per day")
    parser.add_argument("--loyal", type=int, default=200, help="users active every day")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--longest-windows", action="store_true", help="one pixel with expiration off")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    config, limits = configuration(args.longest_windows), Limits()
    population: list[tuple[str, int, int]] = [(f"loyal-{i}", 0, args.days) for i in range(args.loyal)]
    store: dict[str, UserState] = {}
    index: ExpiryIndex[str] = ExpiryIndex()
    retention = config.retention
    ever: set[str] = set()
    deleted = events = 0
    started = time.perf_counter()

    print("| day | events | users kept | state bytes | bytes/user | users ever seen (no deletion) | deleted |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for day in range(args.days):
        population += [(f"u{day}-{i}", day, day + rng.randint(0, 6)) for i in range(args.new_users)]
        population = [p for p in population if p[2] >= day]  # users gone for good
        for event in day_events(rng, day, population):
            events += 1
            uid = event.user_id
            before = store.get(uid)
            state, _ = step(EMPTY if before is None else before, event, config, limits)
            store[uid] = state
            ever.add(uid)
            if before is None:
                index.add(0, uid, first_look(state, retention, limits))
            deleted += len(expire_due(index, store, event.timestamp, retention, limits))  # as `replay` does
        size = sum(len(encode_state(s)) for s in store.values())
        print(
            f"| {day + 1} | {events:,} | {len(store):,} | {size:,} | {size // max(1, len(store)):,} "
            f"| {len(ever):,} | {deleted:,} |",
            flush=True,
        )
    print(f"\n{events:,} events in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
