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
        raise UsageError(f"unknown competition {name!r}{did_you_mean(name, REGISTRY)}; choose one of: "
                         f"{', '.join(REGISTRY)}")
    return importlib.import_module(REGISTRY[name]).COMPETITION
