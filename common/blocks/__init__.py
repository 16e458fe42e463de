"""Building blocks that only some competitions use: tabular transformers, text models, torch networks.

The core of ``common/`` (spec, data, splitters, CV, runs, submissions, runner, tuning, report, Kaggle client) never
imports these; a competition package picks the ones it needs.
"""
