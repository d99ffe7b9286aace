"""What a search says while it runs: search.log (every line, timestamped) and, with `progress`,
the same lines on screen above a tqdm bar that shows the front's size and hypervolume.
"""

from __future__ import annotations

import time
from pathlib import Path


class SearchLog:
    def __init__(self, path: Path, progress: bool) -> None:
        self.path, self.progress = path, progress
        self.bar = None

    def __call__(self, msg: str) -> None:
        with open(self.path, "a") as fh:
            fh.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {msg}\n")
        if self.progress:
            if self.bar is not None:
                self.bar.write(msg)
            else:
                print(msg, flush=True)

    def open_bar(self, total: int | None, initial: int) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=initial, desc="search", unit="trial", dynamic_ncols=True)

    def show(self, finished: int, front_size: int, hypervolume: float, tau: float | None, hours_left: float | None) -> None:
        """Move the bar to `finished` trials with the front's figures beside it."""
        parts = [f"front={front_size}", f"hv={hypervolume:.4f}"]
        if tau is not None:
            parts.append(f"tau={tau:.2f}")
        if hours_left is not None:
            parts.append(f"left={hours_left:.2f}h")
        self.bar.n = finished
        self.bar.set_postfix_str(" ".join(parts), refresh=False)
        self.bar.refresh()

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
