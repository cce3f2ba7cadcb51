"""Lock row keys, byte-identical to PyChunkedGraph's hash-prefixed keys.

A 2-byte BLAKE2b digest of the packed id goes first so that neighbouring chunks
spread over the lock table's partitions (and Bigtable's tablets in
PyChunkedGraph); the packed id follows, so the key stays unique.
"""
import hashlib

__all__ = ["l2_chunk", "block", "root"]


def _u64(v, what):
    v = int(v)
    if not 0 <= v < 1 << 64:
        raise ValueError("%s: %d is not an unsigned 64-bit integer" % (what, v))
    return v.to_bytes(8, "big")


def _hash_prefixed(packed):
    return hashlib.blake2b(packed, digest_size=2).digest() + packed


def l2_chunk(chunk_id):
    """The 10-byte lock row of an L2 chunk: blake2b(digest_size=2) of the 8-byte
    big-endian chunk id, then those 8 bytes."""
    return _hash_prefixed(_u64(chunk_id, "chunk_id"))


def block(x, y, z):
    """The 26-byte lock row of a downsample block: blake2b(digest_size=2) of x, y, z
    as 8-byte big-endian integers, then those 24 bytes."""
    return _hash_prefixed(_u64(x, "x") + _u64(y, "y") + _u64(z, "z"))


def root(root_id):
    """The lock row :class:`strata.RootLock` uses for a root id: the 8-byte
    big-endian id (Strata's own convention; PyChunkedGraph locks roots in
    their node rows, which Strata has no use for)."""
    return _u64(root_id, "root_id")
