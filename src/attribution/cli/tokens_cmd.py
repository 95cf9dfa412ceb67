"""`attribution tokens mint|inspect`: the signed auction tokens of server-side conversions.

The secret comes from the environment (ATTRIBUTION_TOKEN_SECRET, under ATTRIBUTION_TOKEN_KEY_ID;
ATTRIBUTION_TOKEN_KEYS adds keys accepted during a rotation), never from a flag: command lines
end up in shell histories and process lists.
"""

from __future__ import annotations

import click

from attribution.cli.common import settings_from
from attribution.errors import InvalidToken
from attribution.tokens import inspect, mint, verify


@click.group("tokens")
def tokens_group() -> None:
    """Mint and inspect the signed auction tokens of server-side conversions."""


@tokens_group.command("mint")
@click.option("--user-id", required=True, help="The user the token names.")
@click.option("--auction-id", required=True, help="The auction the token names.")
def tokens_mint(user_id: str, auction_id: str) -> None:
    """Print a token naming USER-ID and AUCTION-ID, signed with ATTRIBUTION_TOKEN_SECRET."""
    settings = settings_from()
    if not settings.token_secret:
        raise click.UsageError("ATTRIBUTION_TOKEN_SECRET is not set: there is no key to sign with")
    try:
        token = mint(user_id, auction_id, secret=settings.token_secret, key_id=settings.token_key_id)
    except InvalidToken as exc:
        raise click.UsageError(exc.message) from None
    click.echo(token)


@tokens_group.command("inspect")
@click.argument("token")
def tokens_inspect(token: str) -> None:
    """Print what TOKEN carries and whether it verifies with the configured keys (exit code 1
    when it does not)."""
    settings = settings_from()
    claims = inspect(token)
    if claims is None:
        click.echo("token: does not parse as an auction token")
    else:
        click.echo(f"key_id: {claims.key_id}")
        click.echo(f"user_id: {claims.user_id}")
        click.echo(f"auction_id: {claims.auction_id}")
    try:
        verify(token, settings.token_key_map)
    except InvalidToken as exc:
        click.echo(f"verified: no ({exc.message})")
        raise SystemExit(1) from None
    click.echo("verified: yes")
