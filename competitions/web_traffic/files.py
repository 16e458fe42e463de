"""Reading the competition's files at full size: one row per page and one column per day (float32, empty =
missing), and a key file of ``<page>_<YYYY-MM-DD>`` -> Id split with Arrow's string kernels (no per-row Python:
the real stage-1 key has 8.7 million rows).

Every file is checked before anything is trained or written; each failure is one line naming the file, the column
or row, and what to do. Stage 1 and stage 2 differ only in their file names; the horizon and the gap between the
last train day and the first forecast day are read off the key file, never assumed.
"""

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from common.competition import Data, DataFiles, FileSpec
from common.errors import DataError
from common.tables import read_table, require, row_names

log = logging.getLogger(__name__)

DATE_LENGTH = len("2016-11-02")
# <article>_<project>.<wikipedia|wikimedia|mediawiki>.org_<access>_<agent>; the article may itself hold "_"
PAGE_PATTERN = (r"^(?P<article>.*)_(?P<project>[^_]+\.(?:wikipedia|wikimedia|mediawiki)\.org)"
                r"_(?P<access>[^_]+)_(?P<agent>[^_]+)$")


@dataclass(frozen=True)
class Stage:
    train: str
    key: str
    sample: str

    @property
    def specs(self) -> dict[str, FileSpec]:
        return {self.train: FileSpec({"Page": "str"}, unique=("Page",)),
                self.key: FileSpec({"Page": "str", "Id": "str"}, unique=("Id",)),
                self.sample: FileSpec({"Id": "str", "Visits": "numeric"}, unique=("Id",))}


STAGES = {1: Stage("train_1.csv", "key_1.csv", "sample_submission_1.csv"),
          2: Stage("train_2.csv", "key_2.csv", "sample_submission_2.csv")}


def train_dates(columns: pd.Index, name: str) -> pd.DatetimeIndex:
    """The day columns after ``Page``: real dates, each the day after the one before (no gap, repeat or swap)."""
    days = [str(c) for c in columns[1:]]
    if not days:
        raise DataError(f"{name} has no day columns after Page")
    parsed = pd.to_datetime(pd.Series(days), format="%Y-%m-%d", errors="coerce")
    if parsed.isna().any():
        bad = days[int(np.flatnonzero(parsed.isna().to_numpy())[0])]
        hint = " (a repeated day: pandas renames the second copy)" if "." in bad else ""
        raise DataError(f"{name}: column {bad!r} is not a YYYY-MM-DD day{hint}; the day columns must be the "
                        "competition's consecutive days")
    steps = np.diff(parsed.to_numpy()).astype("timedelta64[D]").astype(int)
    if (steps != 1).any():  # a swap also looks like a skip; name the swap (or repeat) first
        i = int(np.flatnonzero(steps < 1)[0] if (steps < 1).any() else np.flatnonzero(steps != 1)[0])
        what = "repeats" if steps[i] == 0 else "comes before the column before it" if steps[i] < 0 else \
            f"skips {steps[i] - 1} day(s)"
        raise DataError(f"{name}: day column {days[i + 1]} (after {days[i]}) {what}; the day columns must be "
                        "consecutive days in order - download the file again")
    return pd.DatetimeIndex(parsed)


