"""Titanic features that need no labels; label-based ones (group survival) are fitted per fold in recipes.py."""

import numpy as np
import pandas as pd

TITLES = {
    "Mr": "Mr", "Mrs": "Mrs", "Miss": "Miss", "Master": "Master", "Mlle": "Miss", "Ms": "Miss", "Mme": "Mrs",
    "Lady": "Mrs", "the Countess": "Mrs", "Dona": "Mrs", "Sir": "Mr", "Don": "Mr", "Jonkheer": "Mr",
    "Dr": "Rare", "Rev": "Rare", "Col": "Rare", "Major": "Rare", "Capt": "Rare",
}
CATEGORICAL = ["Sex", "Title", "Embarked", "Deck"]
NUMERIC = ["Pclass", "Age", "SibSp", "Parch", "FamilySize", "TicketCount", "LogFarePerPerson", "AgeMissing",
           "IsWomanOrChild"]
GROUPS = ["FamilyKey", "TicketKey"]


def title(names: pd.Series) -> pd.Series:
    raw = names.str.extract(r",\s*([^.]*)\.", expand=False).str.strip()
    return raw.map(TITLES).fillna("Rare")


def build(train: pd.DataFrame, test: pd.DataFrame, target: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features for train and test. Counts (ticket sizes) use both files' passenger lists - no labels involved -
    because a test passenger's travelling party is visible in the competition data."""
    full = pd.concat([train.drop(columns=[target]), test], ignore_index=True)
    out = pd.DataFrame(index=full.index)
    out["Pclass"] = full["Pclass"].astype(int)
    out["Sex"] = full["Sex"].astype(str)
    out["Title"] = title(full["Name"].astype(str))
    # A female "Dr" or "Rev" is a woman for the women-and-children rule.
    out.loc[(out["Title"] == "Rare") & (out["Sex"] == "female"), "Title"] = "Mrs"
    out["Age"] = full["Age"].astype(float)
    out["AgeMissing"] = full["Age"].isna().astype(int)
    out["SibSp"] = full["SibSp"].astype(int)
    out["Parch"] = full["Parch"].astype(int)
    out["FamilySize"] = out["SibSp"] + out["Parch"] + 1
    ticket = full["Ticket"].astype(str).str.strip()
    out["TicketCount"] = ticket.map(ticket.value_counts()).astype(int)
    fare = full["Fare"].astype(float)
    out["LogFarePerPerson"] = np.log1p(fare / out["TicketCount"])
    out["Embarked"] = full["Embarked"].fillna("S").astype(str)
    deck = full["Cabin"].astype("string").str[0].fillna("U")
    out["Deck"] = deck.replace({"T": "U"}).astype(str)
    out["IsWomanOrChild"] = ((out["Sex"] == "female") | (out["Title"] == "Master")).astype(int)
    surname = full["Name"].astype(str).str.split(",").str[0].str.strip()
    # Families: same surname travelling on (almost) the same ticket, class, port and fare.
    out["FamilyKey"] = (surname + "|" + out["Pclass"].astype(str) + "|" + ticket.str[:-1] + "|"
                        + out["Embarked"] + "|" + fare.round(2).astype(str))
    out["TicketKey"] = ticket
    n = len(train)
    return out.iloc[:n].reset_index(drop=True), out.iloc[n:].reset_index(drop=True)
