"""docs/RELIABILITY.md's table: every bad input we tried, run through the real CLI, and what the
user sees.

    python scripts/reliability_table.py            # rewrite the table in docs/RELIABILITY.md
    python scripts/reliability_table.py --check    # exit 1 if the table there is out of date
    python scripts/reliability_table.py --subprocess   # run each case as its own process (slow)

The cases and the machinery live in `medseg_nas.testing.reliability` (one module per group of
cases: cases_config, cases_data, cases_rundir, cases_model); this file is its command line.
Each case is one small function registered with `@case(group, bad_input)`: it builds what it
needs under its own empty folder and returns the argv after `medseg-nas`. Add a case by
appending such a function to its group's module; rerun the script to update the docs.
Cases must stop at their error (no training): the whole table takes seconds in-process. A case
that must keep something alive while the command runs (another process holding the run
directory's lock) is a generator: it yields the argv and cleans up when resumed.

In-process runs call `medseg_nas.cli.main` exactly as the `medseg-nas` console script does, with
stdout/stderr captured; an uncaught exception is printed as Python would (traceback, exit 1), so
the table cannot hide one. tests/test_reliability_table.py checks a few cases against real
subprocesses. Paths are written relative to each case's own temporary folder (`$TMP`); pids, the host name and
times are replaced by placeholders, so the table only changes when a message does.
"""

from __future__ import annotations

import argparse
import sys

from medseg_nas.testing.reliability import DOC, generate, splice


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when docs/RELIABILITY.md is out of date")
    ap.add_argument("--subprocess", action="store_true", help="run every case in its own interpreter")
    args = ap.parse_args(argv)
    generated, outcomes = generate(args.subprocess)
    bad = [c.name for c, o in outcomes if o.traceback or o.rc == 0]
    doc = DOC.read_text()
    new = splice(doc, generated)
    if args.check:
        if new != doc:
            print(f"{DOC} is out of date: run python scripts/reliability_table.py", file=sys.stderr)
            return 1
    else:
        DOC.write_text(new)
        print(f"{len(outcomes)} cases → {DOC}")
    if bad:
        print(f"cases ending in a traceback or exit 0: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
