"""Text read from Kafka (or given on the command line) made safe to print on a terminal.

A record's id, key, header or reason may hold control characters: printed as they are, an escape
sequence can move the cursor, clear a line and write one that looks like the command's own. Every
command that prints such text as lines of its own passes each line through :func:`printable`;
``--json`` output is JSON's own escaping and is left as it is.
"""

from __future__ import annotations

__all__ = ["printable"]

_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
_ESCAPED = [
    *range(0x20),  # C0
    *range(0x7F, 0xA0),  # DEL and C1
    *range(0x202A, 0x202F),  # bidirectional embeddings and overrides: they reorder what follows
    *range(0x2066, 0x206A),  # bidirectional isolates
    0x2028,  # line and paragraph separators
    0x2029,
    *range(0xD800, 0xE000),  # lone surrogates (undecodable bytes of an argument): not UTF-8
]
_TABLE = {c: _NAMED.get(chr(c)) or (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _ESCAPED}


def printable(text: str) -> str:
    """``text`` with every control character (Unicode Cc), bidirectional control, line separator and
    lone surrogate written as a visible escape (``\\x1b``, ``\\r``, ``\\u202e``): one line, as it reads."""
    return text.translate(_TABLE)
