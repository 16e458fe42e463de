"""The shared spine: data, folds, cross-validation, features, run records, submissions."""
