"""Near-duplicate search benchmark, and how well 64-bit dHash separates ultrasound-like scans.

Part 1 times ``curation.near_duplicates.near_duplicate_pairs`` (exact XOR + popcount in NumPy, in
blocks) on random 64-bit hashes, with a handful of planted near copies, for several sizes.

Part 2 computes the dHash the upload path stores (``babies.images.normalise``) for synthetic
scans (``ml.synthetic``) and for edited copies of them (re-encoded at JPEG quality
40, resized, saved as PNG, re-cropped by 2 %), and prints the distance distributions: how far a
copy drifts, and how close two *different* scans come. That is what the admin's default
threshold (``DEFAULT_DUPLICATE_DISTANCE``) and the stricter split threshold are chosen from.

    .venv/bin/python bench/duplicates.py
    .venv/bin/python bench/duplicates.py --sizes 1000 10000 50000 --scans 200
    .venv/bin/python bench/duplicates.py --smoke     # 1,000 hashes and 20 scans: checks it runs
"""

import argparse
import io
import os
import random
import sys
import time
from itertools import combinations
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "instagender.settings")

import django  # noqa: I001

django.setup()

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from babies import images  # noqa: E402
from curation.near_duplicates import near_duplicate_pairs  # noqa: E402
from curation.selectors import DEFAULT_DUPLICATE_DISTANCE, SPLIT_DUPLICATE_DISTANCE  # noqa: E402
from ml.synthetic import SyntheticConfig, generate_baby  # noqa: E402


def time_pairs(sizes: list[int], max_distance: int) -> None:
    print(
        f"near_duplicate_pairs, max distance {max_distance} bits (random 64-bit hashes + 1 % planted copies)"
    )
    rng = random.Random(0)
    for size in sizes:
        hashes = [f"{rng.getrandbits(64):016x}" for _ in range(size)]
        for index in range(0, size, 100):
            hashes[index] = f"{int(hashes[index - 1], 16) ^ (1 << rng.randrange(64)):016x}"
        started = time.perf_counter()
        pairs = near_duplicate_pairs(hashes, max_distance=max_distance)
        elapsed = time.perf_counter() - started
        print(f"  {size:>7} hashes: {elapsed * 1000:8.1f} ms, {len(pairs)} pairs")


def hash_of(data: bytes, crop_box=None) -> str:
    return images.normalise(data, crop_box=crop_box).perceptual_hash


def distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def separation(scans: int) -> None:
    config = SyntheticConfig(image_size=256)
    originals = [
        generate_baby(seed=11, split="train", index=i, scans_per_baby=1, config=config)[0]
        for i in range(scans)
    ]
    hashes = [hash_of(scan.jpeg) for scan in originals]
    edits: dict[str, list[int]] = {
        "JPEG quality 40": [],
        "resized to 80 %": [],
        "PNG": [],
        "re-cropped 2 %": [],
    }
    for scan, original_hash in zip(originals, hashes, strict=True):
        image = Image.open(io.BytesIO(scan.jpeg)).convert("RGB")
        for name in edits:
            buffer = io.BytesIO()
            if name == "JPEG quality 40":
                image.save(buffer, "JPEG", quality=40)
                copy_hash = hash_of(buffer.getvalue())
            elif name == "resized to 80 %":
                image.resize((205, 205)).save(buffer, "JPEG", quality=85)
                copy_hash = hash_of(buffer.getvalue())
            elif name == "PNG":
                image.save(buffer, "PNG")
                copy_hash = hash_of(buffer.getvalue())
            else:
                copy_hash = hash_of(scan.jpeg, crop_box={"x": 5, "y": 5, "width": 246, "height": 246})
            edits[name].append(distance(original_hash, copy_hash))
    different = np.array([distance(a, b) for a, b in combinations(hashes, 2)])
    print(f"\ndHash distances on {scans} synthetic scans (64 bits)")
    for name, values in edits.items():
        values = np.array(values)
        print(f"  copy, {name:<16}: median {np.median(values):4.1f}, max {values.max():3d}")
    print(
        f"  different scans        : min {different.min()}, "
        f"1st percentile {np.percentile(different, 1):.0f}, median {np.median(different):.0f}"
    )
    for threshold in sorted({SPLIT_DUPLICATE_DISTANCE, DEFAULT_DUPLICATE_DISTANCE, 6, 8}):
        caught = np.mean([np.mean(np.array(v) <= threshold) for v in edits.values()])
        false = np.mean(different <= threshold)
        print(
            f"  threshold {threshold}: {caught:6.1%} of copies caught, "
            f"{false:6.2%} of different pairs flagged"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 30_000])
    parser.add_argument("--scans", type=int, default=120)
    parser.add_argument("--smoke", action="store_true", help="1,000 hashes, 20 scans: checks it runs.")
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.scans = [1_000], 20
    time_pairs(args.sizes, DEFAULT_DUPLICATE_DISTANCE)
    separation(args.scans)


if __name__ == "__main__":
    main()
