"""Torch: the generic estimator (scikit-learn contract) and its training loop with checkpoints and resume."""
