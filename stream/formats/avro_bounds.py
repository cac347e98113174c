"""How many values an Avro message may make: the bounds both Avro readers keep.

An array or a map comes in blocks, each a count of items (negative: a byte size follows) then the
items. Counts are the writer's word: a few bytes can claim billions of items, and items that take
no bytes (a ``null``, a ``fixed`` of size 0, a record of no fields) are made from nothing. So a
block is refused, before its items are made, when

- its items, at their fewest bytes each (:func:`min_width`), need more bytes than are left; or
- it brings the message's arrays and maps, all told, to more items than the message has bytes, or
  to more values that take no bytes than that (:func:`zero_width`): each of those counts as a byte.

A message of ``N`` bytes thus makes O(``N``) values whatever its counts say; no legitimate message
is refused unless its arrays and maps may hold more nulls than it has bytes. fastavro keeps no bound,
and reads by recursion in C that a recursive schema's chain of a few thousand values crashes: so
for a schema with arrays, maps or named references, :class:`Scan` walks each value (making
nothing) before fastavro reads it, with the same bounds and at most :data:`MAX_DEPTH` records,
arrays, maps and unions nested.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 256
"""Records, arrays, maps and unions nested in a value read by fastavro (legitimate schemas nest a few)."""
_WIDTHS = {"null": 0, "boolean": 1, "int": 1, "long": 1, "float": 4, "double": 8, "bytes": 1, "string": 1}
_RECORDS = ("record", "error")


def refusal(n: int, pos: int, size: int) -> ValueError:
    """The reason a block of ``n`` items at ``pos`` is refused."""
    return ValueError(f"a block of {n} items at byte {pos}: more than the {size}-byte message can hold")


def min_width(kind: Any, named: dict[str, int] | None = None) -> int:
    """The fewest bytes a value of ``kind`` takes; a reference to a named type takes what ``named``
    says (0 if it says nothing): a lower bound either way."""
    if isinstance(kind, list):
        return 1 + min((min_width(k, named) for k in kind), default=0)
    name = kind if isinstance(kind, str) else kind["type"]
    if not isinstance(name, str):
        return min_width(name, named)
    if name in _WIDTHS:
        return _WIDTHS[name]
    if name == "fixed":
        return max(int(kind["size"]), 0)
    if name in _RECORDS:
        return sum(min_width(f["type"], named) for f in kind["fields"])
    if isinstance(kind, str):
        return (named or {}).get(name, 0)
    return 1  # an enum's index, an array's or a map's closing count


def named_widths(named: dict[str, Any]) -> dict[str, int]:
    """The fewest bytes of each named type: each round a lower bound, tighter than the one before
    (recursive types converge; a few rounds do for the types schemas name)."""
    widths: dict[str, int] = {}
    for _ in range(min(len(named), 8) + 1):
        widths = {name: min_width(kind, widths) for name, kind in named.items()}
    return widths


def zero_width(kind: Any) -> int:
    """The most values taking no bytes in one value of ``kind``, outside its arrays and maps (whose
    items count on their own); for a schema without references to named types."""
    if isinstance(kind, list):
        return max((zero_width(k) for k in kind), default=0)
    name = kind if isinstance(kind, str) else kind.get("type")
    if not isinstance(name, str):
        return zero_width(name)
    if name == "null" or (name == "fixed" and int(kind["size"]) <= 0):
        return 1
    if name in _RECORDS:
        return sum(zero_width(f["type"]) for f in kind["fields"]) if kind["fields"] else 1
    return 0


class _Blocks:
    """On the walk's stack: the next block count of an array or map."""

    __slots__ = ("is_map", "item", "width")

    def __init__(self, item: Any, width: int, is_map: bool) -> None:
        self.item, self.width, self.is_map = item, width, is_map


Entry = tuple[Any, int, bool]
"""On the walk's stack: a type (or :class:`_Blocks`), its depth, and whether it is in an item."""


