"""The upload's check counted in instructions, against a bare read-and-parse: a gauge the machine's load does not move.

    python bench/check_instructions.py                          # this checkout, 10 MB
    python bench/check_instructions.py --src OTHER_CHECKOUT/src

Runs api/upload_checker.py:check_chunks over a generated file of the bench's lines under
`valgrind --tool=callgrind` (needs valgrind), and the same script doing only its imports and a
bare splitlines + orjson.loads, so that each figure is the step's own. CPU seconds on a shared
machine move by a quarter from one run to the next; instructions do not (memory stalls are not
counted, so confirm a gain in CPU seconds with bench/upload_check_parts.py).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READ = 1 << 18


def step(src: Path, folder: Path, mode: str) -> None:
    """The measured program: imports, then the step `mode` ("imports", "bare" or "check")."""
    sys.path.insert(0, str(src))
    import gc

    import orjson

    from batchgate.api.upload_checker import check_chunks
    from batchgate.domain.file_check import LineLimits

    gc.disable()  # as the checker process runs
    data = (folder / "input.jsonl").read_bytes()
    if mode == "bare":
        for line in data.splitlines():
            orjson.loads(line)
    elif mode == "check":
        chunks = iter([data[i : i + READ] for i in range(0, len(data), READ)])
        check_chunks(lambda: next(chunks, None), LineLimits(1_000_000, 8 * 1024 * 1024, 500, 64), folder)


def instructions(src: Path, folder: Path, mode: str) -> int:
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__]
    done = subprocess.run(
        [*command, "--step", mode, "--src", str(src), "--folder", str(folder)], capture_output=True, text=True
    )
    found = re.search(r"refs:\s*([\d,]+)", done.stderr)
    if done.returncode or found is None:
        raise SystemExit(f"valgrind failed: {done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=10, help="size of the generated file")
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the batchgate sources to count")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        step(args.src, args.folder, args.step)
        return
    sys.path.insert(0, str(ROOT))
    from bench.run import write_input_of_size

    with tempfile.TemporaryDirectory(prefix="batchgate-check-instructions-") as folder:
        size = write_input_of_size(Path(folder) / "input.jsonl", args.mb * 1_000_000)
        imports = instructions(args.src, Path(folder), "imports")
        bare = instructions(args.src, Path(folder), "bare") - imports
        check = instructions(args.src, Path(folder), "check") - imports
    print(f"{args.src}: {size / 1e6:.0f} MB, millions of instructions (imports left out)")
    print(f"  bare read-and-parse (splitlines + orjson)  {bare / 1e6:7.1f}")
    print(f"  the upload's check (check_chunks)          {check / 1e6:7.1f}  {check / bare:.2f} × the bare parse")


if __name__ == "__main__":
    main()