def read_train(files: DataFiles, name: str, spec: FileSpec) -> tuple[pd.DataFrame, pd.DatetimeIndex, np.ndarray]:
    """(pages with their project/access/agent, days, visits pages x days as float32)."""
    try:
        header = pd.read_csv(files.path(name), nrows=0).columns
    except (OSError, ValueError, UnicodeDecodeError):  # read_table below names the problem
        header = None
    if header is not None and len(header) > 1 and header[0] == "Page":
        dtypes = {c: np.float32 for c in header[1:]} | {"Page": str}
        frame = read_table(files, name, spec, dtype=dtypes)  # a day column with text is read plainly: named below
    else:
        frame = read_table(files, name, spec, dtype={"Page": str})
    dates = train_dates(frame.columns, name)
    values_frame = frame.iloc[:, 1:]
    for col in values_frame.columns:
        if not pd.api.types.is_numeric_dtype(values_frame[col]):
            numeric = pd.to_numeric(values_frame[col], errors="coerce")
            require(frame, numeric.notna() | values_frame[col].isna(), name, col, "a number of visits or empty",
                    "Page")
    values = values_frame.to_numpy(dtype=np.float32)
    # "inf" in the file, or a count beyond float32's 3.4e38, is infinite: no page has that many visits
    for bad, rule, what in ((values < 0, "counts >= 0", "negative"), (np.isinf(values), "finite counts", "such")):
        if bad.any():
            row, day = (int(v[0]) for v in np.nonzero(bad))
            raise DataError(f"{name}: visits must be {rule}; page {frame['Page'].iloc[row]!r} has "
                            f"{values[row, day]:g} on {dates[day].date()} ({int(bad.sum())} {what} value(s) in all) "
                            "- download the file again")
    fractional = ~np.isnan(values) & (values != np.round(values))
    if fractional.any():
        row, day = (int(v[0]) for v in np.nonzero(fractional))
        log.warning("%s: %d visit counts are not whole numbers (e.g. page %r on %s); using them as they are", name,
                    int(fractional.sum()), frame["Page"].iloc[row], dates[day].date())
    pages = frame[["Page"]].copy()
    del frame, values_frame
    return pages.assign(**page_parts(pages["Page"], name)), dates, values


def page_parts(pages: pd.Series, name: str) -> dict[str, pd.Categorical]:
    """project (language.wikipedia.org), access (all-access, desktop, mobile-web) and agent (all-agents, spider)
    of each page name; names in another shape get "unknown" (a warning says how many)."""
    parts = pc.extract_regex(arrow_text(pages), PAGE_PATTERN)
    out = {}
    for field in ("project", "access", "agent"):
        values = pc.struct_field(parts, field)
        out[field] = pd.Categorical(values.to_pandas().fillna("unknown"))
    odd = int(parts.null_count)
    if odd:
        log.warning("%s: %d page names are not <article>_<project>_<access>_<agent>; their project, access and "
                    "agent are 'unknown'", name, odd)
    return out


def arrow_text(column: pd.Series) -> pa.ChunkedArray:
    """A text column as Arrow text, pandas' own Arrow storage where it has one, not copied: through numpy it would
    be a Python string per row (the key's 9 million pages: 1.5 GB more at the peak of reading it)."""
    text = pa.array(column, type=pa.large_string())
    return text if isinstance(text, pa.ChunkedArray) else pa.chunked_array([text])


