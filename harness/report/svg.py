"""A few helpers to write small SVG documents by hand: deterministic text, no plotting library."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

SVG_NS = "http://www.w3.org/2000/svg"


def number(value: float) -> str:
    """A coordinate as fixed, short text (the same value always prints the same)."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def element(tag: str, attributes: dict[str, str | float], text: str | None = None) -> str:
    """One element; attributes in the given order, numbers through `number()`."""
    rendered = " ".join(
        f"{name}={quoteattr(number(value) if isinstance(value, float | int) else value)}"
        for name, value in attributes.items()
    )
    opening = f"<{tag} {rendered}" if rendered else f"<{tag}"
    if text is None:
        return opening + "/>"
    return f"{opening}>{escape(text)}</{tag}>"


def document(width: float, height: float, body: list[str], title: str) -> str:
    header = (
        f'<svg xmlns="{SVG_NS}" width="{number(width)}" height="{number(height)}" '
        f'viewBox="0 0 {number(width)} {number(height)}" font-family="Helvetica, Arial, sans-serif">'
    )
    return "\n".join([header, element("title", {}, title), *body, "</svg>"]) + "\n"
