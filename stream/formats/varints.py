"""Base-128 varints, as Protobuf writes its integers and Avro its zigzagged longs."""

from __future__ import annotations

SMALL = [bytes([n]) for n in range(128)]
"""The one-byte varints."""
_MASK = (1 << 64) - 1
_CONTINUED = [sum(0x80 << (8 * i) for i in range(k - 1)) for k in range(9)]
"""The continuation bits of a k-byte varint: the high bit of each byte but the last."""


def varint(n: int) -> bytes:
    """An unsigned base-128 varint, low groups first (a negative int as its 64-bit two's complement)."""
    if 0 <= n < 128:
        return SMALL[n]
    if 0 < n < 1 << 56:  # spread the 7-bit groups into bytes at once (a time in µs is 8 of them)
        x = (n & 0xFFFFFFF) | ((n & 0xFFFFFFF0000000) << 4)
        x = (x & 0x00003FFF00003FFF) | ((x & 0x0FFFC0000FFFC000) << 2)
        x = (x & 0x007F007F007F007F) | ((x & 0x3F803F803F803F80) << 1)
        k = (n.bit_length() + 6) // 7
        return (x | _CONTINUED[k]).to_bytes(k, "little")
    n &= _MASK
    out = bytearray()
    while n > 127:
        out.append((n & 127) | 128)
        n >>= 7
    out.append(n)
    return bytes(out)