def read_key(files: DataFiles, name: str, spec: FileSpec, pages: pd.Series, dates: pd.DatetimeIndex
             ) -> tuple[pd.DataFrame, pd.DatetimeIndex]:
    """Key rows as (Id, series = row of the page in train or -1, day), and the forecast days (consecutive)."""
    key = read_table(files, name, spec, dtype=str)
    full = arrow_text(key["Page"])
    lengths = pc.utf8_length(full).to_numpy(zero_copy_only=False)
    separator = pc.utf8_slice_codeunits(full, -DATE_LENGTH - 1, -DATE_LENGTH)
    shaped = (lengths > DATE_LENGTH + 1) & pc.equal(separator, "_").to_numpy(zero_copy_only=False)
    require(key, shaped, name, "Page", "<page>_<YYYY-MM-DD>", "Id")
    day_text = pc.utf8_slice_codeunits(full, -DATE_LENGTH).combine_chunks().dictionary_encode()
    uniques = pd.to_datetime(pd.Series(day_text.dictionary.to_pylist()), format="%Y-%m-%d", errors="coerce")
    if uniques.isna().any():
        require(key, ~pd.isna(uniques.to_numpy()[day_text.indices.to_numpy()]), name, "Page",
                "<page>_<YYYY-MM-DD> with a real day", "Id")
    days_of_rows = pd.DatetimeIndex(uniques.to_numpy()[day_text.indices.to_numpy()])
    future = pd.DatetimeIndex(sorted(uniques.unique()))
    if len(future) > 1 and (np.diff(future.to_numpy()).astype("timedelta64[D]").astype(int) != 1).any():
        raise DataError(f"{name}: the forecast days are not consecutive ({future[0].date()} .. {future[-1].date()}, "
                        f"{len(future)} days); is the key file damaged? download it again")
    if future[0] <= dates[-1]:
        raise DataError(f"{name}: the key asks for {future[0].date()}, which is not after the last train day "
                        f"{dates[-1].date()}; the key and train files are from different stages")
    page_of_row = pc.utf8_slice_codeunits(full, 0, -DATE_LENGTH - 1)
    series = pc.index_in(page_of_row, value_set=arrow_text(pages))
    series = series.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
    per_page = np.bincount(series[series >= 0], minlength=len(pages))
    missing = np.flatnonzero(per_page == 0)
    if len(missing):
        raise DataError(f"{name} asks for no forecast of {len(missing)} train page(s), e.g. "
                        f"{pages.iloc[missing[0]]!r}; the key and train files do not match - are they from the same "
                        "stage? download them again")
    incomplete = np.flatnonzero(per_page != len(future))
    if len(incomplete):
        raise DataError(f"{name}: page {pages.iloc[incomplete[0]]!r} has {per_page[incomplete[0]]} key rows, not one "
                        f"per forecast day ({len(future)}); {len(incomplete)} page(s) in all - is the key damaged?")
    unknown = series < 0
    if unknown.any():
        first = page_of_row[int(np.flatnonzero(unknown)[0])].as_py()
        log.warning("%s: %d key rows (%d page(s), e.g. %r) name pages that are not in train; they are forecast as 0 "
                    "visits", name, int(unknown.sum()), len(pc.unique(page_of_row.filter(pa.array(unknown)))), first)
    del full, key["Page"]
    return pd.DataFrame({"Id": key["Id"].array, "series": series, "day": days_of_rows}), future


def check_sample(sample: pd.DataFrame, key: pd.DataFrame, name: str, key_name: str) -> None:
    """The sample submission lists exactly the key's Ids (in any order)."""
    if len(sample) != len(key) or not pd.Index(sample["Id"]).equals(pd.Index(key["Id"])):
        extra = pd.Index(sample["Id"]).difference(pd.Index(key["Id"]))
        missing = pd.Index(key["Id"]).difference(pd.Index(sample["Id"]))
        if len(extra) or len(missing):
            raise DataError(f"{name} and {key_name} list different Ids ({len(missing)} key Ids not in the sample, "
                            f"{len(extra)} sample Ids not in the key, e.g. "
                            f"{(list(missing) + list(extra))[0]!r}); download both again")


def load_stage(files: DataFiles, stage: Stage) -> Data:
    specs = stage.specs
    pages, dates, values = read_train(files, stage.train, specs[stage.train])
    key, future = read_key(files, stage.key, specs[stage.key], pages["Page"], dates)
    sample = read_table(files, stage.sample, specs[stage.sample], dtype={"Id": str})
    check_sample(sample, key, stage.sample, stage.key)
    empty = np.isnan(values).all(axis=1)
    if empty.any():
        log.info("%s: %d pages have no visits recorded at all (%s); they are forecast as 0", stage.train,
                 int(empty.sum()), row_names(pages, empty, "Page", limit=2))
    log.info("%s: %d pages x %d days (%s .. %s), %.1f%% missing; forecast %d days from %s (gap %d)", stage.train,
             len(pages), len(dates), dates[0].date(), dates[-1].date(), 100 * np.isnan(values).mean(), len(future),
             future[0].date(), (future[0] - dates[-1]).days - 1)
    return Data(train=pages, test=key, sample_submission=sample, target="Visits", id_col="Page",
                extras={"dates": dates, "future": future}, labels=values)
