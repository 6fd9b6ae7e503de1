"""What the upload's check costs, step by step, against a bare read-and-parse: CPU seconds over one file.

    python bench/upload_check_parts.py                       # 200 MB, this checkout, 3 rounds
    python bench/upload_check_parts.py --src OTHER_CHECKOUT/src

No server and no pipe: each step reads the generated file in 256 KiB chunks, as the checker
(api/upload_checker.py) reads its stdin, and adds one stage of the check to the step before.
Ingest's target is a ratio to the first line (docs/benchmarks.md); the checker runs on one core, so
its last line over the first is about the best ratio an upload can reach.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READ = 1 << 18


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the generated file")
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the batchgate sources to time")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(args.src))
    sys.path.insert(1, str(ROOT))
    import gc

    import orjson

    gc.disable()  # as the checker process runs (api/upload_checker.py)

    from batchgate.api.upload_checker import check_chunks
    from batchgate.domain.file_check import FileCheck, LineLimits
    from batchgate.domain.lines import good_requests
    from batchgate.domain.splitting import LineSplitter
    from bench.run import write_input_of_size

    limits = LineLimits(1_000_000, 8 * 1024 * 1024, 500, 64)
    CHAT = "/v1/chat/completions"

    def bare(source, scratch):  # bench/run.py's baseline
        for raw in source:
            orjson.loads(raw)

    def split_and_parse(source, scratch):
        splitter = LineSplitter(limits.max_line_bytes)
        while chunk := source.read(READ):
            for located in splitter.feed(chunk):
                orjson.loads(located.raw)

    def line_shapes(source, scratch):
        splitter = LineSplitter(limits.max_line_bytes)
        while chunk := source.read(READ):
            raws = [located.raw for located in splitter.feed(chunk)]
            good_requests(raws, CHAT, limits.max_line_bytes, limits.max_json_depth)

    def file_rules(source, scratch):
        splitter, check = LineSplitter(limits.max_line_bytes), FileCheck(limits)
        while chunk := source.read(READ):
            check.feed(splitter.feed(chunk))

    def whole_check(source, scratch):  # + the repeat check on disk: what the checker process runs
        check_chunks(lambda: source.read(READ) or None, limits, scratch)

    steps = {
        "bare read-and-parse (orjson)": bare,
        "split into lines + orjson": split_and_parse,
        "+ the line rule, a chunk at once (good_requests)": line_shapes,
        "+ the file rules (FileCheck)": file_rules,
        "+ repeated custom_ids (check_chunks)": whole_check,
    }
    with tempfile.TemporaryDirectory(prefix="batchgate-check-parts-") as folder:
        path = Path(folder) / "input.jsonl"
        size = write_input_of_size(path, args.mb * 1_000_000)
        print(f"{Path(sys.modules['batchgate'].__file__).parents[1]}: {size / 1e6:.0f} MB, CPU seconds per GB")
        for name, step in steps.items():
            seconds = []
            for _ in range(args.runs):
                with path.open("rb") as source:
                    started = time.process_time()
                    step(source, Path(folder))
                    seconds.append((time.process_time() - started) * 1e9 / size)
            print(f"  {name:50s} {'  '.join(f'{s:5.2f}' for s in seconds)}")


if __name__ == "__main__":
    main()
