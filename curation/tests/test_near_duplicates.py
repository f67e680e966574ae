"""The near-duplicate search on its own: Hamming distances between hashes and the groups they link."""

import random
import subprocess
import sys
from pathlib import Path

import pytest

from curation.near_duplicates import distances_to, near_duplicate_components, near_duplicate_pairs

REPO = Path(__file__).resolve().parents[2]


def brute_force_pairs(hashes, max_distance):
    return sorted(
        (i, j, (int(hashes[i], 16) ^ int(hashes[j], 16)).bit_count())
        for i in range(len(hashes))
        for j in range(i + 1, len(hashes))
        if len(hashes[i]) == len(hashes[j])
        and (int(hashes[i], 16) ^ int(hashes[j], 16)).bit_count() <= max_distance
    )


@pytest.mark.parametrize("block_elements", [1, 7, 4_000_000])
def test_pairs_match_a_brute_force_search(block_elements):
    rng = random.Random(5)
    hashes = [f"{rng.getrandbits(64):016x}" for _ in range(120)]
    # Near copies: flip up to 5 bits of some hashes; a few 256-bit hashes must not mix with 64-bit ones.
    for index in range(0, 120, 6):
        value = int(hashes[index], 16)
        for bit in rng.sample(range(64), rng.randint(0, 5)):
            value ^= 1 << bit
        hashes.append(f"{value:016x}")
    hashes += [f"{rng.getrandbits(256):064x}" for _ in range(3)]
    hashes.append(hashes[-1])

    found = sorted(near_duplicate_pairs(hashes, max_distance=6, block_elements=block_elements))

    assert found == brute_force_pairs(hashes, 6)
    assert len(found) >= 21


def test_distances_to_one_hash_count_the_differing_bits():
    hashes = ["ffff0000ffff0000", "ffff0000ffff0007", "0000ffff0000ffff"]
    assert distances_to("ffff0000ffff0000", hashes).tolist() == [0, 3, 64]
    assert distances_to("f" * 64, ["f" * 63 + "e", "0" * 64]).tolist() == [1, 256]


def test_components_follow_chains_and_every_hash_of_a_key():
    keyed_hashes = [
        (1, "ffff0000ffff0000"),
        (2, "ffff0000ffff0007"),  # 3 bits from 1
        (3, "ffff0000ffff003f"),  # 3 bits from 2, 6 from 1: joined through 2
        (4, ""),  # no hash: stands alone
        (5, "0000ffff0000ffff"),
        (1, "123456789abcdef0"),  # a second scan of 1 ...
        (6, "123456789abcdef1"),  # ... that 6 is a copy of
    ]

    roots = near_duplicate_components(keyed_hashes, max_distance=3)

    assert list(roots) == [1, 2, 3, 4, 5, 6]
    assert len({roots[key] for key in (1, 2, 3, 6)}) == 1
    assert roots[4] == 4 and roots[5] == 5
    assert near_duplicate_components(keyed_hashes, max_distance=0) == {key: key for key in range(1, 7)}


def test_the_module_imports_no_django():
    code = (
        "import sys\n"
        "import curation.near_duplicates\n"
        "print('LOADED', sorted(m for m in sys.modules if m.split('.')[0] == 'django'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout
