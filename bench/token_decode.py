"""What a server-side conversion costs to decode: a pixel conversion against one with a token.

Times `contract.decode` (parse, fast-path validation, and for a token its verification: base64url
decoding, parsing and one HMAC-SHA256) on typical records with 36-character ids, best of 5.

    .venv/bin/python bench/token_decode.py --n 200000
"""

from __future__ import annotations

import argparse
import timeit

import orjson

from attribution.contract import decode
from attribution.tokens import mint

SECRET = "s" * 32
USER = "u-0123456789abcdef0123456789abcdef00"
AUCTION = "a-0123456789abcdef0123456789abcdef00"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args()
    base = {"event_id": "c-0123456789abcdef0123456789abcdef00", "pixel_id": 7, "timestamp": 1_700_000_000_000}
    pixel = orjson.dumps({**base, "user_id": USER, "order_id": "ORD-1"})
    server = orjson.dumps({**base, "token": mint(USER, AUCTION, secret=SECRET, key_id="k1"), "order_id": "ORD-1"})
    keys = {"k1": SECRET}
    for name, raw in (("pixel conversion", pixel), ("server-side conversion", server)):
        best = min(timeit.repeat(lambda raw=raw: decode("conversions", raw, keys), number=args.n, repeat=5))
        print(f"{name:24} {best / args.n * 1e6:6.2f} us per decode ({len(raw)} bytes)")


if __name__ == "__main__":
    main()
