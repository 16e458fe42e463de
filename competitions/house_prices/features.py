"""House Prices features that need no labels. Label-based ones (neighbourhood price level) and anything learnt
from the data's distribution (imputation, skew correction, scaling) are fitted per fold in recipes.py."""

import re

import numpy as np
import pandas as pd

QUALITY = {"Ex": 5, "Gd": 4, "TA": 3, "Fa": 2, "Po": 1, "None": 0}
ORDINAL: dict[str, dict[str, int]] = {
    **{c: QUALITY for c in ("ExterQual", "ExterCond", "BsmtQual", "BsmtCond", "HeatingQC", "KitchenQual",
                            "FireplaceQu", "GarageQual", "GarageCond", "PoolQC")},
    "BsmtExposure": {"Gd": 4, "Av": 3, "Mn": 2, "No": 1, "None": 0},
    "BsmtFinType1": {"GLQ": 6, "ALQ": 5, "BLQ": 4, "Rec": 3, "LwQ": 2, "Unf": 1, "None": 0},
    "BsmtFinType2": {"GLQ": 6, "ALQ": 5, "BLQ": 4, "Rec": 3, "LwQ": 2, "Unf": 1, "None": 0},
    "GarageFinish": {"Fin": 3, "RFn": 2, "Unf": 1, "None": 0},
    "Functional": {"Typ": 7, "Min1": 6, "Min2": 5, "Mod": 4, "Maj1": 3, "Maj2": 2, "Sev": 1, "Sal": 0},
    "CentralAir": {"Y": 1, "N": 0},
    "PavedDrive": {"Y": 2, "P": 1, "N": 0},
    "LotShape": {"Reg": 3, "IR1": 2, "IR2": 1, "IR3": 0},
    "LandSlope": {"Gtl": 2, "Mod": 1, "Sev": 0},
    "Fence": {"GdPrv": 4, "MnPrv": 3, "GdWo": 2, "MnWw": 1, "None": 0},
}
# Areas and counts that are missing (in test.csv) only because the house has no basement / garage / veneer.
ZERO_WHEN_ABSENT = {
    "BsmtQual": ["BsmtFinSF1", "BsmtFinSF2", "BsmtUnfSF", "TotalBsmtSF", "BsmtFullBath", "BsmtHalfBath"],
    "GarageType": ["GarageCars", "GarageArea"],
    "MasVnrType": ["MasVnrArea"],
}
PORCHES = ["OpenPorchSF", "EnclosedPorch", "3SsnPorch", "ScreenPorch", "WoodDeckSF"]
# For the linear members only (trees split on any monotone transform already): log price rises faster than linearly
# in quality and size, and quality multiplies what size, garage and baths are worth (BENCHMARKS.md, House Prices).
SQUARED = ["OverallQual", "GrLivArea", "TotalSF", "GarageCars", "TotalBaths", "ExterQual", "KitchenQual", "BsmtQual",
           "YearBuilt", "QualityArea"]
TIMES_QUALITY = {"QualTotalSF": "TotalSF", "QualGarage": "GarageCars", "QualBaths": "TotalBaths"}


def none_columns(description: str) -> set[str]:
    """Columns whose data description lists ``NA`` as a value ("No Basement", "No Pool"...): there NA means
    "none", not "unknown"."""
    columns, current = set(), None
    for line in description.splitlines():
        header = re.match(r"^(\w+):\s", line)
        if header:
            current = header.group(1)
        elif current and line.strip().split("\t")[0].strip() == "NA":
            columns.add(current)
    return columns


def build(train: pd.DataFrame, test: pd.DataFrame, none_cols: set[str], target: str, id_col: str
          ) -> tuple[pd.DataFrame, pd.DataFrame]:
    full = pd.concat([train.drop(columns=[target]), test], ignore_index=True).drop(columns=[id_col])
    for col in none_cols & set(full.columns):
        if not pd.api.types.is_numeric_dtype(full[col]):
            full[col] = full[col].fillna("None")
    # MasVnrType's NA is truly missing in the file, but its area tells: no area means no veneer.
    full.loc[full["MasVnrType"].isna() & full["MasVnrArea"].isna(), "MasVnrType"] = "None"
    for flag, cols in ZERO_WHEN_ABSENT.items():
        absent = full[flag] == "None"
        for col in cols:
            full.loc[absent & full[col].isna(), col] = 0
    full["GarageYrBlt"] = full["GarageYrBlt"].fillna(full["YearBuilt"])

    for col, mapping in ORDINAL.items():
        full[col] = full[col].map(mapping).astype(float)  # unseen or missing -> NaN, imputed per fold

    full["MSSubClass"] = "MS" + full["MSSubClass"].astype(str)
    full["TotalSF"] = full["TotalBsmtSF"] + full["1stFlrSF"] + full["2ndFlrSF"]
    full["TotalBaths"] = (full["FullBath"] + 0.5 * full["HalfBath"] + full["BsmtFullBath"]
                          + 0.5 * full["BsmtHalfBath"])
    full["TotalPorchSF"] = full[PORCHES].sum(axis=1)
    full["HouseAge"] = full["YrSold"] - full["YearBuilt"]
    full["YearsSinceRemodel"] = full["YrSold"] - full["YearRemodAdd"]
    full["Remodeled"] = (full["YearRemodAdd"] != full["YearBuilt"]).astype(int)
    full["QualityArea"] = full["OverallQual"] * full["GrLivArea"]
    full["QualityCondition"] = full["OverallQual"] * full["OverallCond"]
    full["HasBasement"] = (full["TotalBsmtSF"] > 0).astype(int)
    full["HasGarage"] = (full["GarageArea"] > 0).astype(int)
    full["HasSecondFloor"] = (full["2ndFlrSF"] > 0).astype(int)
    full["HasPool"] = (full["PoolArea"] > 0).astype(int)
    full["HasFireplace"] = (full["Fireplaces"] > 0).astype(int)
    full["LogLotArea"] = np.log1p(full["LotArea"])
    # The data's author warns of partial sales of very large new houses that "likely don't represent actual market
    # values". Flagged (no label involved), a linear model learns their discount instead of bending every slope.
    full["HugePartialSale"] = ((full["GrLivArea"] > 4000) & (full["SaleCondition"] == "Partial")).astype(int)
    full["NeighborhoodKey"] = full["Neighborhood"]  # consumed by the out-of-fold neighbourhood price level
    for col in full.columns:
        if not pd.api.types.is_numeric_dtype(full[col]):
            full[col] = full[col].fillna("Missing").astype(str)
    full = full.drop(columns=["Utilities", "Street", "PoolQC"])  # (almost) constant in train
    n = len(train)
    return full.iloc[:n].reset_index(drop=True), full.iloc[n:].reset_index(drop=True)


def polynomial(X: pd.DataFrame) -> pd.DataFrame:
    """Squares and quality interactions for linear models, computed row by row (no fitting: safe in any fold)."""
    out = X.copy()
    for col in SQUARED:
        out[f"{col}_sq"] = out[col].astype(float) ** 2  # a gap stays a gap, imputed per fold
    for name, col in TIMES_QUALITY.items():
        out[name] = out["OverallQual"] * out[col].fillna(0)
    return out
