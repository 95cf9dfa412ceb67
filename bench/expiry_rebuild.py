"""What re-indexing expiries costs a recovering worker: `StateExpiry.rebuild` over N encoded states.

Builds N typical states (a few touches, a processed id), encodes them as the users table holds
them, then times `Processor.rebuild` (held conversions and expiries) and the expiry part alone.

    .venv/bin/python bench/expiry_rebuild.py --users 200000
"""

from __future__ import annotations

import argparse
import time

from attribution.contract.state_codec import encode_state
from attribution.domain import Config, Touch, UserState
from attribution.settings import Settings
from attribution.streaming.processor import Processor

T0 = 1_700_000_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200_000)
    args = parser.parse_args()
    table: dict[bytes, bytes] = {}
    for i in range(args.users):
        uid = f"user-{i:08d}"
        touches = tuple(
            Touch("impression", f"{uid}-t{j}", uid, T0 + i + j, 10, 100 + j, 1, f"auction-{i}-{j}") for j in range(3)
        )
        table[uid.encode()] = encode_state(UserState(touches, (), ((f"{uid}-c", T0 + i),), T0 + i), T0 + i, i % 4)
    config = Config()
    processor = Processor(Settings(), {}, lambda: config)

    started = time.perf_counter()
    processor.rebuild(lambda: iter(table.items()))
    total = time.perf_counter() - started
    started = time.perf_counter()
    processor.expiry.rebuild(iter(table.items()))
    expiry = time.perf_counter() - started
    mb = sum(len(v) for v in table.values()) / 1e6
    print(
        f"{args.users:,} users ({mb:.0f} MB of state): Processor.rebuild {total:.2f} s, of which expiries {expiry:.2f} s"
    )


if __name__ == "__main__":
    main()
