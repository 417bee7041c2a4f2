"""RFC 9162 (RFC 6962) Merkle tree hashing, proof planning and proof verification.

Hashing follows RFC 9162 §2.1.1: a leaf hash is SHA-256(0x00 || entry), an interior node is
SHA-256(0x01 || left || right), the tree splits at the largest power of two smaller than its size,
and the empty tree hashes to SHA-256("").

Proofs are *planned* here as lists of leaf ranges [start, end) whose Merkle Tree Hashes form the
proof (the order of RFC 9162 §2.1.3.1 and §2.1.4.1), so that storage code can fetch the hashes from
wherever it keeps them without touching the algorithm. Verification follows RFC 9162 §2.1.3.2 and
§2.1.4.2: `root_from_inclusion_proof` computes, `verify_inclusion` compares and raises.

This module does no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from verifier.errors import FormatError, RootMismatchError, VerificationError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


def leaf_hash(entry: bytes) -> bytes:
    """The RFC 9162 leaf hash of one entry."""
    return _sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 9162 hash of an interior node."""
    return _sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of_hashes(hashes: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of a sequence of already-hashed leaves (or subtree roots of equal size).

    Iterative: pairs are hashed level by level, and an odd last node is carried up unchanged,
    which yields exactly the RFC 9162 split-at-largest-power-of-two tree.
    """
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    while len(level) > 1:
        nxt = [_sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) & 1:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def fold_right(subtrees: Sequence[bytes]) -> bytes:
    """Combine the roots of a tree's complete subtrees (left to right, decreasing sizes) into its root."""
    if not subtrees:
        return EMPTY_ROOT
    root = subtrees[-1]
    for h in reversed(subtrees[:-1]):
        root = _sha256(b"\x01" + h + root).digest()
    return root


def complete_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """Decompose [start, end) into complete subtrees, as (level, index) pairs, left to right.

    The range must be one that occurs in RFC 9162 trees: `start` aligned to a power of two at least
    as large as the range. Its Merkle Tree Hash is `fold_right` of the subtree hashes.
    """
    out: list[tuple[int, int]] = []
    size = end - start
    pos = start
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((level, pos >> level))
            pos += 1 << level
    return out


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes make up the inclusion proof of `index` in a tree of `size`.

    Ordered from the leaf's sibling up to the root's child (RFC 9162 §2.1.3.1, PATH(m, D[n])).
    """
    if not 0 <= index < size:
        raise ValueError(f"index {index} is outside a tree of size {size}")
    out: list[tuple[int, int]] = []
    lo, hi, m = 0, size, index
    while hi - lo > 1:
        k = split_point(hi - lo)
        if m < k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo, m = lo + k, m - k
    out.reverse()
    return out


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes make up the consistency proof from size1 to size2.

    RFC 9162 §2.1.4.1, SUBPROOF(m, D[n], true). Empty when the sizes are equal.
    """
    if not 0 < size1 <= size2:
        raise ValueError(f"no consistency proof from size {size1} to size {size2}")
    out: list[tuple[int, int]] = []
    lo, hi, m, whole = 0, size2, size1, True
    while True:
        if m == hi - lo:
            if not whole:
                out.append((lo, hi))
            break
        k = split_point(hi - lo)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    out.reverse()
    return out


def _check_hashes(proof: Sequence[bytes]) -> None:
    for i, h in enumerate(proof):
        if len(h) != HASH_SIZE:
            raise FormatError(f"proof hash {i} is {len(h)} bytes, not {HASH_SIZE}")


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """Compute the root implied by an inclusion proof (RFC 9162 §2.1.3.2). Raises on a malformed proof."""
    if index < 0 or size <= 0 or index >= size:
        raise VerificationError(f"index {index} is outside a tree of size {size}", code="bad_index")
    if len(leaf) != HASH_SIZE:
        raise FormatError(f"leaf hash is {len(leaf)} bytes, not {HASH_SIZE}")
    _check_hashes(proof)
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise VerificationError("inclusion proof is longer than the tree is deep", code="bad_proof_length")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("inclusion proof is shorter than the tree is deep", code="bad_proof_length")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Raise unless `proof` shows the leaf hash at `index` in the tree of `size` with `root`."""
    computed = root_from_inclusion_proof(index, size, leaf, proof)
    if computed != root:
        raise RootMismatchError(root, computed)


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]) -> None:
    """Raise unless `proof` shows the tree (size1, root1) is a prefix of (size2, root2) (RFC 9162 §2.1.4.2).

    Policy: a consistency proof from the empty tree proves nothing and is refused.
    """
    if size1 < 0 or size2 < 0:
        raise VerificationError("tree sizes must not be negative", code="bad_size")
    if size1 > size2:
        raise VerificationError(
            f"tree size {size1} is larger than {size2}: a log never shrinks", code="bad_size"
        )
    if size1 == 0:
        raise VerificationError("a consistency proof from the empty tree proves nothing", code="bad_size")
    if size1 == size2:
        if proof:
            raise VerificationError("trees of equal size need an empty consistency proof", code="bad_proof_length")
        if root1 != root2:
            raise RootMismatchError(root1, root2, "root of equal-size trees")
        return
    _check_hashes(proof)
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        # size1 is a power of two: its root is a node of the larger tree and starts the path.
        path.insert(0, root1)
    if not path:
        raise VerificationError("consistency proof is empty", code="bad_proof_length")
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof is too long", code="bad_proof_length")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("consistency proof is too short", code="bad_proof_length")
    if fr != root1:
        raise RootMismatchError(root1, fr, "old root")
    if sr != root2:
        raise RootMismatchError(root2, sr, "new root")
