"""Signed auction tokens: what `mint` writes `verify` reads back, and nothing else verifies."""

from __future__ import annotations

import base64

import pytest

from attribution.errors import AttributionError, InvalidToken, RecordError
from attribution.tokens import MAX_TOKEN_CHARS, TokenClaims, inspect, mint, verify

SECRET = "a-secret-of-at-least-32-bytes-000"
OTHER = "another-secret-of-32-bytes-or-more"
KEYS = {"k1": SECRET}


def token(user: str = "user-1", auction: str = "auction-1", secret: str = SECRET, key_id: str = "k1") -> str:
    return mint(user, auction, secret=secret, key_id=key_id)


def raw_of(tok: str) -> bytes:
    return base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4))


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_a_minted_token_verifies_to_its_user_auction_and_key_id() -> None:
    assert verify(token(), KEYS) == TokenClaims("user-1", "auction-1", "k1")


def test_a_token_is_url_safe_base64_without_padding() -> None:
    tok = token("ü" * 128, "a" * 128)

    assert set(tok) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert verify(tok, KEYS).user_id == "ü" * 128


def test_the_longest_token_mint_can_make_is_within_the_length_limit() -> None:
    assert len(token("\U0001f600" * 128, "\U0001f600" * 128, key_id="k" * 16)) <= MAX_TOKEN_CHARS


def test_minting_is_deterministic_and_depends_on_every_field() -> None:
    assert token() == token()
    assert len({token(), token(user="user-2"), token(auction="auction-2"), token(key_id="k2")}) == 4


def test_the_error_is_a_record_error_with_the_invalid_token_code_naming_the_field() -> None:
    with pytest.raises(InvalidToken) as info:
        verify("x", KEYS)

    assert isinstance(info.value, RecordError)
    assert isinstance(info.value, AttributionError)
    assert info.value.code == "invalid_token"
    assert info.value.field == "token"
    assert info.value.message.startswith("token: ")


def test_a_token_signed_with_any_accepted_key_verifies_during_a_rotation() -> None:
    keys = {"k1": SECRET, "k2": OTHER}

    assert verify(token(), keys).key_id == "k1"
    assert verify(token(secret=OTHER, key_id="k2"), keys).key_id == "k2"


def swapped_fields() -> str:
    """The user and the auction swapped in the payload, the MAC kept."""
    raw = raw_of(token("user-1", "auction-1"))
    payload, mac = raw[:-32], raw[-32:]
    swapped = payload.replace(b"\x00\x06user-1\x00\x09auction-1", b"\x00\x09auction-1\x00\x06user-1")
    assert swapped != payload
    return b64(swapped + mac)


def altered_byte() -> str:
    raw = bytearray(raw_of(token()))
    raw[8] ^= 0x01
    return b64(bytes(raw))


def altered_mac() -> str:
    raw = bytearray(raw_of(token()))
    raw[-1] ^= 0x80
    return b64(bytes(raw))


def wrong_version() -> str:
    raw = bytearray(raw_of(token()))
    raw[0] = 2
    return b64(bytes(raw))


def trailing_bytes() -> str:
    raw = raw_of(token())
    return b64(raw[:-32] + b"\x00" + raw[-32:])


HOSTILE = {
    "empty": "",
    "huge": "A" * (MAX_TOKEN_CHARS + 1),
    "very huge": "A" * 10_000_000,
    "padded": token() + "=" * (-len(token()) % 4 or 4),
    "standard base64 alphabet": token().replace("-", "+").replace("_", "/") + "+/",
    "non-ascii": token()[:-1] + "é",
    "whitespace": token() + " ",
    "newline inside": token()[:10] + "\n" + token()[10:],
    "impossible length": token()[:-2] if len(token()) % 4 == 3 else token() + "AAAAA"[: (1 - len(token())) % 4],
    "truncated": token()[:-4],
    "truncated to the payload": b64(raw_of(token())[:-32]),
    "one character": "A",
    "other key": token(secret=OTHER),
    "unknown key id": token(secret=SECRET, key_id="k9"),
    "swapped fields": swapped_fields(),
    "altered payload byte": altered_byte(),
    "altered mac": altered_mac(),
    "wrong version": wrong_version(),
    "trailing bytes": trailing_bytes(),
    "all zero": b64(bytes(80)),
    "not a string": 12345,
    "none": None,
}


@pytest.mark.parametrize("bad", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_hostile_token_is_refused_with_invalid_token_never_showing_the_secret(bad: object) -> None:
    with pytest.raises(InvalidToken) as info:
        verify(bad, {"k1": SECRET, "k2": OTHER[::-1]})

    assert info.value.code == "invalid_token"
    assert SECRET not in str(info.value)
    assert OTHER[::-1] not in str(info.value)
    assert len(str(info.value)) < 200  # never echoes a huge token back


def test_a_non_canonical_encoding_of_a_valid_token_is_refused() -> None:
    tok = token()
    raw = raw_of(tok)
    # Set unused low bits of the last character: decodes to the same bytes, is not what mint wrote.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(tok[-1])
    variants = [tok[:-1] + alphabet[last ^ bit] for bit in (1, 2, 3)]
    stray = [v for v in variants if raw_of(v) == raw]
    assert stray, "the token length leaves spare bits"  # 32-byte MAC: 2 or 4 spare bits
    for variant in stray:
        with pytest.raises(InvalidToken, match="not canonical"):
            verify(variant, KEYS)


def test_a_token_is_refused_when_no_key_is_configured() -> None:
    with pytest.raises(InvalidToken, match="unknown key id 'k1'"):
        verify(token(), {})


def test_minting_refuses_a_short_secret_and_ids_out_of_bounds_without_showing_the_secret() -> None:
    with pytest.raises(InvalidToken, match="at least 32 bytes") as info:
        mint("u", "a", secret="short-secret", key_id="k1")
    assert "short-secret" not in str(info.value)
    for user, auction, key_id in (("", "a", "k1"), ("u", "", "k1"), ("u" * 129, "a", "k1"), ("u", "a", "k:1")):
        with pytest.raises(InvalidToken):
            mint(user, auction, secret=SECRET, key_id=key_id)


def test_inspect_reads_the_claims_without_the_key_and_none_for_garbage() -> None:
    assert inspect(token()) == TokenClaims("user-1", "auction-1", "k1")
    assert inspect(token(secret=OTHER, key_id="zz")) == TokenClaims("user-1", "auction-1", "zz")
    assert inspect("") is None
    assert inspect("!!!") is None
