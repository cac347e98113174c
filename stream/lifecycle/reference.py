"""A reference data file (CSV or Parquet) read into columns, with its fingerprint.

The rows are as the model sees them. A column whose every value is a finite number is numeric
(``integer`` when every value is whole), any other column holds strings. CSV is read with the
standard library; Parquet through pyarrow, an optional dependency.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from stream.errors import ModelError
from stream.scoring.model import sha256_file

__all__ = ["Column", "Reference", "read"]

ColumnType = Literal["number", "integer", "string"]


@dataclass(frozen=True, slots=True)
class Column:
    """One column: each value as text, and as numbers when every value is a finite number."""

    name: str
    texts: np.ndarray
    numbers: np.ndarray | None
    not_number: tuple[int, str] | None
    """The first value that is not a finite number: its row (1 = the first data row) and text."""

    @property
    def type(self) -> ColumnType:
        if self.numbers is None:
            return "string"
        return "integer" if bool(np.all(self.numbers == np.round(self.numbers))) else "number"


@dataclass(frozen=True, slots=True)
class Reference:
    """The columns of a reference file, in the file's order, and where they came from."""

    path: Path
    format: Literal["csv", "parquet"]
    columns: dict[str, Column]
    rows: int
    sha256: str

    def fingerprint(self) -> dict[str, Any]:
        """The file's name, format, SHA-256 of its bytes, rows and columns."""
        return {
            "file": self.path.name,
            "format": self.format,
            "sha256": self.sha256,
            "rows": self.rows,
            "columns": list(self.columns),
        }


def _column(name: str, texts: np.ndarray, numbers: np.ndarray | None = None) -> Column:
    """A column of ``texts``; numeric when each parses as a finite number (or ``numbers`` are given)."""
    if numbers is None:
        try:
            numbers = texts.astype(np.str_).astype(np.float64)
        except ValueError:
            bad = next(i for i, t in enumerate(texts) if not _is_number(t))
            return Column(name, texts, None, (bad + 1, str(texts[bad])))
    finite = np.isfinite(numbers)
    if not finite.all():
        bad = int(np.argmin(finite))
        return Column(name, texts, None, (bad + 1, str(texts[bad])))
    return Column(name, texts, numbers, None)


def _is_number(text: object) -> bool:
    try:
        np.array([text], dtype=np.str_).astype(np.float64)
    except ValueError:
        return False
    return True


def _read_csv(path: Path) -> dict[str, Column]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise ModelError(f"reference {path} is empty: give a header line and rows as the model sees them")
        rows = list(reader)
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ModelError(
                f"reference {path} line {number} has {len(row)} values and its header {len(header)}: "
                "fix the file"
            )
    _check_header(path, header)
    cells = np.array(rows, dtype=object).reshape(len(rows), len(header))
    return {name: _column(name, cells[:, i]) for i, name in enumerate(header)}


def _check_header(path: Path, header: list[str]) -> None:
    seen: set[str] = set()
    for name in header:
        if not name or name in seen:
            why = "an empty column name" if not name else f"column {name!r} twice"
            raise ModelError(f"reference {path} has {why}: name each column once")
        seen.add(name)


def _read_parquet(path: Path) -> dict[str, Column]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ModelError(f"reading Parquet ({path}) needs pyarrow: pip install pyarrow") from None
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ModelError(f"cannot read reference {path} as Parquet: {exc}") from exc
    _check_header(path, table.column_names)
    columns = {}
    for name, data in zip(table.column_names, table.columns, strict=True):
        kind = data.type
        numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
        values = data.to_pylist()
        texts = np.array(["" if v is None else str(v) for v in values], dtype=object)
        if numeric and data.null_count == 0:
            numbers = data.to_numpy(zero_copy_only=False).astype(np.float64)
            columns[name] = _column(name, texts, numbers)
        elif numeric:
            bad = next(i for i, v in enumerate(values) if v is None)
            columns[name] = Column(name, texts, None, (bad + 1, "null"))
        else:
            columns[name] = _column(name, texts)
    return columns


def read(path: Path) -> Reference:
    """Read ``path``: Parquet when it is named ``*.parquet``/``*.pq``, CSV otherwise."""
    if not path.is_file():
        raise ModelError(f"reference {path} is not a file: give the data the model was checked on")
    parquet = path.suffix.lower() in (".parquet", ".pq")
    try:
        columns = _read_parquet(path) if parquet else _read_csv(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ModelError(f"cannot read reference {path}: {exc}") from exc
    rows = len(next(iter(columns.values())).texts) if columns else 0
    if rows == 0:
        raise ModelError(f"reference {path} has no rows: give rows as the model sees them")
    return Reference(path, "parquet" if parquet else "csv", columns, rows, sha256_file(path))
