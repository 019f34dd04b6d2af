"""QR codes, drawn on the server as inline SVG (no script, nothing from a CDN)."""
import segno


def qr_svg(url: str) -> str:
    """A printable QR code of `url` as inline SVG, drawn on the server (lot labels, household cards, permits)."""
    return segno.make(url, error="m").svg_inline(scale=4, dark="#000", light="#fff")
