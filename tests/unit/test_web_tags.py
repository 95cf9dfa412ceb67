"""Pixel tag export: the image tag, the JavaScript tag and the server-side URL, with placeholders
only when asked for (pure functions, and the `attribution pixels export` output format)."""

from __future__ import annotations

import html
import re

from attribution.web.tags import Placeholders, export, pixel_url, sspx_url, tag

HOST = "px.example.com"


def test_the_image_tag_is_a_hidden_1x1_image_calling_the_pixel_server() -> None:
    text = tag(7, HOST, "img", "signup")
    comment, element = text.split("\n")
    assert comment == "<!-- Conversion pixel 7: signup - DO NOT MODIFY -->"
    assert (
        element
        == '<img src="https://px.example.com/px?id=7&amp;t=2" width="1" height="1" style="display:none" alt=""/>'
    )


def test_the_javascript_tag_loads_the_pixel_asynchronously() -> None:
    element = tag(7, HOST, "js").split("\n")[1]
    assert element == '<script src="https://px.example.com/px?id=7&amp;t=1" async></script>'


def test_the_server_side_url_carries_the_user_id_placeholder_and_raw_ampersands() -> None:
    assert pixel_url(7, HOST, "server") == "https://px.example.com/px?id=7&t=3&uid=[USER_ID]"


def test_placeholders_appear_only_when_asked_for_in_a_fixed_order() -> None:
    assert "[VALUE]" not in export(7, HOST)["url"]
    every = Placeholders(value=True, order_id=True, other=True)
    assert pixel_url(7, HOST, "img", every).endswith("&value=[VALUE]&order_id=[ORDER_ID]&other=[OTHER]")
    assert pixel_url(7, HOST, "img", Placeholders(other=True)).endswith("t=2&other=[OTHER]")


def test_the_html_tags_unescape_to_the_same_url_as_the_plain_form() -> None:
    marks = Placeholders(value=True, order_id=True)
    for fmt in ("img", "js"):
        src = re.search(r'src="([^"]*)"', tag(9, HOST, fmt, placeholders=marks))
        assert src is not None
        assert html.unescape(src.group(1)) == pixel_url(9, HOST, fmt, marks)


def test_a_pixel_name_can_never_close_the_comment_early() -> None:
    comment = tag(1, HOST, "img", "evil --> <script>x</script> ---!>").split("\n")[0]
    assert comment.count("--") == 2  # the opening `<!--` and the closing `-->` only
    assert comment.endswith("DO NOT MODIFY -->")


def test_export_gives_all_four_forms() -> None:
    forms = export(3, "tags.example.org", "buy")
    assert set(forms) == {"img", "js", "url", "sspx"}
    assert forms["sspx"] == "https://tags.example.org/sspx?id=3&sspdata=[SSPDATA]"
    assert forms["img"].startswith("<!-- Conversion pixel 3: buy")
    assert forms["url"].startswith("https://tags.example.org/px?id=3&t=3")


def test_the_server_side_url_by_auction_token_carries_the_token_last() -> None:
    assert sspx_url(7, HOST) == "https://px.example.com/sspx?id=7&sspdata=[SSPDATA]"
    every = Placeholders(value=True, order_id=True, other=True)
    assert (
        sspx_url(7, HOST, every)
        == "https://px.example.com/sspx?id=7&value=[VALUE]&order_id=[ORDER_ID]&other=[OTHER]&sspdata=[SSPDATA]"
    )
