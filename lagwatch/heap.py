"""Keep CPython's cycle collector off the heap that lives for the whole window.

Most of a large daemon's heap is the history window and the latest reports: millions of
objects that stay alive for many polls. CPython's cycle collector walks all of them in each
full collection, and a poll of 200,000 group-partitions creates enough new objects to set
off several such collections (about half a second each), and a /metrics scrape one or two.

After each poll lagwatch moves what is alive into the collector's permanent generation
(``gc.freeze``), so later collections walk only what is new. Reference counting still frees
every object the moment it is no longer used, frozen or not; only garbage caught in a
reference cycle among frozen objects would wait, and a full collection every
``sweep_every_s`` (``gc.unfreeze``, then ``gc.collect``) clears it.
"""

from __future__ import annotations

import gc
import threading

SWEEP_EVERY_S = 3600.0


class Heap:
    """Freezes the long-lived heap after each poll, and sweeps it now and then."""

    def __init__(self, sweep_every_s: float = SWEEP_EVERY_S) -> None:
        self.sweep_every_s = sweep_every_s
        self._swept: float | None = None
        self._lock = threading.Lock()  # one poller thread per cluster

    def settle(self, now: float) -> None:
        """Call after a poll is published: sweep when one is due, then freeze."""
        with self._lock:
            if self._swept is None:
                self._swept = now
            elif now - self._swept >= self.sweep_every_s:
                gc.unfreeze()
                gc.collect()
                self._swept = now
            gc.freeze()
