"""Text: cached sentence embeddings, offline backbone resolution, transformer fine-tuning, F1 thresholds."""
