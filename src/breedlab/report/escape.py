"""Escaping record text for the report: one rule for the HTML and the SVG inside it.

Owns turning any string from a round record into text that is safe in HTML text and
attribute values and well-formed in XML (the SVG charts are parsed as XML): ``&``, ``<``,
``>``, ``"`` and ``'`` become character references, and code points XML 1.0 forbids
(C0 controls other than tab, newline and carriage return; lone surrogates; U+FFFE and
U+FFFF) become U+FFFD, the replacement character, so nothing is silently dropped.
"""

from __future__ import annotations

import html
import re

__all__ = ["escape"]

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def escape(text: str) -> str:
    """``text`` escaped for HTML and XML text and double- or single-quoted attributes."""
    return html.escape(_NOT_XML.sub("\ufffd", text), quote=True)
