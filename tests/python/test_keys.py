"""strata.keys: PyChunkedGraph's hash-prefixed lock rows, checked against hashlib."""
import hashlib
import os
import random
import struct

import pytest

from strata import keys


def test_l2_chunk_matches_blake2b():
    seed = int(os.environ.get("STRATA_SEED", random.randrange(1 << 32)))
    print("STRATA_SEED=%d" % seed)
    rnd = random.Random(seed)
    for cid in [0, 1, 0x0102030405060708, (1 << 64) - 1] + [rnd.randrange(1 << 64) for _ in range(200)]:
        packed = struct.pack(">Q", cid)
        want = hashlib.blake2b(packed, digest_size=2).digest() + packed
        assert keys.l2_chunk(cid) == want and len(want) == 10


def test_block_matches_blake2b():
    for x, y, z in [(0, 0, 0), (1, 2, 3), (1 << 40, 7, (1 << 64) - 1)]:
        packed = struct.pack(">QQQ", x, y, z)
        want = hashlib.blake2b(packed, digest_size=2).digest() + packed
        assert keys.block(x, y, z) == want and len(want) == 26


def test_known_vector():
    # blake2b(b"\0"*7 + b"\x05", digest_size=2) computed independently of the helper.
    assert keys.l2_chunk(5)[:2] == hashlib.new("blake2b", b"\x00" * 7 + b"\x05",
                                               digest_size=2).digest()
    assert keys.l2_chunk(5)[2:] == b"\x00" * 7 + b"\x05"


def test_out_of_range_ids_are_refused():
    with pytest.raises(ValueError):
        keys.l2_chunk(-1)
    with pytest.raises(ValueError):
        keys.block(0, 0, 1 << 64)


def test_fixed_vectors():
    """Literal keys (computed once with hashlib.blake2b(digest_size=2) of the 8-byte
    big-endian ids, PyChunkedGraph's _l2_chunk_lock_row_key and
    _downsample_block_lock_row_key layout): the format cannot drift unnoticed."""
    assert keys.l2_chunk(0x0400000000000011) == bytes.fromhex("41ad0400000000000011")
    assert keys.block(1, 2, 3) == bytes.fromhex(
        "a96c" "0000000000000001" "0000000000000002" "0000000000000003")
