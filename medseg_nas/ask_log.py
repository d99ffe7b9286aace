"""The ask log: every genome the strategy asked, in ask order, and what it was told, in tell order.

It is a table of trials.sqlite (`asks`), so the store alone says what was asked, told and is
still pending, as Optuna's storages do; strategy_state.json keeps only what the store cannot
give: the strategy's own state (RNG, population, learned probabilities), the point of this log
that state was taken at (`n_asked`, `n_told`) and the time spent. A genome asked twice has two
rows: each ask is told on its own (a trial answers all of its twins).

The log may run ahead of the saved state (asks made, or a tell written, after the last save,
then a kill); `rewind` cuts it back to the saved point, and the deterministic strategy asks
those genomes again.
"""

from __future__ import annotations

from medseg_nas.trial_store import TrialStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS asks (
    seq INTEGER PRIMARY KEY,   -- ask order, from 1
    genome TEXT NOT NULL,      -- Genome.to_json()
    told INTEGER UNIQUE,       -- tell order, from 1; NULL while pending
    f1 REAL,                   -- the objectives told; NULL for a failed trial (or while pending)
    f2 REAL
)
"""


class AskLog:
    """`AskLog(store)`: the `asks` table of an open TrialStore (created if missing)."""

    def __init__(self, store: TrialStore) -> None:
        self.store = store
        store.write(_SCHEMA)

    def _one(self, sql: str, args: tuple = ()) -> int:
        return int(self.store.read(sql, args)[0][0] or 0)

    # -- reads ---------------------------------------------------------------------------------
    def n_asked(self) -> int:
        return self._one("SELECT COUNT(*) FROM asks")

    def n_told(self) -> int:
        return self._one("SELECT COUNT(told) FROM asks")

    def n_pending(self) -> int:
        return self._one("SELECT COUNT(*) FROM asks WHERE told IS NULL")

    def history(self) -> list[list]:
        """[genome json, f1, f2] per tell, in tell order (f1 = f2 = None: told as failed)."""
        rows = self.store.read("SELECT genome, f1, f2 FROM asks WHERE told IS NOT NULL ORDER BY told")
        return [[js, None if f1 is None else float(f1), None if f1 is None else float(f2)] for js, f1, f2 in rows]

    def pending(self) -> list[tuple[int, str]]:
        """(seq, genome json) of every ask not told yet, in ask order."""
        return [(int(s), js) for s, js in self.store.read("SELECT seq, genome FROM asks WHERE told IS NULL ORDER BY seq")]

    # -- writes --------------------------------------------------------------------------------
    def ask(self, genome_json: str) -> int:
        """Record one ask; its sequence number."""
        seq = self.n_asked() + 1
        self.store.write("INSERT INTO asks (seq, genome) VALUES (?, ?)", (seq, genome_json))
        return seq

    def tell(self, seq: int, objectives: tuple[float, float] | None) -> None:
        f1, f2 = (None, None) if objectives is None else (float(objectives[0]), float(objectives[1]))
        self.store.write(
            "UPDATE asks SET told = (SELECT COALESCE(MAX(told), 0) + 1 FROM asks), f1 = ?, f2 = ? WHERE seq = ?",
            (f1, f2, int(seq)),
        )

    def rewind(self, n_asked: int, n_told: int) -> None:
        """Forget the asks after the `n_asked`-th and the tells after the `n_told`-th."""
        self.store.write("DELETE FROM asks WHERE seq > ?", (int(n_asked),))
        self.store.write("UPDATE asks SET told = NULL, f1 = NULL, f2 = NULL WHERE told > ?", (int(n_told),))

    def clear(self) -> None:
        self.store.write("DELETE FROM asks", ())

    def fill(self, history: list, pending: list[str]) -> None:
        """Write the log of a state saved before it existed (its history and pending genomes)."""
        self.clear()
        for js, f1, f2 in history:
            self.tell(self.ask(js), None if f1 is None else (f1, f2))
        for js in pending:
            self.ask(js)
