"""Time to fingerprint a clip listing: the stat-based identity of every clip (relative path, size,
modification time and metadata) that every rerun computes, and the content-hash identity of
``--verify-content``, for ``--files`` clips (default 30,000) of ``--bytes`` each.

    python benchmarks/fingerprint_speed.py [--files 30000] [--bytes 2048]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from asdcore.identity import listing_digest
from asdcore.interfaces import Clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=30_000)
    parser.add_argument("--bytes", type=int, default=2048)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clips = []
        for i in range(args.files):
            machine = f"machine{i % 7}"
            path = root / machine / "train" / f"section_00_source_train_normal_{i:05d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(bytes(args.bytes))
            clips.append(Clip(path, machine, "train", 0, 0, 0))
        for label, content in (("size + time", False), ("size + content hash", True)):
            best = min(_timed(clips, root, content) for _ in range(3))
            print(f"{args.files} clips, {label:<20} {best:.3f} s")


def _timed(clips, root, content: bool) -> float:
    start = time.perf_counter()
    listing_digest(clips, root, verify_content=content)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
