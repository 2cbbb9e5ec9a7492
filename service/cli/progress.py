"""How a sweep's progress reads in a terminal: a tqdm bar over configurations, and a one-line summary."""

from __future__ import annotations

import sys
import time
from typing import Any

from chipsweep.schemas.vocab import FINAL_STATES

REFRESH_S = 0.2  # the bar is redrawn at most this often (each redraw reads the queue)


class Progress:
    """A tqdm bar over configurations (rate and ETA), refreshed from the queue's status."""

    def __init__(self, status: dict[str, Any], enabled: bool) -> None:
        self.bar = None
        self.last = 0.0
        if enabled:
            from tqdm import tqdm

            # k/M/G only where they shorten it: tqdm scales small counts as floats ('48.0/144')
            self.bar = tqdm(total=status["configurations"], unit="cfg", unit_scale=status["configurations"] >= 10_000,
                            dynamic_ncols=True,
                            smoothing=0.1, desc=f"{status['sweep_id']}@{status['version']}", file=sys.stderr)

    def due(self) -> bool:
        """Whether a redraw is due (callers skip reading the status otherwise)."""
        now = time.monotonic()
        if self.bar is None or now - self.last < REFRESH_S:
            return False
        self.last = now
        return True

    def update(self, status: dict[str, Any]) -> None:
        """Redraw from `status`; a sweep that is over draws once more and closes the bar, so the seconds Ray takes
        to shut down after the last chunk neither redraw it nor pull its rate down."""
        if self.bar is None:
            return
        self.bar.n = int(status.get("configurations_done", 0))
        failed = f" {status['chunks_failed']} failed" if status.get("chunks_failed") else ""
        self.bar.set_postfix_str(f"chunks {status['chunks_done']}/{status['chunks_total']}{failed}, "
                                 f"rows {status['rows_written']:,}", refresh=False)
        self.bar.refresh()
        if status.get("state") in FINAL_STATES:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def summary(status: dict[str, Any]) -> str:
    rate = status.get("configs_per_s") or 0.0
    line = (f"{status['sweep_id']}@{status['version']}: {status['state']}, {status['chunks_done']}/{status['chunks_total']} chunks"
            f" ({status['chunks_failed']} failed), {status.get('configurations_done', 0):,}/{status['configurations']:,}"
            f" configurations, {status['rows_written']:,} rows"
            # a version whose chunks were all carried or re-priced from the last evaluated nothing: no rate to give
            + (f", {rate / 1e6:.2f} M configs/s" if rate >= 1e5 else f", {rate:,.1f} configs/s" if rate > 0 else ""))
    errors = status.get("errors") or []
    for e in errors[:5]:
        line += f"\n  chunk {e['chunk']} ({e['state']}, {e['attempts']} attempts): {e['error'].splitlines()[0] if e['error'] else ''}"
    return line
