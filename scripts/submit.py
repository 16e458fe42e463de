#!/usr/bin/env python
"""Submit a run's validated submission to Kaggle, wait for its leaderboard score and print it.

    python scripts/submit.py house-prices                 # the best run by CV; waits for the score
    python scripts/submit.py titanic --run 20261122-2130  # a given run (a unique prefix of its id)
    python scripts/submit.py titanic --dry-run            # validate and show what would be sent
    python scripts/submit.py titanic --no-wait            # return once Kaggle has the file; score it later with
                                                          # python scripts/leaderboard.py titanic --sync
    python scripts/submit.py web-traffic --zip never      # upload the CSV as it is (default: zipped over 1 MB)
    python scripts/submit.py titanic --note "boys decided by the model"   # your words after the run's description
    python scripts/submit.py titanic --again              # send a file Kaggle has already scored, once more

The file is re-validated against the sample submission and refused if it changed since its run wrote it, or if
Kaggle already has it (from this run or an identical file of another) unless --again is given. The message names
the run and its CV; the Kaggle reference (and later the scores) go into the run's run.json.
"""

import argparse
from contextlib import ExitStack
from typing import Any, get_args

import _checkout  # noqa: F401  (the code beside this script, wherever the .venv was made)

import competitions
from common import kaggle_api, kaggle_runs
from common.cli import Parser, parse_args, run_main, seconds_arg, stop_exit_code, tell
from common.competition import Competition
from common.runs import RunRecord


def main() -> int:
    parser = Parser(__doc__)
    parser.add_argument("competition", help=f"one of: {', '.join(competitions.names())}")
    parser.add_argument("--run", help="run id (or a unique prefix); default: the best run by CV")
    parser.add_argument("--dry-run", action="store_true", help="validate and show what would be sent; send nothing")
    parser.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                        help="poll Kaggle until the submission is scored (default); --no-wait returns at once")
    parser.add_argument("--timeout", type=seconds_arg(1), default=900,
                        help="seconds to wait for a score (default 900)")
    parser.add_argument("--poll", type=seconds_arg(0.1), default=10,
                        help="seconds between polls (at least 0.1; default 10)")
    parser.add_argument("--zip", choices=get_args(kaggle_runs.ZipMode), default="auto",
                        help="upload the CSV zipped (Kaggle unpacks it): auto = when over 1 MB (default)")
    parser.add_argument("--note", help="one line added to the submission's description on Kaggle (after the run "
                        "id, recipe, CV and seed)")
    parser.add_argument("--again", action="store_true", help="send a file Kaggle already has from this run (or "
                        "an identical one from another run); refused without it, as it would only spend one of "
                        "the day's submissions on the same score")
    parser.add_argument("--data-dir", help="where the sample submission is found (as for train.py)")
    args = parse_args(parser)
    comp = competitions.get(args.competition)
    with ExitStack() as stack:
        if not args.dry_run:  # from choosing the run to recording what Kaggle took: one submit at a time
            stack.enter_context(kaggle_runs.one_submit_at_a_time(comp))
        sent = send(comp, args)
    if sent is None:
        return 0
    run, entry = sent
    later = f"python scripts/leaderboard.py {comp.name} --sync"
    if not args.wait:
        print(f"the score, once Kaggle has it: {later}")
        return 0
    try:
        scored = kaggle_runs.wait_for_score(comp, run, entry["ref"], args.timeout, args.poll)
    except KeyboardInterrupt as stop:  # the submission is in and recorded; only the wait stops
        tell(f"stopped waiting: submission {entry['ref']} is recorded in run {run.run_id}; "
             f"its score, once Kaggle has it: {later}")
        return stop_exit_code(stop)
    private = "" if scored["private_score"] is None else f", private {scored['private_score']}"
    print(f"scored: public {comp.metric.name} {scored['public_score']}{private} (CV {run.cv_text()})")
    if scored["public_score"] is not None and (beside := kaggle_runs.against_best(comp, run, scored["public_score"])):
        print(beside)
    return 0


def send(comp: Competition, args: argparse.Namespace) -> tuple[RunRecord, dict[str, Any]] | None:
    """Choose the run, check its file and send it (None: a dry run, nothing sent); returns the run and the
    submission's entry in its record."""
    run = kaggle_runs.pick_run(comp, args.run)
    message = kaggle_runs.message_for(run, args.note)
    if not args.again:  # before the file is checked against the data: nothing to check if it will not go
        kaggle_runs.refuse_resubmission(comp, run, picked=args.run is None)
    path, rows = kaggle_runs.verified_submission(comp, run, args.data_dir)
    print(f"{comp.name}: run {run.run_id} ({run.recipe}), CV {comp.metric.name} {run.cv_text()}")
    tuned = kaggle_runs.tuned_note(comp, run)
    if tuned is not None and not args.run:  # chosen as the best by CV, which favours it
        print(f"note: {tuned}")
    print(f"file {path} is valid ({run.submission['rows']} rows)")
    difference = kaggle_runs.difference_note(comp, run, rows)
    if difference is not None:
        print(difference)
    form = "zipped" if kaggle_runs.zips(path, args.zip) else "as CSV"
    if args.dry_run:
        print(f"dry run: would submit it {form} to {comp.slug} with message: {message}")
        return None
    kaggle_api.require_credentials(f"; the validated file is {path}")
    floor = None
    if not args.again:  # a submit cut short may have sent it without recording it
        floor = kaggle_runs.refuse_unrecorded(comp, run)
    left = kaggle_runs.submissions_left(comp)
    entry = kaggle_runs.submit_run(comp, run, path, args.zip, message, floor)
    print(f"submitted {form}: Kaggle ref {entry['ref']}, message: {message}")
    if left is not None:
        print(f"{left - 1} more submission{'s' * (left != 2)} to {comp.slug} allowed today (until 00:00 UTC)")
    return run, entry


if __name__ == "__main__":
    run_main(main)
