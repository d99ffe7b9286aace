"""The strategy benchmark's trial cache: one JSON line per trained genome, shared by every strategy,
seed, worker process and session that trains the same problem.

Why a file with these rules: the comparison needs ~800 trained genomes (issue 27, item 5), more than
one session of 2 cores or one GPU lease gives, so the cache must outlive a run directory (it can
live in a tracked file) and several processes must be able to fill it at once. Appends are single
`write` calls of one line to a file opened for appending, so lines of concurrent writers do not
interleave; a line cut short by a kill is skipped with a warning. **The first line for a key wins**,
in every reader: a worker that trained a genome another worker had already written uses the other's
answer, so a later replay of the whole benchmark from the file sees exactly what each run saw.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path


class TrialCache:
    def __init__(self, path: Path, budget: str) -> None:
        self.path, self.budget = Path(path), budget
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.entries: dict[str, dict] = {}
        self.budgets: set[str] = set()  # every budget the file holds lines of (entries: this one's only)
        self._offset = 0
        self.refresh()

    def refresh(self) -> None:
        """Read the lines appended since the last read (by this process or another)."""
        if not self.path.is_file():
            return
        with open(self.path, "rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1  # a last line without its newline may still be being written
        for n, line in enumerate(data[:end].splitlines()):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                warnings.warn(f"{self.path}: skipping a damaged line near byte {self._offset} (line {n + 1} "
                              "of this read); its genome will be trained again", stacklevel=2)
                continue
            self.budgets.add(d.get("budget"))
            if d.get("budget") == self.budget and "key" in d:
                self.entries.setdefault(d["key"], d)
        self._offset += end

    def get(self, key: str) -> dict | None:
        if key not in self.entries:
            self.refresh()
        return self.entries.get(key)

    def put(self, entry: dict) -> tuple[dict, bool]:
        """Append `entry`; returns the entry that holds for its key (an earlier line wins) and
        whether it is this one (False: another writer's line came first, and is what counts)."""
        self.refresh()
        if entry["key"] in self.entries:  # written meanwhile by another worker: not appended again
            return self.entries[entry["key"]], False
        line = (json.dumps(entry) + "\n").encode()
        with open(self.path, "ab") as fh:
            if fh.tell() and self._ends_unfinished():  # a writer killed mid-line: start a new one
                line = b"\n" + line
            fh.write(line)
        self.refresh()
        held = self.entries.setdefault(entry["key"], entry)
        return held, held == json.loads(json.dumps(entry))

    def _ends_unfinished(self) -> bool:
        with open(self.path, "rb") as fh:
            fh.seek(-1, 2)
            return fh.read(1) != b"\n"

    def __len__(self) -> int:
        return len(self.entries)


def finished_trials(path: Path) -> tuple[str | None, dict[str, dict]]:
    """A single-budget cache file's budget hash and its finished trials by genome key (the scripts
    that read a whole cache: one proxy at a time, so a file of several budgets is refused)."""
    budgets = TrialCache(path, budget="").budgets  # no line's budget is "": this only lists them
    if len(budgets) > 1:
        raise SystemExit(f"{path}: holds {len(budgets)} budgets ({sorted(map(str, budgets))}); read one proxy at a time")
    budget = next(iter(budgets)) if budgets else None
    entries = TrialCache(path, budget).entries if budget else {}
    return budget, {k: e for k, e in entries.items() if e.get("status") == "done" and e.get("f1") is not None}


def rescore_refusal(obj_cfg) -> str | None:
    """Why lines cannot be rescored under `obj_cfg`, or None: `last5` needs the per-epoch history,
    which lines do not store, and costs other than parameters need measurements they do not hold."""
    cost = getattr(obj_cfg, "cost", "params")
    if obj_cfg.dice_at == "best" and cost == "params":
        return None
    return ("a cached line can be rescored only under objectives.dice_at=best and objectives.cost=params: it stores "
            f"the best epoch's Dice and the parameter count (got dice_at={obj_cfg.dice_at}, cost={cost})")


def rescored(line: dict, obj_cfg, epochs_budget: int, budget: str) -> dict:
    """A line trained under other objectives, as a line of `budget` (the same training under `obj_cfg`).

    Why this is exact: training does not read the objectives, and with `objectives.dice_at: best`
    f1 needs only what a line stores (the best epoch's training and validation Dice, e_max, the
    parameter count); other objectives are refused (`rescore_refusal`)."""
    from medseg_nas.results import TrialResult
    from medseg_nas.search.objectives import compute_objectives

    if (why := rescore_refusal(obj_cfg)) is not None:
        raise ValueError(why)
    out = {k: v for k, v in line.items() if k not in ("f1", "f2")}
    out.update(budget=budget, rescored_from=line.get("budget"))
    r = TrialResult.from_dict({**line, "epochs_budget": int(epochs_budget)})  # the line's fields are TrialResult's
    if r.ok:
        out["f1"], out["f2"] = compute_objectives(r, obj_cfg)
    return out
