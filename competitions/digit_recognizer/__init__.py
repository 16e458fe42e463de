"""Digit Recognizer: which digit (0-9) is each 28x28 MNIST image? Multiclass, accuracy.

train.csv is ``label, pixel0..pixel783`` (row-major 28x28, 0-255); test.csv the pixels alone; the submission is
``ImageId,Label`` where ImageId is the 1-based row number of test.csv.
"""

import numpy as np
import pandas as pd

from common.competition import ColumnKind, Competition, Data, DataFiles, FileSpec, LazyRecipes, SubmissionSpec
from common.drift import DriftView, tabular_view
from common.errors import DataError
from common.metrics import ACCURACY
from common.splitters import RowFolds
from common.tables import read_table
from competitions.digit_recognizer import figures

ID, TARGET = "ImageId", "label"  # stated once; ImageId is a row number (train rows get one too, for the folds)
SIDE = 28
PIXELS = [f"pixel{i}" for i in range(SIDE * SIDE)]
PIXEL_SPEC: dict[str, ColumnKind] = {p: "int" for p in PIXELS}
PIXEL_BOUNDS = {p: (0, 255) for p in PIXELS}
FILES = {
    "train.csv": FileSpec({TARGET: "int", **PIXEL_SPEC}, bounds={TARGET: (0, 9), **PIXEL_BOUNDS}),
    "test.csv": FileSpec(PIXEL_SPEC, bounds=PIXEL_BOUNDS),
    "sample_submission.csv": FileSpec({ID: "int", "Label": "int"}, unique=(ID,)),
}
READ = {"dtype": "float32"}  # read compactly; the checks then prove every value is a whole number in 0..255


def _exact_columns(df: pd.DataFrame, name: str, expected: list[str]) -> None:
    extra = [c for c in df.columns if c not in expected]
    if extra:
        hint = " (test.csv must not have a label column)" if TARGET in extra and name == "test.csv" else ""
        raise DataError(f"{name} has unexpected column(s) {', '.join(map(str, extra[:5]))}{hint}; expected "
                        f"{expected[0]}, ..., {expected[-1]}")
    if list(df.columns) != expected:
        raise DataError(f"{name}: columns are not in the order {expected[0]}, {expected[1]}, ..., {expected[-1]}")


def _with_ids(frame: pd.DataFrame) -> pd.DataFrame:
    """ImageId 1..n in front. Not ``insert``: a small file is parsed into one block per column (pandas' C parser
    joins its blocks only when it reads in several chunks), and inserting into 785 blocks warns of fragmentation."""
    return pd.concat([pd.DataFrame({ID: np.arange(1, len(frame) + 1)}, index=frame.index), frame], axis=1)


def load(files: DataFiles) -> Data:
    train = read_table(files, "train.csv", FILES["train.csv"], **READ)
    test = read_table(files, "test.csv", FILES["test.csv"], **READ)
    sample = read_table(files, "sample_submission.csv", FILES["sample_submission.csv"])
    _exact_columns(train, "train.csv", [TARGET, *PIXELS])
    _exact_columns(test, "test.csv", PIXELS)
    train, test = _with_ids(train), _with_ids(test)
    train[TARGET] = train[TARGET].astype(np.int64)
    return Data(train=train, test=test, sample_submission=sample, target=TARGET, id_col=ID)


def make_features(data: Data) -> tuple[np.ndarray, np.ndarray]:
    """Pixels as uint8 images (n, 784): 33 MB for train instead of 260 MB of float64."""
    return data.train[PIXELS].to_numpy(np.uint8), data.test[PIXELS].to_numpy(np.uint8)


def decode(proba: np.ndarray) -> np.ndarray:
    return np.asarray(proba).argmax(axis=1)


def drift_view(data: Data, X: np.ndarray, X_test: np.ndarray) -> DriftView:
    """Images as 7 x 7 blocks of mean ink (4 x 4 pixels each) and total ink: enough to see a shift in how digits
    are drawn or placed, at 50 features instead of 784."""
    def blocks(images: np.ndarray) -> pd.DataFrame:
        ink = images.reshape(-1, 7, 4, 7, 4).astype(np.float32).mean(axis=(2, 4)).reshape(len(images), 49)
        frame = pd.DataFrame(ink, columns=[f"ink r{r} c{c}" for r in range(7) for c in range(7)])
        frame["ink total"] = ink.sum(axis=1)
        return frame

    return tabular_view(blocks(X), blocks(X_test), rows="images")


def pixel_blocks(n_columns: int, side: int = 28, block: int = 7) -> dict[str, np.ndarray]:
    """The image as a 4 x 4 grid of 7 x 7-pixel blocks, each shuffled as one feature by permutation importance: a CNN
    shrugs off one wrong pixel, and 16 features keep the measurement within its time budget."""
    if n_columns != side * side:
        raise ValueError(f"expected {side * side} pixel columns, got {n_columns}")
    index = np.arange(n_columns).reshape(side, side)
    return {f"pixels rows {r}-{r + block - 1} cols {c}-{c + block - 1}": index[r:r + block, c:c + block].ravel()
            for r in range(0, side, block) for c in range(0, side, block)}


COMPETITION = Competition(
    name="digit-recognizer",
    slug="digit-recognizer",
    task="multiclass",
    metric=ACCURACY,
    files=FILES,
    load=load,
    features=make_features,
    folds=RowFolds("stratified"),
    recipes=LazyRecipes(f"{__name__}.recipes"),
    submission=SubmissionSpec("sample_submission.csv", id_col=ID, value_col="Label", dtype="int",
                              allowed=tuple(range(10))),
    decode=decode,
    figures=lambda run: figures.figures(run),
    drift=drift_view,
    importance_groups=pixel_blocks,
)
