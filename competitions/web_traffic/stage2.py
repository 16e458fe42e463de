"""Stage 2 of Web Traffic: ``train_2.csv`` / ``key_2.csv``, whose forecast starts two days after train ends (the
gap and horizon are read off the key file)."""

from competitions.web_traffic import SLUG, STAGE2, STAGES, make

COMPETITION = make(STAGES[2], STAGE2, default_folds=5, cache_name=STAGE2, shares_download_with=(("web-traffic", SLUG),))
