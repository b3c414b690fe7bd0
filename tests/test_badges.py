"""Badge widths, number and colour formatting, and the flat SVG renderer."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.badges import (
    STYLES,
    full,
    metric,
    parse_color,
    preferred_width,
    render_badge,
    render_flat,
    text_width,
)
from aggregator.badges.colors import text_colors
from aggregator.badges.render import clean_text, safe_link
from aggregator.badges.widths import load_table

SVG = "{http://www.w3.org/2000/svg}"

# Expected widths below are worked out by hand from the entries of
# fonts/verdana-11px-normal.json ([first_cp, last_cp, px]):
#   t 4.33  w 9  i 3.02  e 6.55  r 4.69  f 3.87  l 3.02  a 6.61  s 5.73  b 6.85
#   space 3.87  digits 6.99  < > 9  & 7.99  " 5.05  x 6.51  ' 2.95  m 10.7
#   W 10.88  ß 6.82  € 6.99  — 11  … 9  CJK U+4E00..U+9FFE 11
#   not in the table: emoji (U+1F600), Armenian (U+0531) -> counted as "m" = 10.7
# preferred width = floor(sum), then +1 if even.
WIDTH_CASES = [
    # 4.33*3 + 9 + 3.02 + 6.55 + 4.69 = 36.25 -> 36 -> 37
    ("twitter", 37),
    # 6.99*3 = 20.97 -> 20 -> 21
    ("110", 21),
    # 20.97 + 3.87 + 3.87 + 3.02 + 6.61 + 4.69 + 6.55 + 5.73 = 55.31 -> 55
    ("251 flares", 55),
    # 3.87 + 3.02 + 6.61 + 4.69 + 6.55 + 5.73 = 30.47 -> 30 -> 31
    ("flares", 31),
    # 11 * 3 = 33
    ("日本語", 33),
    # emoji missing from the table -> width of "m": 10.7 -> 10 -> 11
    ("😀", 11),
    # U+0531 missing (counts 10.7) + m 10.7 = 21.4 -> 21
    ("\u0531m", 21),
    # controls count 0: a 6.61 + b 6.85 = 13.46 -> 13
    ("a\x00b\x1b\x7f", 13),
    # 9 + 6.85 + 9 + 7.99 + 5.05 + 6.51 + 2.95 = 47.35 -> 47
    ("<b>&\"x'", 47),
    # 10.88 -> 10 -> 11
    ("W", 11),
    # 3.02 * 2 = 6.04 -> 6 -> 7
    ("ii", 7),
    # 3.02 * 3 = 9.06 -> 9
    ("iii", 9),
    # 6.99 + 11 + 9 = 26.99 -> 26 -> 27
    ("€—…", 27),
    # 6.82 -> 6 -> 7
    ("ß", 7),
    # nothing -> 0 -> 1
    ("", 1),
]


@pytest.mark.parametrize(("text", "expected"), WIDTH_CASES)
def test_preferred_width_matches_hand_computed_values(text: str, expected: int) -> None:
    assert preferred_width(text) == expected


def test_text_width_is_the_raw_sum() -> None:
    # 4.33*3 + 9 + 3.02 + 6.55 + 4.69
    assert text_width("twitter") == pytest.approx(36.25)
    # only controls: all zero
    assert text_width("\x01\x1f\x7f\t\n") == 0.0


def test_helvetica_bold_table() -> None:
    # helvetica-11px-bold: T 6.72, w 8.95, i 2.84, t 3.87, e 6.31, r 4.28, digits 6.12
    # 6.72 + 8.95 + 2.84 + 3.87*2 + 6.31 + 4.28 = 36.84 -> 36 -> 37
    assert preferred_width("Twitter", font="helvetica-11px-bold") == 37
    # 6.12 * 3 = 18.36 -> 18 -> 19
    assert preferred_width("110", font="helvetica-11px-bold") == 19


def test_table_is_loaded_once_and_fonts_are_whitelisted() -> None:
    assert load_table("verdana-11px-normal") is load_table("verdana-11px-normal")
    with pytest.raises(ValueError, match="unknown badge font"):
        load_table("../../etc/passwd")


def test_licence_travels_with_the_tables() -> None:
    fonts = resources.files("aggregator.badges").joinpath("fonts")
    assert "MIT License" in fonts.joinpath("LICENSE-anafanafo").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0"),
        (7, "7"),
        (999, "999"),
        (1000, "1k"),
        (1100, "1.1k"),
        (1250, "1.3k"),  # JS toFixed rounds the exact 1.25 half-up, not to even
        (9999, "10k"),
        (10100, "10k"),
        (12_345, "12k"),
        (999_499, "999k"),
        (999_500, "1M"),
        (1_100_000, "1.1M"),
        (1_500_000, "1.5M"),
        (1_578_896_212, "1.6G"),
        (9_949_999_999_999, "9.9T"),
        (9_950_000_000_001, "10T"),
        (-1100, "-1.1k"),
        (-5, "-5"),
    ],
)
def test_metric(n: int, expected: str) -> None:
    assert metric(n) == expected


def test_full() -> None:
    assert full(1_234_567) == "1234567"
    assert full(0) == "0"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("blue", "#007ec6"),
        ("brightgreen", "#4b0"),
        ("BrightGreen", "#4b0"),
        ("lightgrey", "#939393"),
        ("gray", "#555"),
        ("critical", "#dd4343"),
        ("success", "#4b0"),
        ("informational", "#007ec6"),
        ("inactive", "#939393"),
        ("abc", "#abc"),
        ("#abc", "#abc"),
        ("ABCDEF", "#abcdef"),
        ("#12a4Ef", "#12a4ef"),
    ],
)
def test_parse_color_accepts(value: str, expected: str) -> None:
    assert parse_color(value) == expected


@pytest.mark.parametrize(
    "value",
    [None, "", "#", 'red" onload="x', "#12345g", "#abcd", "12345", "rgb(0,0,0)", "٣٣٣", "#ab c"],
)
def test_parse_color_rejects(value: str | None) -> None:
    assert parse_color(value) is None


def test_text_colour_follows_background_brightness() -> None:
    assert text_colors("#555") == ("#fff", "#010101")
    assert text_colors("#fff") == ("#333", "#ccc")


def parse(svg: str) -> ET.Element:
    """Parse rendered SVG, failing the test if it is not well-formed XML."""
    return ET.fromstring(svg)


def texts(root: ET.Element) -> list[ET.Element]:
    """All <text> elements of a badge."""
    return list(root.iter(f"{SVG}text"))


def test_flat_twitter_110_geometry() -> None:
    root = parse(render_flat("twitter", "110", color="blue"))
    assert root.get("width") == "78"  # (37 + 10) + (21 + 10)
    assert root.get("height") == "20"
    rects = list(root.iter(f"{SVG}rect"))
    assert rects[0].get("rx") == "3"
    assert [r.get("width") for r in rects[1:3]] == ["47", "31"]
    assert rects[2].get("x") == "47"
    assert rects[2].get("fill") == "#007ec6"
    shadow, label, _, message = texts(root)
    assert shadow.get("aria-hidden") == "true"
    # label x = 10 * (1 + 37/2 + 5) = 245; message x = 10 * (46 + 21/2 + 5) = 615
    assert (label.get("x"), label.get("textLength")) == ("245", "370")
    assert (message.get("x"), message.get("textLength")) == ("615", "210")
    assert (shadow.get("y"), label.get("y")) == ("150", "140")


def test_flat_message_only_and_label_widths() -> None:
    root = parse(render_flat("", "251 flares", color="brightgreen"))
    assert root.get("width") == "65"  # 55 + 10, no label part
    assert [t.text for t in texts(root)] == ["251 flares", "251 flares"]
    assert root.get("aria-label") == "251 flares"
    assert parse(render_flat("flares", "251", color="blue")).get("width") == "72"  # 41 + 31


def test_flat_accessibility_and_font() -> None:
    root = parse(render_flat("twitter", "110", color="blue"))
    assert root.get("role") == "img"
    assert root.get("aria-label") == "twitter: 110"
    title = root.find(f"{SVG}title")
    assert title is not None
    assert title.text == "twitter: 110"
    group = root.find(f"{SVG}g[@font-family]")
    assert group is not None
    assert group.get("font-family") == "Verdana,Geneva,DejaVu Sans,sans-serif"


def test_light_background_gets_dark_text() -> None:
    _, _, shadow, message = texts(parse(render_flat("flares", "251", color="#fff")))
    assert (message.get("fill"), shadow.get("fill")) == ("#333", "#ccc")


def test_markup_is_escaped() -> None:
    svg = render_flat("<b>&\"x'", "<script>", color="blue")
    assert "&lt;b&gt;&amp;&quot;x&apos;" in svg
    assert "<script>" not in svg and "<b>" not in svg
    root = parse(svg)
    assert root.get("aria-label") == "<b>&\"x': <script>"
    assert [t.text for t in texts(root)][:2] == ["<b>&\"x'", "<b>&\"x'"]
    assert root.get("width") == str(47 + 10 + preferred_width("<script>") + 10)


def test_forbidden_characters_are_dropped() -> None:
    svg = render_flat("a\x00b", "c\x1bd\ud800", color="blue")
    assert "\x00" not in svg and "\x1b" not in svg
    root = parse(svg)
    assert root.get("aria-label") == "ab: cd"
    svg.encode("utf-8")  # no lone surrogate survived
    assert clean_text("ok\ufffe\uffff\x7f\t") == "ok"


@pytest.mark.parametrize(
    "link",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "//evil.example/",
        "https:/no-host",
        "http://[::1",
        "",
    ],
)
def test_unsafe_links_are_refused(link: str) -> None:
    assert safe_link(link) is None
    svg = render_flat("a", "b", color="blue", link=link)
    assert parse(svg).find(f"{SVG}a") is None
    assert "script" not in svg.lower()


def test_http_link_wraps_the_badge() -> None:
    root = parse(render_flat("a", "b", color="blue", link="https://example.org/?a=1&b=2"))
    anchor = root.find(f"{SVG}a")
    assert anchor is not None
    assert anchor.get("href") == "https://example.org/?a=1&b=2"
    assert root.get("role") == "img"


def test_bad_colours_fall_back_to_defaults() -> None:
    svg = render_flat("x", "y", color='red" onload="x', label_color="#12345g")
    assert "onload" not in svg
    rects = list(parse(svg).iter(f"{SVG}rect"))
    assert [r.get("fill") for r in rects[1:3]] == ["#555", "#939393"]


def test_render_badge_defaults_to_flat() -> None:
    assert "flat" in STYLES
    flat = render_flat("a", "b", color="red")
    assert render_badge("a", "b", color="red") == flat
    assert render_badge("a", "b", style="no-such-style", color="red") == flat


@given(label=st.text(), message=st.text())
def test_any_text_gives_well_formed_svg(label: str, message: str) -> None:
    root = parse(render_flat(label, message, color="blue"))
    assert root.get("role") == "img"


# st.characters() never yields surrogates, so mix them (and C0 controls) in explicitly.
HOSTILE = st.text(
    st.one_of(st.characters(), st.characters(categories=["Cs"]), st.characters(max_codepoint=0x1F))
)


@given(label=HOSTILE, message=HOSTILE)
def test_surrogates_and_controls_never_break_the_svg(label: str, message: str) -> None:
    svg = render_flat(label, message, color="blue")
    svg.encode("utf-8")
    parse(svg)
