"""What collector.py buys: a full pass of the cycle collector with the server's modules loaded, frozen or not.

    python bench/gc_pause.py            # both, 3 rounds each, interleaved

Each round is a fresh process that imports what `batchgate serve` imports, holds a few thousand
objects of its own (as a running server does), then times 20 full passes (gc.collect()).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROUND = """
import gc, sys, time
import batchgate.cli, batchgate.api.app, batchgate.worker.worker, batchgate.upstream.http1  # noqa: F401
from batchgate.collector import freeze_startup_objects
gc.collect()
if sys.argv[1] == "frozen":
    freeze_startup_objects()
held = [[i, [i]] for i in range(5000)]
times = []
for _ in range(20):
    started = time.perf_counter()
    gc.collect()
    times.append((time.perf_counter() - started) * 1000)
times.sort()
print(f"{sys.argv[1]:9s} tracked {len(gc.get_objects()):6d}, frozen {gc.get_freeze_count():6d}: "
      f"a full pass {times[10]:.2f} ms (median of 20), {times[0]:.2f} ms at best")
"""


def main() -> None:
    for _ in range(3):
        for mode in ("frozen", "unfrozen"):
            subprocess.run([sys.executable, "-c", ROUND, mode], check=True, cwd=ROOT)


if __name__ == "__main__":
    main()
