"""Pixel tag export, like the platform's export dialog: pure functions, no I/O.

Three forms of the same pixel call, to the pixel server at `https://<pixel host>/px`
(`ATTRIBUTION_PIXEL_HOST`):

* image tag (`t=2`), for pages and emails:
  `<img src="https://px.example.com/px?id=7&amp;t=2" width="1" height="1" style="display:none" alt=""/>`
* JavaScript tag (`t=1`), which can also fire the pixel's js piggybacks:
  `<script src="https://px.example.com/px?id=7&amp;t=1" async></script>`
* server-side URL, for an advertiser's server calling the pixel server directly (no browser, no
  cookie: the caller passes the user id):
  `https://px.example.com/px?id=7&t=3&uid=[USER_ID]`
* server-side URL by auction token, for a server that has no user id at all (app installs, an
  MMP): it passes back the signed token the winning creative carried (`${SSP_DATA}`), last:
  `https://px.example.com/sspx?id=7&sspdata=[SSPDATA]`

Optional placeholders, each only when asked for, are appended in this order and replaced by the
advertiser's page or server at fire time: `value=[VALUE]` (dynamic revenue, a number >= 0),
`order_id=[ORDER_ID]` (up to 36 characters), `other=[OTHER]` (up to 30 characters of external
data). The HTML tags escape `&` as `&amp;` (valid HTML; browsers send the same URL); a comment
line above each tag names the pixel.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Literal

Format = Literal["img", "js"]
FORMATS: tuple[Format, ...] = ("img", "js")
#: The `t` parameter of each form: which kind of call reached the pixel server.
TAG_TYPES = {"js": 1, "img": 2, "server": 3}
PLACEHOLDERS = (("value", "[VALUE]"), ("order_id", "[ORDER_ID]"), ("other", "[OTHER]"))


@dataclass(frozen=True, slots=True)
class Placeholders:
    value: bool = False
    order_id: bool = False
    other: bool = False

    def params(self) -> list[tuple[str, str]]:
        return [(name, text) for name, text in PLACEHOLDERS if getattr(self, name)]


def pixel_url(pixel_id: int, host: str, form: str, placeholders: Placeholders = Placeholders()) -> str:
    """The pixel call URL of one form (`img`, `js` or `server`), with raw `&` separators."""
    params: list[tuple[str, str]] = [("id", str(pixel_id)), ("t", str(TAG_TYPES[form]))]
    if form == "server":
        params.append(("uid", "[USER_ID]"))
    params += placeholders.params()
    return f"https://{host}/px?" + "&".join(f"{k}={v}" for k, v in params)


def sspx_url(pixel_id: int, host: str, placeholders: Placeholders = Placeholders()) -> str:
    """The server-side URL by auction token: `/sspx`, the placeholders asked for, then the token
    (`sspdata=[SSPDATA]`) last, as the pixel server expects it."""
    params = [("id", str(pixel_id)), *placeholders.params(), ("sspdata", "[SSPDATA]")]
    return f"https://{host}/sspx?" + "&".join(f"{k}={v}" for k, v in params)


def _comment(name: str | None, pixel_id: int) -> str:
    # Runs of dashes would end the comment (`-->`, `--!>`): one dash is enough to read the name.
    label = re.sub(r"-{2,}", "-", " ".join((name or "").split()))
    return f"<!-- Conversion pixel {pixel_id}{f': {label}' if label else ''} - DO NOT MODIFY -->"


def tag(
    pixel_id: int, host: str, fmt: Format, name: str | None = None, placeholders: Placeholders = Placeholders()
) -> str:
    """The HTML tag (`img` or `js`), preceded by a comment line naming the pixel."""
    src = html.escape(pixel_url(pixel_id, host, fmt, placeholders), quote=True)
    if fmt == "img":
        element = f'<img src="{src}" width="1" height="1" style="display:none" alt=""/>'
    else:
        element = f'<script src="{src}" async></script>'
    return f"{_comment(name, pixel_id)}\n{element}"


def export(
    pixel_id: int, host: str, name: str | None = None, placeholders: Placeholders = Placeholders()
) -> dict[str, str]:
    """All four forms: `img`, `js` (HTML tags), `url` (the server-side URL) and `sspx` (the
    server-side URL by auction token)."""
    return {
        "img": tag(pixel_id, host, "img", name, placeholders),
        "js": tag(pixel_id, host, "js", name, placeholders),
        "url": pixel_url(pixel_id, host, "server", placeholders),
        "sspx": sspx_url(pixel_id, host, placeholders),
    }
