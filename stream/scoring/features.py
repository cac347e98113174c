"""An event's features, checked against the model card, as the rows the model is fed.

:class:`FeatureReader` takes each event's feature values by the card's names: numbers (whole ones
where the card says integer) and strings for string features. A batch becomes ``x``, the card's
features in card order as float32 (float64 when the model takes doubles or 64-bit integers), a
string feature's column holding its category code (its index in the card's categories, -1 for one
the reference never saw), and ``texts``, the string features' values as they came.

Features no model reads are ignored and counted by name (:attr:`Rows.ignored`), as Avro's schema
resolution skips a writer's extra fields (their names are bounded as a feature's); a strict reader
(``STREAMSCORE_UNKNOWN_FIELDS=dead-letter``) refuses them instead. A missing feature, a value of
the wrong type, a number beyond float32 or a string longer than the limit is a
:class:`~stream.errors.FeatureError` naming the feature.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from stream.contracts import MAX_FEATURES, MAX_STRING_LENGTH, FeatureSpec
from stream.errors import FeatureError

FLOAT32_MAX = 3.4028234663852886e38
_MISSING = object()
_NUMBERS = frozenset((int, float))
_STRINGS = frozenset((str,))
_EXACT = 2.0**53
"""Ints up to this magnitude convert to float64 exactly."""


class Rows(NamedTuple):
    """A batch's features: rows in card order, string values, the error refusing each event (or
    None), and the names of the features no model read with how many events carried each."""

    x: np.ndarray
    texts: np.ndarray | None
    errors: list[FeatureError | None]
    ignored: Counter[str]


def _getter(names: Sequence[str]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    if not names:
        return lambda features: ()
    get = operator.itemgetter(*names)
    return get if len(names) > 1 else lambda features: (get(features),)


class FeatureReader:
    """Checks events' features against the card and returns them as the model's rows."""

    __slots__ = (
        "_codes",
        "_get_numbers",
        "_get_strings",
        "_integers",
        "_max_features",
        "_max_string",
        "_names",
        "_number_at",
        "_personal",
        "_specs",
        "_strict",
        "_string_at",
        "_wide",
        "width",
    )  # fmt: skip

    def __init__(
        self,
        specs: Sequence[FeatureSpec],
        max_features: int = MAX_FEATURES,
        max_string_length: int = MAX_STRING_LENGTH,
        *,
        wide: bool = False,
        strict: bool = False,
    ) -> None:
        """``wide``: rows as float64; ``strict``: a feature no model reads refuses the event."""
        self._specs = [(s.name, s.type) for s in specs]
        self._names = frozenset(s.name for s in specs)
        self._personal = frozenset(s.name for s in specs if s.personal)
        self._max_features, self._max_string = max_features, max_string_length
        self._wide, self._strict, self.width = wide, strict, len(specs)
        numbers = [i for i, s in enumerate(specs) if s.type != "string"]
        strings = [i for i, s in enumerate(specs) if s.type == "string"]
        self._number_at, self._string_at = np.array(numbers, np.intp), np.array(strings, np.intp)
        self._get_numbers = _getter([specs[i].name for i in numbers])
        self._get_strings = _getter([specs[i].name for i in strings])
        self._integers = [j for j, i in enumerate(numbers) if specs[i].type == "integer"]
        self._codes = [{c: k for k, c in enumerate(specs[i].categories or ())} for i in strings]

    def rows(self, batch: Sequence[dict[str, object]]) -> Rows:
        """The rows of a batch, equal to :meth:`row` for each (a refused event's row is zeros).

        A row is taken as it is only when ``row`` would take it unchanged (every card name there,
        each number an int or a float none beyond 2**53 and whole where the card says integer,
        each string a str within the length limit, no more features than the limit); any other
        goes through ``row``, which accepts it or says why not.
        """
        get, width = self._get_numbers, self.width
        numbers: list[tuple[object, ...]] = []
        checked: list[int] = []  # events that go through row()
        unread: list[tuple[int, set[str]]] = []  # events carrying features no model reads
        zeros = (0,) * len(self._number_at)
        for i, features in enumerate(batch):
            try:
                values = get(features)
            except KeyError:
                values = None
            else:
                numbers_only = _NUMBERS.issuperset(map(type, values))
                if not numbers_only or (len(features) != width and not self._unread(i, features, unread)):
                    values = None
            if values is None:
                checked.append(i)
                values = zeros
            numbers.append(values)
        strings = self._strings(batch, checked) if len(self._string_at) else []
        x, text_table = self._table(numbers, strings, checked)
        errors: list[FeatureError | None] = [None] * len(batch)
        ignored: Counter[str] = Counter()
        if unread:  # counted for the events taken as they are; row() says for the others
            looked_at = set(checked)
            for i, names in unread:
                if i not in looked_at:
                    ignored.update(names)
        for i in checked:
            try:
                row, texts_of_row, extras = self._row(batch[i])
            except FeatureError as exc:
                errors[i], x[i] = exc, 0
                continue
            x[i] = row
            if text_table is not None:
                text_table[i] = texts_of_row
            ignored.update(extras)
        return Rows(x if self._wide else x.astype(np.float32), text_table, errors, ignored)

    def _unread(self, i: int, features: dict[str, object], unread: list[tuple[int, set[str]]]) -> bool:
        """Whether the features no model reads may be ignored (noted in ``unread``), or row() must look."""
        if self._strict or len(features) > self._max_features:
            return False
        names = features.keys() - self._names
        if max(map(len, names)) > self._max_string:
            return False  # a name beyond the limit: row() says so
        unread.append((i, names))
        return True

    def _strings(self, batch: Sequence[dict[str, object]], checked: list[int]) -> list[tuple[object, ...]]:
        """The string features of each event; ``checked`` gains those that row() must look at."""
        get, blanks, strings, odd = self._get_strings, ("",) * len(self._string_at), [], []
        for i, features in enumerate(batch):
            try:
                texts = get(features)
            except KeyError:
                texts = None
            else:
                if not self._fits(texts):
                    texts = None
            if texts is None:
                odd.append(i)
                texts = blanks
            strings.append(texts)
        checked[:] = sorted({*checked, *odd})
        return strings

    def _fits(self, texts: tuple[object, ...]) -> bool:
        return _STRINGS.issuperset(map(type, texts)) and max(map(len, texts)) <= self._max_string  # type: ignore[arg-type]

    def _table(
        self, numbers: list[tuple[object, ...]], strings: list[tuple[object, ...]], checked: list[int]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``x`` (float64) and ``texts`` of the rows taken as they are; ``checked`` gains doubtful ones."""
        n = len(numbers)
        try:
            values = np.array(numbers, dtype=np.float64).reshape(n, len(self._number_at))
        except OverflowError:  # an int beyond float64: let row() refuse it
            values = np.zeros((n, len(self._number_at)))
            checked[:] = range(n)
        else:
            doubtful = ~(np.abs(values) <= _EXACT).all(axis=1)  # NaN too
            if self._integers:
                whole = values[:, self._integers]
                doubtful |= (whole != np.floor(whole)).any(axis=1)
            checked[:] = sorted({*checked, *np.flatnonzero(doubtful).tolist()})
        if not len(self._string_at):
            return values, None
        x = np.zeros((n, self.width))
        x[:, self._number_at] = values
        texts = np.array(strings, dtype=object).reshape(n, len(self._string_at))
        for j, (column, codes) in enumerate(zip(self._string_at, self._codes, strict=True)):
            x[:, column] = [codes.get(t, -1) for t in texts[:, j]]
        return x, texts

    def row(self, features: dict[str, object]) -> tuple[list[float], tuple[str, ...]]:
        """The feature values in card order (a string's category code) and the string values, or
        :class:`FeatureError` naming the first problem."""
        row, texts, _ = self._row(features)
        return row, texts

    def _row(self, features: dict[str, object]) -> tuple[list[float], tuple[str, ...], list[str]]:
        """:meth:`row`, and the names of the features no model reads.

        A broken bound (feature count, string length) is named before any other problem; string
        lengths are only looked at once the event is refused anyway, so valid events pay nothing.
        """
        if len(features) > self._max_features:
            raise FeatureError(f"{len(features)} features: more than the limit of {self._max_features}")
        row: list[float] = []
        texts: list[str] = []
        codes = iter(self._codes)
        for name, kind in self._specs:
            value = features.get(name, _MISSING)
            if value is _MISSING:
                raise self._error(features, reason=f"feature {name!r} is missing")
            if kind == "string":
                if type(value) is not str:
                    shown = _json_type(value)
                    raise self._error(features, reason=f"feature {name!r} is {shown}: a string is required")
                if len(value) > self._max_string:
                    raise self._error(features)
                texts.append(value)
                row.append(next(codes).get(value, -1))
                continue
            row.append(self._number(features, name, value, kind == "integer"))
        unknown = [] if len(features) == len(row) else sorted(features.keys() - self._names)
        if unknown and (self._strict or max(map(len, unknown)) > self._max_string):
            raise self._error(features, reason=f"unknown feature{'s' if len(unknown) > 1 else ''} {unknown}")
        return row, tuple(texts), unknown

    def _number(self, features: dict[str, object], name: str, value: object, integer: bool) -> float:
        kind = type(value)
        if kind is float:
            if not -FLOAT32_MAX <= value <= FLOAT32_MAX:  # type: ignore[operator]
                raise self._error(features, name, value, "numbers must be finite float32")
            if integer and not value.is_integer():  # type: ignore[attr-defined]
                raise self._error(features, name, value, "a whole number is required")
        elif kind is int:
            if not -FLOAT32_MAX <= value <= FLOAT32_MAX:  # type: ignore[operator]
                raise self._error(features, name, value, "out of float32 range")
        else:
            number = f"a {'whole ' if integer else ''}number is required"
            raise self._error(features, reason=f"feature {name!r} is {_json_type(value)}: {number}")
        return value  # type: ignore[return-value]

    def _error(
        self,
        features: dict[str, object],
        name: str = "",
        value: object = None,
        why: str = "",
        reason: str = "",
    ) -> FeatureError:
        """The error refusing ``features``: a broken string bound if any, else ``reason``.

        Without a ``reason``, it is ``feature <name> is <value>: <why>``, where the value of a
        personal feature is never shown.
        """
        limit = self._max_string
        for key, item in features.items():
            if len(key) > limit:
                return FeatureError(
                    f"a feature name of {len(key)} characters: longer than the limit of {limit}"
                )
            if type(item) is str and len(item) > limit:
                return FeatureError(
                    f"feature {key!r} is a string of {len(item)} characters: longer than the limit of {limit}"
                )
        if not reason:
            shown = "a personal value" if name in self._personal else repr(value)
            reason = f"feature {name!r} is {shown}: {why}"
        return FeatureError(reason)


def _json_type(value: object) -> str:
    names = {
        bool: "a boolean",
        str: "a string",
        list: "an array",
        dict: "an object",
        int: "a number",
        float: "a number",
    }
    return "null" if value is None else names.get(type(value), type(value).__name__)