class Scan:
    """Walks a value of a schema parsed by fastavro without making it; refuses what :func:`refusal`
    refuses, a value cut short, a varint of more than ten bytes, a length out of range, a union
    index out of range, nesting deeper than :data:`MAX_DEPTH`; returns the offset after the value."""

    def __init__(self, parsed: Any, named: dict[str, Any]) -> None:
        self.schema, self.named = parsed, named
        widths = named_widths(named)
        self._blocks: dict[int, _Blocks] = {}
        refers = False

        def visit(kind: Any) -> None:  # every array and map of the schema, once each
            nonlocal refers
            if isinstance(kind, str):
                refers = refers or kind not in _WIDTHS
            elif isinstance(kind, list):
                for branch in kind:
                    visit(branch)
            elif (
                isinstance(kind, dict)
                and kind.get("type") in ("array", "map")
                and id(kind) not in self._blocks
            ):
                is_map = kind["type"] == "map"
                item = kind["values" if is_map else "items"]
                self._blocks[id(kind)] = _Blocks(item, min_width(item, widths) + is_map, is_map)
                visit(item)
            elif isinstance(kind, dict) and kind.get("type") in _RECORDS:
                for field in kind["fields"]:
                    visit(field["type"])

        for kind in (parsed, *named.values()):
            visit(kind)
        self.needed = refers or bool(self._blocks)
        """Whether a value can make more than its schema's size: it has arrays, maps or references
        to named types (which may recurse); a walk is of no use otherwise."""

    def __call__(self, buf: bytes, pos: int) -> int:
        walk = _Walk(buf, pos, self)
        walk.run()
        return walk.pos

    def blocks(self, kind: dict[str, Any]) -> _Blocks:
        return self._blocks[id(kind)]


class _Walk:
    """One value's walk, on an explicit stack (fastavro's recursion is what it guards)."""

    def __init__(self, buf: bytes, pos: int, scan: Scan) -> None:
        self.buf, self.pos, self.size, self.scan = buf, pos, len(buf), scan
        self.items = self.zeros = len(buf)
        self.stack: list[Entry] = [(scan.schema, 0, False)]

    def run(self) -> None:
        stack, named = self.stack, self.scan.named
        while stack:
            kind, depth, counted = stack.pop()
            if isinstance(kind, _Blocks):
                self.block(kind, depth)
            elif isinstance(kind, list):
                index = self.varint()
                if not 0 <= index < len(kind):
                    raise ValueError(f"union index {index} of {len(kind)} branches")
                self.nest(kind[index], depth, counted)
            else:
                self.value(named.get(kind, kind) if isinstance(kind, str) else kind, depth, counted)

    def nest(self, kind: Any, depth: int, counted: bool) -> None:
        if depth >= MAX_DEPTH:
            raise ValueError(f"nested more than {MAX_DEPTH} deep")
        self.stack.append((kind, depth + 1, counted))

    def value(self, kind: Any, depth: int, counted: bool) -> None:
        name = kind if isinstance(kind, str) else kind["type"]
        if name in ("int", "long", "enum"):
            self.varint()
        elif name in ("bytes", "string"):
            self.skip(self.varint())
        elif name in _WIDTHS:
            self.skip(_WIDTHS[name]) if name != "null" else self.zero(counted)
        elif name == "fixed":
            self.skip(int(kind["size"])) if int(kind["size"]) > 0 else self.zero(counted)
        elif name in _RECORDS:
            if not kind["fields"]:
                self.zero(counted)
            for field in reversed(kind["fields"]):
                self.nest(field["type"], depth, counted)
        elif name in ("array", "map"):
            self.nest(self.scan.blocks(kind), depth, True)
        else:
            raise ValueError(f"no reading of type {name!r}")

    def block(self, blocks: _Blocks, depth: int) -> None:
        """One block's count; the items it claims, if the message can hold them."""
        n = self.varint()
        if n == 0:
            return
        if n < 0:
            n = -n
            self.varint()  # the block's byte size
        self.items -= n
        if self.items < 0 or n * blocks.width > self.size - self.pos:
            raise refusal(n, self.pos, self.size)
        self.stack.append((blocks, depth, True))
        item: Entry = (blocks.item, depth, True)
        self.stack.extend([item, ("string", depth, True)] * n if blocks.is_map else [item] * n)

    def varint(self) -> int:
        buf, pos, shift, n = self.buf, self.pos, 0, 0
        while True:
            if pos >= self.size:
                raise ValueError(f"cut short at byte {pos} of {self.size}")
            b = buf[pos]
            pos += 1
            n |= (b & 127) << shift
            if b < 128:
                self.pos = pos
                return (n >> 1) ^ -(n & 1)
            shift += 7
            if shift > 63:
                raise ValueError("a varint of more than ten bytes")

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > self.size:
            raise ValueError(f"a length of {n} at {self.pos} of {self.size} bytes")
        self.pos += n

    def zero(self, counted: bool) -> None:
        """A value of no bytes: counted in an item of an array or map."""
        if counted:
            self.zeros -= 1
            if self.zeros < 0:
                raise ValueError(f"more values of no bytes than the {self.size}-byte message can hold")
