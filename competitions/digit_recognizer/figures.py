"""What the digit model gets wrong, as pictures for the report: the out-of-fold confusion matrix and the most
confidently wrong held-out digits (image, true label, predicted label)."""

from typing import Any

import numpy as np
import pandas as pd

from common import plotting

SIDE = 28


def confusion(oof: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(confusion counts 10x10, true labels, predicted labels) over the rows a fold validated."""
    proba = oof[[f"oof_{k}" for k in range(10)]].to_numpy()
    scored = ~np.isnan(proba).all(axis=1)
    truth, predicted = oof["target"].to_numpy()[scored], proba[scored].argmax(axis=1)
    counts = np.zeros((10, 10), dtype=int)
    np.add.at(counts, (truth, predicted), 1)
    return counts, truth, predicted


def most_confidently_wrong(oof: pd.DataFrame, n: int = 24) -> pd.DataFrame:
    proba = oof[[f"oof_{k}" for k in range(10)]].to_numpy()
    scored = ~np.isnan(proba).all(axis=1)
    predicted = np.where(scored, np.nan_to_num(proba).argmax(axis=1), -1)
    wrong = scored & (predicted != oof["target"].to_numpy())
    table = pd.DataFrame({"row": np.flatnonzero(wrong), "truth": oof["target"].to_numpy()[wrong],
                          "predicted": predicted[wrong], "confidence": np.nan_to_num(proba)[wrong].max(axis=1)})
    return table.sort_values("confidence", ascending=False).head(n)


def figures(run: Any, images: np.ndarray | None = None) -> list[tuple[str, Any]]:
    """The two pictures of a run; ``images`` (train pixels, n x 784) are loaded when not given."""
    plt = plotting.pyplot()

    oof = pd.read_parquet(run.path / "oof.parquet")
    counts, truth, predicted = confusion(oof)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    shown = counts.astype(float)
    np.fill_diagonal(shown, np.nan)  # the diagonal would drown the errors
    ax.imshow(shown, cmap="Reds")
    darkest = np.nanmax(shown) if np.isfinite(shown).any() else 0
    for i in range(10):
        for j in range(10):
            dark = i != j and darkest > 0 and counts[i, j] > darkest / 2
            ax.text(j, i, counts[i, j], ha="center", va="center", fontsize=7,
                    color="grey" if i == j else "white" if dark else "black")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{int((truth != predicted).sum())} errors in {len(truth)} held-out digits")
    out = [("Out-of-fold confusion matrix", fig)]

    if images is None:
        from common import data
        from competitions.digit_recognizer import COMPETITION, PIXELS

        images = data.load(COMPETITION, used_by=run.data)[1].train[PIXELS].to_numpy(np.uint8)
    wrong = most_confidently_wrong(oof)
    if len(wrong):
        cols = 8
        rows = int(np.ceil(len(wrong) / cols))
        fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 1.45))
        for ax in np.atleast_1d(axes).ravel():
            ax.axis("off")
        for ax, (_, r) in zip(np.atleast_1d(axes).ravel(), wrong.iterrows(), strict=False):
            ax.imshow(images[int(r["row"])].reshape(SIDE, SIDE), cmap="gray_r")
            ax.set_title(f"true {int(r['truth'])} / {int(r['predicted'])}\n{r['confidence']:.2f}", fontsize=7)
        out.append(("Most confidently wrong held-out digits (true / predicted, confidence)", fig))
    return out
