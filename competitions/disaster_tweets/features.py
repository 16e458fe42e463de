"""Tweet cleaning that keeps the signal: URLs, mentions and numbers become tokens (their presence matters, their
exact value rarely does), hashtags keep their word, HTML entities are decoded, keyword and location are kept."""

import html
import re
from urllib.parse import unquote

import pandas as pd

URL = re.compile(r"https?://\S+|www\.\S+")
MENTION = re.compile(r"@\w+")
HASHTAG = re.compile(r"#(\w+)")
NUMBER = re.compile(r"\b\d+(?:[.,:]\d+)*\b")
SPACES = re.compile(r"\s+")
MAX_CHARS = 1000  # a tweet is at most 280 characters; anything longer is truncated, not fed whole to the models


def clean(text: str) -> str:
    text = html.unescape(str(text))[:MAX_CHARS]
    text = URL.sub(" url ", text)
    text = MENTION.sub(" @user ", text)
    text = HASHTAG.sub(r" # \1 ", text)
    text = NUMBER.sub(" 0 ", text)
    text = SPACES.sub(" ", text).strip()
    return text or "empty"


def keyword(values: pd.Series) -> pd.Series:
    return values.fillna("").astype(str).map(unquote).str.strip().replace("", "none")


def duplicate_key(texts: pd.Series) -> pd.Series:
    """Tweets that are the same after cleaning and lower-casing: one group, so CV never splits them."""
    return texts.fillna("").astype(str).map(clean).str.lower().str.replace(r"[^a-z0-9 ]", "", regex=True)


def build(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    out["clean_text"] = frame["text"].fillna("").astype(str).map(clean)
    out["keyword"] = keyword(frame["keyword"])
    out["has_location"] = frame["location"].notna().astype(int)
    # What the pretrained models read: the keyword gives context the tweet may not spell out.
    out["model_text"] = out["keyword"].where(out["keyword"] != "none", "") + " | " + out["clean_text"]
    out["duplicate_key"] = duplicate_key(frame["text"])  # repeats of a labelled tweet take its label (recipes.py)
    return out
