#!/usr/bin/env python
"""Remove the runs of a competition you will not come back to: runs are never overwritten, so they pile up (a
full-size Web Traffic run holds hundreds of MB). Kept: the best --keep runs by CV on each fold assignment, every
run submitted to Kaggle, and the newest run. Without --yes nothing is removed: the command lists what would go.

    python scripts/prune.py web-traffic              # list what would be removed, and the space it would free
    python scripts/prune.py web-traffic --yes        # remove it
    python scripts/prune.py titanic --keep 1 --yes   # only the best run of each fold assignment (and the above)
"""


import _checkout  # noqa: F401  (the code beside this script, wherever the .venv was made)

import competitions
from common import paths, prune
from common.cli import Parser, parse_args, positive_arg, run_main
from common.runs import load_runs


def main() -> int:
    parser = Parser(__doc__)
    parser.add_argument("competition", help=f"one of: {', '.join(competitions.names())}")
    parser.add_argument("--keep", type=positive_arg, default=3,
                        help="best runs by CV to keep on each fold assignment (default 3)")
    parser.add_argument("--yes", action="store_true", help="remove the runs listed (default: only list them)")
    args = parse_args(parser)
    comp = competitions.get(args.competition)
    for note in (prune.download_note(comp), prune.resume_note(comp)):
        if note is not None:  # not a run: said, never removed here
            print(note)
    records = load_runs(comp.name)
    chosen = prune.plan(records, comp.metric, args.keep)
    if not records:
        print(f"{comp.name}: no runs yet")
        return 0
    if not chosen.remove:
        print(f"{comp.name}: nothing to remove ({len(records)} run(s), all kept)")
        return 0
    sizes = {r.run_id: prune.folder_bytes(r.folder) for r in chosen.remove}
    print(f"{comp.name}: {len(chosen.keep)} run(s) kept, {len(chosen.remove)} to remove "
          f"({prune.size_text(sum(sizes.values()))}), {comp.metric.name} {comp.metric.direction_in_words}")
    kept = [record for record in records if record.run_id in chosen.keep]
    for record in comp.metric.rank(kept, lambda r: r.cv["mean"]):  # best CV first, as the runs to remove
        print(f"  keep    {record.cv_text():>22}  {record.recipe:<12} {record.run_id}  "
              f"({chosen.reasons(record.run_id)})")
    for record in chosen.remove:
        print(f"  remove  {record.cv_text():>22}  {record.recipe:<12} {record.run_id}  "
              f"({prune.size_text(sizes[record.run_id])})")
    if not args.yes:
        print(f"nothing removed yet: python scripts/prune.py {comp.name} --keep {args.keep} --yes removes them")
        return 0
    freed = prune.remove(chosen.remove)
    print(f"removed {len(chosen.remove)} run(s) from {paths.shown(paths.runs_dir(comp.name))}/, "
          f"{prune.size_text(freed)} freed")
    return 0


if __name__ == "__main__":
    run_main(main)
