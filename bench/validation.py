"""Validation alone: MB/s of the validating stage over a generated file of ~1 KB chat lines.

    python bench/validation.py                        # 200 MB, this checkout
    python bench/validation.py --mb 1000 --src /path/to/other/checkout/src   # another version, same file

No server and no upload: the stage reads the file from local storage as a worker does, in a full
pass (as for a file whose upload did not check it, or found an error).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
KEY = "file-bench00"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the generated file")
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the batchgate sources to time")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    sys.path.insert(0, str(args.src))
    sys.path.insert(1, str(ROOT))
    from bench.run import write_input_of_size

    with tempfile.TemporaryDirectory(prefix="batchgate-validation-") as folder:
        blobs_root = Path(folder) / "blobs"
        (blobs_root / KEY[-2:]).mkdir(parents=True)
        size = write_input_of_size(blobs_root / KEY[-2:] / KEY, args.mb * 1_000_000)
        for _ in range(args.runs):
            seconds, lines = asyncio.run(validate(blobs_root, Path(folder) / "data"))
            checkout = Path(sys.modules['batchgate'].__file__).parents[1]
            print(f"{checkout}: {lines} lines, {size / 1e6:.0f} MB in {seconds:.2f} s: {size / 1e6 / seconds:.1f} MB/s")


async def validate(blobs_root: Path, data_dir: Path) -> tuple[float, int]:
    from batchgate.blobs.local import LocalBlobStore
    from batchgate.domain.shards import ShardCutter
    from batchgate.settings import Settings
    from batchgate.worker.validate import validate_input

    async def get_file(scope, file_id):
        return SimpleNamespace(storage_key=KEY)

    settings = Settings(data_dir=data_dir)

    async def file_summary(file_id):
        return None  # as if the upload never checked the file: time the full pass

    ctx = SimpleNamespace(
        settings=settings,
        store=SimpleNamespace(get_file=get_file, file_summary=file_summary),
        blobs=LocalBlobStore(blobs_root),
    )
    batch = SimpleNamespace(scope=None, input_file_id=KEY, endpoint="/v1/chat/completions")
    started = time.perf_counter()
    report = await validate_input(ctx, batch, ShardCutter(settings.shard_lines))
    assert report.ok, report.to_wire()
    return time.perf_counter() - started, report.request_count


if __name__ == "__main__":
    main()
