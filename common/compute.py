"""How many CPU threads a model may use: all cores, unless ``KIT_THREADS`` says otherwise (the tuning layer sets it
so K parallel workers share the cores instead of each grabbing all of them)."""

import os


def n_threads() -> int:
    value = os.environ.get("KIT_THREADS")
    return max(1, int(value)) if value else (os.cpu_count() or 1)
