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

# Kaggle's name of each competition whose CLI name differs (its URL, the `kaggle` client's -c): said in the error
# line, not taken as a second name, so runs, folds and submissions stay under one name each. A test checks it
# against each package's slug.
KAGGLE_SLUGS: dict[str, str] = {
    "house-prices-advanced-regression-techniques": "house-prices",
    "nlp-getting-started": "disaster-tweets",
    "web-traffic-time-series-forecasting": "web-traffic (stage 1) or web-traffic-stage2",
}


def names() -> list[str]:
    return list(REGISTRY)


def get(name: str) -> Competition:
    if name not in REGISTRY:
        ours = KAGGLE_SLUGS.get(str(name).lower())
        hint = f" (that is Kaggle's name; here it is {ours})" if ours else did_you_mean(name, REGISTRY)
        raise UsageError(f"unknown competition {name!r}{hint}; choose one of: {', '.join(REGISTRY)}")
    return importlib.import_module(REGISTRY[name]).COMPETITION
