"""Signed auction tokens for server-side conversions: mint and verify. Pure: no clock, no I/O.

The ad server mints a token when it serves an impression or a click and fills it into the
creative; the advertiser's server sends it back with a conversion that has no cookie. The token
names the user and the auction, and is signed so that nobody without the secret can forge or
alter one.

Format (version 1): base64url without padding of `payload || mac`, where

    payload = 0x01 | len(key_id) (1 byte) | key_id | len(user_id) (2 bytes, big-endian) | user_id
              | len(auction_id) (2 bytes) | auction_id          (ids in UTF-8)
    mac     = HMAC-SHA256(secret of key_id, b"attribution-token\\x00" + payload)   (32 bytes)

Every field is length-prefixed, so no two different (key id, user, auction) share a payload;
the MAC covers the version and the key id too. A key id is 1 to 16 characters of `[A-Za-z0-9_-]`;
user and auction ids 1 to 128 characters, like the records that carry them.

Verification refuses, before any decoding, a token that is not a string of 1 to
`MAX_TOKEN_CHARS` base64url characters; then anything that does not decode canonically (padding,
stray bits), a layout that does not parse exactly, an unknown version or key id, and a MAC that
differs (compared with `hmac.compare_digest`, in constant time). No message ever carries a secret.

Rotation: `verify` takes every key currently accepted (key id -> secret); tokens name the key
they were signed with, so a new key can be added, made the minting key, and the old one removed
once its tokens have aged past the longest attribution window.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

from attribution.errors import InvalidToken

VERSION = 1
#: The shortest secret accepted (bytes of its UTF-8 text): HMAC-SHA256 wants 256 bits of key.
MIN_SECRET_BYTES = 32
MAX_KEY_ID_CHARS = 16
MAX_ID_CHARS = 128
_MAC_BYTES = 32
_CONTEXT = b"attribution-token\x00"
#: The longest payload: ids of 128 characters of 4 UTF-8 bytes each.
_MAX_RAW_BYTES = 1 + 1 + MAX_KEY_ID_CHARS + 2 + 4 * MAX_ID_CHARS + 2 + 4 * MAX_ID_CHARS + _MAC_BYTES
#: The longest token `mint` can produce; anything longer is refused before any work.
MAX_TOKEN_CHARS = (_MAX_RAW_BYTES * 4 + 2) // 3
_MIN_RAW_BYTES = 1 + 1 + 1 + 2 + 1 + 2 + 1 + _MAC_BYTES
_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")
KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,16}")


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified token says."""

    user_id: str
    auction_id: str
    key_id: str


def mint(user_id: str, auction_id: str, *, secret: str | bytes, key_id: str) -> str:
    """A token naming `user_id` and `auction_id`, signed with `secret` under `key_id`.

    Raises InvalidToken for ids or a key id out of bounds or a secret shorter than
    `MIN_SECRET_BYTES` (the message never shows the secret)."""
    key = _key_bytes(secret)
    if not KEY_ID.fullmatch(key_id):
        raise InvalidToken(f"key id: 1 to {MAX_KEY_ID_CHARS} characters of A-Z, a-z, 0-9, _ and -", "key_id")
    for name, text in (("user_id", user_id), ("auction_id", auction_id)):
        if not isinstance(text, str) or not 1 <= len(text) <= MAX_ID_CHARS:
            raise InvalidToken(f"{name}: 1 to {MAX_ID_CHARS} characters", name)
    user, auction, kid = user_id.encode(), auction_id.encode(), key_id.encode()
    payload = b"".join(
        (
            bytes((VERSION, len(kid))),
            kid,
            len(user).to_bytes(2, "big"),
            user,
            len(auction).to_bytes(2, "big"),
            auction,
        )
    )
    return base64.urlsafe_b64encode(payload + _mac(key, payload)).rstrip(b"=").decode("ascii")


def verify(token: object, keys: Mapping[str, str | bytes]) -> TokenClaims:
    """The claims of a token signed with one of `keys` (key id -> secret), or InvalidToken."""
    if not isinstance(token, str) or not token:
        raise _bad("empty or not a string")
    if len(token) > MAX_TOKEN_CHARS:
        raise _bad(f"longer than {MAX_TOKEN_CHARS} characters")
    if not _ALPHABET.fullmatch(token) or len(token) % 4 == 1:
        raise _bad("not unpadded base64url")
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
        raise _bad("not canonical base64url")
    if len(raw) < _MIN_RAW_BYTES:
        raise _bad("truncated")
    payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    if payload[0] != VERSION:
        raise _bad(f"unknown version {payload[0]}")
    kid, rest = _take(payload[1:], 1)
    user, rest = _take(rest, 2)
    auction, rest = _take(rest, 2)
    if rest:
        raise _bad("malformed")
    key_id = kid.decode("ascii", "replace")
    if not KEY_ID.fullmatch(key_id):
        raise _bad("malformed key id")
    secret = keys.get(key_id)
    if secret is None:
        raise _bad(f"signed with unknown key id {key_id!r}")
    if not hmac.compare_digest(mac, _mac(_key_bytes(secret), payload)):
        raise _bad("signature does not verify")
    try:
        claims = TokenClaims(user.decode("utf-8"), auction.decode("utf-8"), key_id)
    except UnicodeDecodeError:
        raise _bad("malformed ids") from None
    if not (1 <= len(claims.user_id) <= MAX_ID_CHARS and 1 <= len(claims.auction_id) <= MAX_ID_CHARS):
        raise _bad("ids out of bounds")
    return claims


def inspect(token: str) -> TokenClaims | None:
    """What a token claims, without checking its signature (for `attribution tokens inspect`);
    None when it does not even parse."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        if not raw or raw[0] != VERSION:
            return None
        kid, rest = _take(raw[1:-_MAC_BYTES], 1)
        user, rest = _take(rest, 2)
        auction, rest = _take(rest, 2)
        if rest:
            return None
        return TokenClaims(user.decode("utf-8"), auction.decode("utf-8"), kid.decode("ascii"))
    except (ValueError, InvalidToken):
        return None


def _take(data: bytes, width: int) -> tuple[bytes, bytes]:
    if len(data) < width:
        raise _bad("truncated")
    n = int.from_bytes(data[:width], "big")
    if n == 0 or len(data) < width + n:
        raise _bad("truncated")
    return data[width : width + n], data[width + n :]


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, _CONTEXT + payload, hashlib.sha256).digest()


def _key_bytes(secret: str | bytes) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(key) < MIN_SECRET_BYTES:
        # Never show the secret, nor its length: only the rule.
        raise InvalidToken(f"token secret: at least {MIN_SECRET_BYTES} bytes are required", "secret")
    return key


def _bad(why: str) -> InvalidToken:
    return InvalidToken(f"token: {why}", "token")
