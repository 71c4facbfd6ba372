#!/usr/bin/env python3
"""Audit log benchmark: offline bundle verification throughput and Merkle proofs at scale.

Run from the repository with the project's environment (it needs only handrail and
``cryptography``, not the peers of ``bench.py``)::

    .venv/bin/python benchmarks/audit_bench.py            # 1M records, ~1 minute
    .venv/bin/python benchmarks/audit_bench.py --records 100000 --repeats 1

It builds a signed bundle of ``--records`` records (about 170 bytes each, a checkpoint
every ``--batch`` records, as a batching sequencer would sign them), then measures, each
as the median of ``--repeats`` runs:

1. ``verify_bundle`` end to end on the bundle's bytes (split into lines, check every
   checkpoint signature, hash every leaf, compare the root at every checkpoint);
2. the same with one checkpoint only (the plain check: leaf hashing + root comparison),
   and streaming from a file (``verify_bundle_file``, flat memory);
3. building a :class:`MerkleTree` (all interior nodes) from the stored leaf hashes at once
   and one leaf at a time, and a :class:`CompactRange` one leaf at a time (the
   sequencer's path);
4. inclusion and consistency proofs at that size: generation from the tree, size, and
   verification; and one inclusion proof from the bare list of leaf hashes (O(n)).

Prints a markdown table; the bundle file of step 2 goes to the temp dir and is removed.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from hashlib import sha256
from pathlib import Path

from handrail.audit.bundle import BundleHeader, encode_bundle
from handrail.audit.checkpoint import Checkpoint, SigningKey, sign_checkpoint
from handrail.audit.compact import CompactRange
from handrail.audit.leaf import encode_leaf
from handrail.audit.merkle import (
    inclusion_proof,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from handrail.audit.tree import MerkleTree
from handrail.audit.verify import verify_bundle, verify_bundle_file

ORIGIN = "bench.handrail.example/audit"


def timed(run: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``run`` in seconds."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def record(seq: int) -> dict[str, object]:
    return {
        "action": "Refund order",
        "authorized_by": "alice@example.com",
        "outcome": "ok",
        "payload_digest": sha256(seq.to_bytes(8, "big")).hexdigest(),
        "step": seq % 10,
        "task_id": f"t-{seq // 10:07d}",
        "tool": "refund",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000, help="records per checkpoint")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--proofs", type=int, default=2000, help="proofs sampled per kind")
    args = parser.parse_args()
    n, repeats = args.records, args.repeats
    rng = random.Random(6962)

    key = SigningKey.from_private_bytes(ORIGIN, bytes(32))
    leaves = [encode_leaf(seq, record(seq)) for seq in range(n)]
    hashes = [leaf_hash(leaf) for leaf in leaves]
    tree = MerkleTree(hashes)
    sizes = [*range(args.batch, n, args.batch), n]
    notes = tuple(sign_checkpoint(Checkpoint(ORIGIN, s, tree.root(s)), key) for s in sizes)
    batched = encode_bundle(BundleHeader(ORIGIN, key.public_key, notes), leaves)
    single = encode_bundle(BundleHeader(ORIGIN, key.public_key, notes[-1:]), leaves)
    assert verify_bundle(batched, trusted_key=key.public_key).ok
    assert verify_bundle(single, trusted_key=key.public_key).ok

    rows: list[tuple[str, str]] = []

    def rate(label: str, seconds: float, count: int = n) -> None:
        rows.append((label, f"{seconds:.3f} s = {count / seconds / 1000:,.0f}k records/s"))

    rate(
        f"verify_bundle, {len(notes)} checkpoints ({len(batched) / 2**20:.0f} MiB)",
        timed(lambda: verify_bundle(batched, trusted_key=key.public_key), repeats),
    )
    rate(
        "verify_bundle, 1 checkpoint (plain check)",
        timed(lambda: verify_bundle(single, trusted_key=key.public_key), repeats),
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bundle.jsonl"
        path.write_bytes(single)
        rate(
            "verify_bundle_file, 1 checkpoint (streaming)",
            timed(lambda: verify_bundle_file(path, trusted_key=key.public_key), repeats),
        )
    rate("MerkleTree from stored leaf hashes", timed(lambda: MerkleTree(hashes), repeats))

    def compact() -> None:
        frontier = CompactRange()
        for h in hashes:
            frontier.append(h)

    rate("CompactRange.append, one leaf at a time", timed(compact, repeats))

    def grow() -> None:
        grown = MerkleTree()
        for h in hashes:
            grown.append(h)

    rate("MerkleTree.append, one leaf at a time", timed(grow, repeats))

    indexes = [rng.randrange(n) for _ in range(args.proofs)]
    olds = [rng.randrange(1, n) for _ in range(args.proofs)]
    root = tree.root()
    old_roots = {old: tree.root(old) for old in olds}
    inclusion = [tree.inclusion_proof(i) for i in indexes]
    consistency = [tree.consistency_proof(old) for old in olds]

    def per_proof(run: Callable[[], object]) -> str:
        return f"{timed(run, repeats) / args.proofs * 1e6:.1f} µs"

    def make_inclusion() -> None:
        for i in indexes:
            tree.inclusion_proof(i)

    def check_inclusion() -> None:
        for i, proof in zip(indexes, inclusion, strict=True):
            verify_inclusion(hashes[i], i, n, proof, root)

    def make_consistency() -> None:
        for old in olds:
            tree.consistency_proof(old)

    def check_consistency() -> None:
        for old, proof in zip(olds, consistency, strict=True):
            verify_consistency(old, n, old_roots[old], root, proof)

    lengths = [len(p) for p in inclusion]
    rows.append(
        (
            "inclusion proof size",
            f"{min(lengths)}-{max(lengths)} hashes (≤ {max(lengths) * 32} bytes)",
        )
    )
    rows.append(("inclusion proof, generate (MerkleTree)", per_proof(make_inclusion)))
    rows.append(("inclusion proof, verify", per_proof(check_inclusion)))
    lengths = [len(p) for p in consistency]
    rows.append(
        (
            "consistency proof size",
            f"{min(lengths)}-{max(lengths)} hashes (≤ {max(lengths) * 32} bytes)",
        )
    )
    rows.append(("consistency proof, generate (MerkleTree)", per_proof(make_consistency)))
    rows.append(("consistency proof, verify", per_proof(check_consistency)))
    one = timed(lambda: inclusion_proof(hashes, indexes[0]), 1)
    rows.append(("inclusion proof from the bare list (O(n))", f"{one * 1000:.0f} ms"))

    print(f"## handrail audit log, {n:,} records\n")
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {platform.system()}; "
        f"median of {repeats} run(s); checkpoint every {args.batch:,} records\n"
    )
    print("| measurement | result |\n|---|---|")
    for label, value in rows:
        print(f"| {label} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
