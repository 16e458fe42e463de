"""Damaged copies of a competition's real files, made with a fixed seed: what a bad download, a bad edit or a
wrong file does to a user's input. Each copy is the whole file set with one thing broken, delivered as a folder
or as the competition zip (so the cache's protection is exercised too)."""

import io
import random
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass
class Copy:
    kind: str  # what was broken, e.g. "truncate train.csv"
    files: dict[str, bytes]  # file name -> content (a damaged zip carries its bytes in zip_bytes instead)
    as_zip: bool
    zip_bytes: bytes | None = None


def _read(blob: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(blob), dtype=str, keep_default_na=False)


def _write(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False, lineterminator="\n").encode("utf-8")


def truncate(rng: random.Random, blob: bytes) -> bytes:
    return blob[: rng.randrange(1, len(blob) - 1)]


def drop_column(rng: random.Random, blob: bytes) -> bytes:
    df = _read(blob)
    return _write(df.drop(columns=[rng.choice(list(df.columns))]))


def non_numeric(rng: random.Random, blob: bytes) -> bytes:
    df = _read(blob)
    numeric = [c for c in df.columns if pd.to_numeric(df[c].replace("", None), errors="coerce").notna().mean() > 0.9]
    col = rng.choice(numeric or list(df.columns))
    df.loc[rng.randrange(len(df)), col] = rng.choice(["abc", "1,5", "n/a", "--"])
    return _write(df)


def out_of_range(rng: random.Random, blob: bytes) -> bytes:
    df = _read(blob)
    numeric = [c for c in df.columns if pd.to_numeric(df[c].replace("", None), errors="coerce").notna().mean() > 0.9]
    col = rng.choice(numeric or list(df.columns))
    df.loc[rng.randrange(len(df)), col] = rng.choice(["-1", "-99999", "1e12", "2", "0.5", ""])
    return _write(df)


def duplicate_id(rng: random.Random, blob: bytes) -> bytes:
    df = _read(blob)
    a, b = rng.sample(range(len(df)), 2)
    df.iloc[[b], 0] = df.iloc[[a], 0].to_numpy()  # the id is the first column of every competition file here
    return _write(df)


def shuffle_rows(rng: random.Random, blob: bytes) -> bytes:
    df = _read(blob)
    return _write(df.sample(frac=1.0, random_state=rng.randrange(10**6)))


def break_encoding(rng: random.Random, blob: bytes) -> bytes:
    at = rng.randrange(len(blob) // 4, len(blob))
    return blob[:at] + rng.choice([b"\xff\xfe", b"\xc3", b"\x80\x81"]) + blob[at:]


def empty(rng: random.Random, blob: bytes) -> bytes:
    return b""


def header_only(rng: random.Random, blob: bytes) -> bytes:
    return blob.split(b"\n", 1)[0] + b"\n"


FILE_DAMAGE: dict[str, Callable[[random.Random, bytes], bytes]] = {
    "truncate": truncate, "drop-column": drop_column, "non-numeric": non_numeric, "out-of-range": out_of_range,
    "duplicate-id": duplicate_id, "shuffle-rows": shuffle_rows, "break-encoding": break_encoding, "empty": empty,
    "header-only": header_only,
}


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, blob in files.items():
            zf.writestr(name, blob)
    return buffer.getvalue()


def damaged_zips(rng: random.Random, files: dict[str, bytes]) -> list[Copy]:
    whole = zip_of(files)
    flipped = bytearray(whole)
    for _ in range(8):
        at = rng.randrange(64, len(flipped))
        flipped[at] ^= 0xFF
    missing = dict(files)
    missing.pop(rng.choice([n for n in files if n.endswith(".csv")]))
    return [
        Copy("zip truncated", files, True, whole[: rng.randrange(100, len(whole) - 10)]),
        Copy("zip bytes flipped", files, True, bytes(flipped)),
        Copy("zip missing a file", missing, True, zip_of(missing)),
        Copy("zip with ../ member", files, True, zip_of({**files, "../evil.csv": b"x\n"})),
    ]


def copies(folder: Path, n: int, seed: int = 0) -> list[Copy]:
    """``n`` damaged copies of the competition files in ``folder`` (plus the damaged zips), reproducible by seed."""
    rng = random.Random(seed)
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
    csvs = [name for name in files if name.endswith(".csv")]
    made = damaged_zips(rng, files)
    kinds = list(FILE_DAMAGE)
    for i in range(n):
        kind = kinds[i % len(kinds)]
        name = rng.choice(csvs)
        changed = dict(files)
        changed[name] = FILE_DAMAGE[kind](rng, files[name])
        made.append(Copy(f"{kind} {name}", changed, as_zip=rng.random() < 0.5))
    return made
