"""Markdown tables for docs/studies/*.md (summarised in docs/BENCHMARKS.md) from benchmarks/results/*.json (no numbers typed by hand).

    python scripts/bench_tables.py benchmarks/results/peers_mni152_cpu.json benchmarks/results/search_train_cpu.json ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from medseg_nas.bench.tables import TABLES


def main(paths: list[str]) -> int:
    for p in paths:
        doc = json.loads(Path(p).read_text())
        kind = doc.get("benchmark") or ("learning_curve" if "curve" in doc else None)
        table = TABLES.get(kind)
        if table is None:  # difficulty, space and train results are quoted in prose, not tabled
            print(f"### {p}: no table for {kind!r}\n")
            continue
        print(f"### {p}\n")
        print(table(doc))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
