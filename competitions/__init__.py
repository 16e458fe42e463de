"""Registry of competition packages: CLI name -> module holding ``COMPETITION``.

Packages are imported only when asked for, so a text or image package's heavy imports never slow the others.
"""

import importlib

from common.competition import Competition
from common.errors import UsageError, did_you_mean

REGISTRY: dict[str, str] = {
    "titanic": "competitions.titanic",
    "house-prices": "competitions.house_prices",
    "disaster-tweets": "competitions.disaster_tweets",
    "digit-recognizer": "competitions.digit_recognizer",
    "web-traffic": "competitions.web_traffic",
    "web-traffic-stage2": "competitions.web_traffic.stage2",
}


def names() -> list[str]:
    return list(REGISTRY)


def get(name: str) -> Competition:
    if name not in REGISTRY:
        ours = named_on_kaggle(name)
        hint = f" (that is Kaggle's name; here it is {' or '.join(ours)})" if ours else did_you_mean(name, REGISTRY)
        raise UsageError(f"unknown competition {name!r}{hint}; choose one of: {', '.join(REGISTRY)}")
    return importlib.import_module(REGISTRY[name]).COMPETITION


def named_on_kaggle(slug: str) -> list[str]:
    """The competitions Kaggle calls ``slug`` (its URL, the `kaggle` client's -c): said in the error line, not taken
    as a second name, so runs, folds and submissions stay under one name each."""
    return [name for name in REGISTRY if get(name).slug == str(slug).lower()]
