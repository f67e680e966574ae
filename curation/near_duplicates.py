"""Near-duplicate search on perceptual hashes: Hamming distances and the groups they link.

Pure Python and NumPy on hex strings and plain ids, with no Django, so the search can be
tested and timed (``bench/duplicates.py``) without a database. The queries that feed it and
the thresholds staff see live in ``curation.selectors``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

import numpy as np

Key = TypeVar("Key", bound=Hashable)

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def is_hex_hash(value: str) -> bool:
    return bool(value) and set(value) <= _HEX_DIGITS


def _word_count(length: int) -> int:
    """How many 64-bit words hold a hex hash of ``length`` digits."""
    return max(1, -(-length * 4 // 64))


def _hash_words(hex_hashes: list[str], words: int) -> np.ndarray:
    """Hex strings as rows of uint64 words (big-endian bytes, zero-padded on the left)."""
    packed = b"".join(int(value, 16).to_bytes(words * 8, "big") for value in hex_hashes)
    return np.frombuffer(packed, dtype=">u8").astype(np.uint64).reshape(len(hex_hashes), words)


def distances_to(target: str, hex_hashes: list[str]) -> np.ndarray:
    """How many bits each of ``hex_hashes`` differs from ``target`` by (all of ``target``'s length)."""
    words = _word_count(len(target))
    matrix = _hash_words(hex_hashes, words)
    return np.bitwise_count(matrix ^ _hash_words([target], words)).sum(axis=1, dtype=np.int64)


def near_duplicate_pairs(
    hex_hashes: list[str], *, max_distance: int, block_elements: int = 4_000_000
) -> list[tuple[int, int, int]]:
    """All pairs ``(i, j, distance)`` with ``i < j`` whose hashes differ in at most ``max_distance`` bits.

    Exact, by XOR and popcount in NumPy, a block of rows against the rest at a time, so memory
    stays bounded (``block_elements`` 64-bit words) while 10,000 hashes take well under a second
    (``bench/duplicates.py``). Hashes of different lengths are never compared.
    """
    by_length: dict[int, list[int]] = {}
    for index, value in enumerate(hex_hashes):
        by_length.setdefault(len(value), []).append(index)
    pairs: list[tuple[int, int, int]] = []
    for length, indexes in by_length.items():
        words = _word_count(length)
        matrix = _hash_words([hex_hashes[i] for i in indexes], words)
        count = len(indexes)
        block = max(1, block_elements // max(1, count * words))
        for start in range(0, count, block):
            stop = min(count, start + block)
            # Row r of this block against every later row: the upper triangle only.
            xor = matrix[start:stop, None, :] ^ matrix[None, start:, :]
            distances = np.bitwise_count(xor).sum(axis=2, dtype=np.int64)
            rows, columns = np.nonzero(distances <= max_distance)
            for row, column in zip(rows.tolist(), columns.tolist(), strict=True):
                i, j = start + row, start + column
                if j > i:
                    pairs.append((indexes[i], indexes[j], int(distances[row, column])))
    return pairs


def near_duplicate_components(
    keyed_hashes: Sequence[tuple[Key, str]], *, max_distance: int
) -> dict[Key, Key]:
    """Map each key to one representative key: keys linked by near-duplicate hashes share one.

    ``keyed_hashes`` pairs a key (a baby's id, say) with one of its hashes; a key may come
    several times. Links are transitive (connected components, by union-find), unlike the
    anchored groups staff review: here a false link only joins two keys, it hides nothing.
    Hashes that are not hex link nothing; their keys stand alone. Keys come out in the order
    they first appear.
    """
    parent = {key: key for key, _ in keyed_hashes}

    def find(node: Key) -> Key:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    hashed = [(key, value) for key, value in keyed_hashes if is_hex_hash(value)]
    pairs = near_duplicate_pairs([value for _, value in hashed], max_distance=max_distance)
    for i, j, _ in pairs:
        parent[find(hashed[i][0])] = find(hashed[j][0])
    return {key: find(key) for key in parent}
