"""Read one competition CSV and check it is what the competition ships: plain UTF-8 CSV text, complete, with the
FileSpec's columns, kinds, bounds and unique ids; every failure is one DataError line naming the file, column, rule
and first bad rows. ``common.data`` finds and unpacks the files; this module reads what is in them."""

import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.competition import Data, DataFiles, FileSpec
from common.errors import DataError, cell


def read_table(files: DataFiles, name: str, spec: FileSpec, **read_kwargs) -> pd.DataFrame:
    """Read one competition CSV and check it against its FileSpec; every failure is one DataError line.

    Rows are named as they count in the file: row 1 is the first line after the header.
    """
    path = files.path(name)
    if not path.is_file():
        raise DataError(f"{name} not found in {files.folder}")
    check_plain_text(path, name)
    check_not_truncated(path, name)
    try:
        df = _read_csv(path, name, read_kwargs)
    except ValueError:  # a value the asked-for dtype cannot hold: read plainly, so the checks name its row
        if "dtype" not in read_kwargs:
            raise
        df = _read_csv(path, name, {k: v for k, v in read_kwargs.items() if k != "dtype"})
    validate_frame(df, spec, name)
    return df


def _read_csv(path: Path, name: str, read_kwargs: dict[str, Any]) -> pd.DataFrame:
    """pandas' reader, with its errors about the file itself as one DataError line."""
    try:
        with warnings.catch_warnings():
            # a word among a column's numbers, past pandas' first block of rows: its DtypeWarning printed our code's
            # path above the one error line; the checks that follow name the file, column and row instead
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            return pd.read_csv(path, **read_kwargs)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{name} is empty ({path}); download it again") from exc
    except pd.errors.ParserError as exc:
        first = str(exc).splitlines()[0]
        if "EOF inside string" in first:
            raise DataError(f"{name} ends inside a quoted field ({first}); the file looks truncated - download it "
                            "again") from exc
        with open(path, encoding="utf-8", errors="replace") as fh:
            separator = _separator_hint(fh.readline())
        if separator:
            raise DataError(f"{name}: {separator}") from exc
        if fields := re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", first):
            expected, line, saw = fields.groups()
            # pandas counts records, the header as 1: our row N (the first after the header is row 1) is its N + 1
            raise DataError(f"{name}: row {int(line) - 1} has {saw} fields where the header has {expected} - a comma "
                            "too many, or quotes missing around a text that holds commas; fix that row or download "
                            "the file again") from exc
        raise DataError(f"{name} cannot be parsed as CSV ({path}): {first}") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{name} is not valid UTF-8 text (byte {exc.start}: {exc.reason}); download it again") from exc


# What a file named .csv holds when it is not CSV text, by its first bytes, and what to do about it.
NOT_PLAIN_TEXT = [(b"\x1f\x8b", "gzip-compressed", "unpack it first (gunzip)"),
                  (b"PK\x03\x04", "a zip archive", "unzip it first"),
                  (b"\xff\xfe", "UTF-16 text (a spreadsheet's 'Unicode text')", "save it as CSV in UTF-8"),
                  (b"\xfe\xff", "UTF-16 text (a spreadsheet's 'Unicode text')", "save it as CSV in UTF-8")]


def check_plain_text(path: Path, name: str) -> None:
    """A compressed, zipped or UTF-16 file under a .csv name would otherwise read as a truncated or garbled CSV."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    for magic, what, fix in NOT_PLAIN_TEXT:
        if head.startswith(magic):
            raise DataError(f"{name} is not plain CSV text: it is {what}; {fix}")
    if b"\x00" in head:
        raise DataError(f"{name} is not plain CSV text: it holds NUL bytes (UTF-16 or a binary file); save it as CSV "
                        "in UTF-8, or download it again")


def check_not_truncated(path: Path, name: str) -> None:
    """Kaggle's CSV files end with a line break; one that does not was cut short, usually mid-row, and pandas
    would quietly fill the missing fields of its last row with NaN."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size == 0:
            return
        fh.seek(size - 1)
        if fh.read(1) in (b"\n", b"\r"):
            return
        fh.seek(0)
        lines = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))
    if lines == 0:
        return  # a header and no rows: the row-count check says so
    raise DataError(f"{name} ends mid-row at line {lines + 1} (no line break at its end): the file looks truncated - "
                    "download it again (if it is complete, add a line break at its end)")


def row_names(df: pd.DataFrame, mask, id_col: str | None = None, limit: int = 3) -> str:
    """'row 17 (PassengerId 18), row 40 (...)' for the first rows where ``mask`` holds (1-based, header excluded)."""
    positions = np.flatnonzero(np.asarray(mask))[:limit]
    parts = []
    for pos in positions:
        label = f"row {pos + 1}"
        if id_col is not None and id_col in df.columns:
            label += f" ({id_col} {df[id_col].iloc[pos]})"
        parts.append(label)
    return ", ".join(parts)


def require(df: pd.DataFrame, ok, name: str, column: str, rule: str, id_col: str | None = None) -> None:
    """Refuse a file where ``ok`` is false on some row, naming the file, column, rule and first bad rows."""
    bad = ~np.asarray(ok, dtype=bool)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(f"{name}: {column} must be {rule}; {row_names(df, bad, id_col)} "
                        f"({int(bad.sum())} row(s) in all; the first holds {cell(df[column].iloc[first])})")


def validate_frame(df: pd.DataFrame, spec: FileSpec, name: str) -> None:
    unnamed = [str(c) for c in df.columns if str(c).startswith("Unnamed: ")]
    if unnamed:  # a header cell left empty: what pandas' to_csv writes for its index unless told index=False
        raise DataError(f"{name} has a column with no name in its header (read as {unnamed[0]!r}); the competition's "
                        "files have none - remove it (pandas: save with to_csv(..., index=False))")
    missing = [c for c in spec.columns if c not in df.columns]
    if missing:
        shown = ", ".join(map(str, df.columns[:12])) + (" ..." if len(df.columns) > 12 else "")
        hint = _header_hint(df, missing)
        if hint:
            raise DataError(f"{name}: {hint}; it has: {shown}")
        raise DataError(f"{name} is missing column(s) {', '.join(missing)}; it has: {shown}")
    if len(df) < spec.min_rows:
        raise DataError(f"{name} has {len(df)} rows; expected at least {spec.min_rows}")
    id_col = spec.unique[0] if spec.unique else None
    for col, kind in spec.columns.items():
        _check_kind(df, col, kind, name, id_col)
    for prefix, kind in spec.column_prefixes.items():
        cols = [c for c in df.columns if str(c).startswith(prefix)]
        if not cols:
            raise DataError(f"{name} has no {prefix}* columns")
        for col in cols:
            _check_kind(df, col, kind, name, id_col)
    for col, (low, high) in spec.bounds.items():
        values = df[col]
        inside = values.isna() | ((values >= (-np.inf if low is None else low))
                                  & (values <= (np.inf if high is None else high)))
        rule = f"at least {low}" if high is None else f"at most {high}" if low is None else f"in {low}..{high}"
        require(df, inside, name, col, rule, id_col)
    for col in spec.unique:
        if df[col].is_unique:  # one pass over the hashes; the repeats are only looked for to be named
            continue
        dup = df[col].duplicated(keep=False)
        if dup.any():
            ids = pd.unique(df.loc[dup, col])
            raise DataError(f"{name}: {col} must be unique, but {len(ids)} value(s) appear more than once: "
                            f"{_few(ids)} ({row_names(df, dup)})")


def _header_hint(df: pd.DataFrame, missing: list[str]) -> str:
    """Why the expected columns are not there, where a re-saved file shows it: another separator (a spreadsheet's
    ';' or a tab), or names that differ only in case or spaces."""
    if len(df.columns) == 1 and (separator := _separator_hint(str(df.columns[0]))):
        return separator
    loose = {str(c).strip().lower(): str(c) for c in df.columns}
    close = [(loose[c.lower()], c) for c in missing if c.lower() in loose]
    if close:
        have, want = close[0]
        return f"column names must match exactly (case and spaces count): {have!r} should be {want!r}"
    return ""


def _separator_hint(header: str) -> str:
    """What to do when a header line is not separated by commas (a spreadsheet's ';' or a tab), else ""."""
    if "," in header:
        return ""
    for sep, called in ((";", "semicolons"), ("\t", "tabs"), ("|", "'|'")):
        if sep in header:
            return f"its columns are separated by {called}, not commas - save it as comma-separated CSV"
    return ""


def _check_kind(df: pd.DataFrame, col: str, kind: str, name: str, id_col: str | None) -> None:
    if kind == "str":  # an empty name, ticket or page would only fail later, inside a feature or a model
        require(df, df[col].notna(), name, col, "text on every row (no gaps)", id_col)
    if kind in ("any", "str"):
        return
    series = df[col]
    if not pd.api.types.is_numeric_dtype(series):
        numeric = pd.to_numeric(series, errors="coerce")
        require(df, numeric.notna() | series.isna(), name, col, "numeric", id_col)
        series = numeric
    # "inf" in a CSV reads as a number: it would pass ">= 0" and break a feature or a model far from here
    require(df, series.isna() | np.isfinite(series), name, col, "a finite number", id_col)
    if kind == "int":
        require(df, series.notna(), name, col, "a whole number on every row (no gaps)", id_col)
        require(df, series == series.round(), name, col, "a whole number", id_col)


def check_loaded(data: Data) -> Data:
    """Checks every competition gets after its own ``load``: test ids are exactly the sample submission's ids."""
    sample = data.sample_submission
    if data.id_col in sample.columns and data.id_col in data.test.columns:
        test_ids = pd.Index(data.test[data.id_col])
        sample_ids = pd.Index(sample[data.id_col])
        missing = sample_ids.difference(test_ids)
        extra = test_ids.difference(sample_ids)
        if len(missing) or len(extra):
            parts = [f"{len(missing)} sample-submission ids are not in test.csv (e.g. {_few(missing)})"
                     if len(missing) else "",
                     f"{len(extra)} test ids are not in the sample submission (e.g. {_few(extra)})"
                     if len(extra) else ""]
            raise DataError(f"test ids and sample-submission ids differ: {'; '.join(p for p in parts if p)}; "
                            "is a file truncated or from another competition? download it again")
    return data


def _few(values: Iterable, n: int = 3) -> str:
    return ", ".join(map(str, list(values)[:n]))
