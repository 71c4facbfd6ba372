#!/usr/bin/env python3
"""Audit log benchmark: offline bundle verification throughput and Merkle proofs at scale.

Run from the repository with the project's environment (it needs only handrail and
``cryptography``, not the peers of ``bench.py``)::

    .venv/bin/python benchmarks/audit_bench.py            # 1M records, ~2 minutes
    .venv/bin/python benchmarks/audit_bench.py --records 100000 --repeats 1 --engine 2000

It builds signed bundles of ``--records`` records (a checkpoint every ``--batch``
records, as a batching sequencer would sign them), then measures, each as the median of
``--repeats`` runs:

1. ``verify_bundle`` end to end on the bundle's bytes (split into lines, check every
   checkpoint signature, hash every leaf, compare the root at every checkpoint), for two
   record shapes: *compact* (7 fields, about 230 bytes a leaf) and *engine-shaped* (the
   leaf of a tool-call record as the engine writes it: the compliance view plus the
   salted commitments of the raw input and output, about 720 bytes a leaf);
2. the same with one checkpoint only (the plain check: leaf hashing + root comparison),
   and streaming from a file (``verify_bundle_file``, flat memory);
3. building a :class:`MerkleTree` (all interior nodes) from the stored leaf hashes at once
   and one leaf at a time, and a :class:`CompactRange` one leaf at a time (the
   sequencer's path);
4. inclusion and consistency proofs at that size: generation from the tree, size (hashes
   and bytes), and verification; and one inclusion proof from the bare list of leaf
   hashes (O(n));
5. with the real engine (``--engine`` records, 0 skips it): a workflow on ``App(path)``
   (SQLite, the default App: every step writes its audit record) makes the records,
   a :class:`~handrail.audit.sequencer.Sequencer` configured as the worker's (a checkpoint
   every 256 records) seals them, ``audit_ops.export_log`` exports the bundle and
   ``audit_ops.verify_bundle_file`` verifies it offline against the public key; also
   ``audit_ops.verify_log`` (export + verify from the store) and the proofs the store
   serves (``log.inclusion_proof`` / ``log.consistency_proof``).

Prints markdown tables (and a goal check: offline verification >= 200k records/s at 1M
records); temporary files go to the temp dir and are removed. ``--json PATH`` also
writes every number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from hashlib import sha256
from pathlib import Path
from typing import Any

from handrail.audit.bundle import BundleHeader, encode_bundle
from handrail.audit.checkpoint import Checkpoint, SigningKey, sign_checkpoint
from handrail.audit.compact import CompactRange
from handrail.audit.leaf import canonical_json, encode_leaf
from handrail.audit.merkle import (
    inclusion_proof,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from handrail.audit.record import leaf_bytes
from handrail.audit.tree import MerkleTree
from handrail.audit.verify import verify_bundle, verify_bundle_file

ORIGIN = "bench.handrail.example/audit"
VERIFY_GOAL = 200_000  # records/s, offline verification (issue #4)


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


def engine_template() -> dict[str, Any]:
    """The leaf body of one tool-call record built by the engine's own builder (with a
    sealing vault, so it carries the commitments of its raw input and output)."""
    from handrail.audit.payloads import MemoryKeyStore, PayloadVault
    from handrail.audit.record import build_tool_call_record

    task = "0" * 32
    row = build_tool_call_record(
        call_id=f"{task}:0:1",
        task_id=task,
        tool_name="refund",
        params={"order_id": "A-1001", "amount_cents": 1999},
        started_at=1_790_000_000.0,
        duration_ms=0.25,
        logged_at=1_790_000_000.001,
        vault=PayloadVault(MemoryKeyStore()),
        output={"refund_id": "R-1001", "status": "ok"},
        describe="Refund {amount_cents} cents on order {order_id}",
        data_accessed=("orders",),
        data_modified=("payments",),
        agent_id="support-agent",
        authorized_by="policy: no approval required",
        step_index=0,
        attempt=1,
    )
    body: dict[str, Any] = json.loads(row.leaf_body)
    return body


def engine_leaves(n: int) -> list[bytes]:
    """``n`` engine-shaped leaves: the template with its task, call id, step index,
    timestamps and commitments varied per record (1000 steps a task)."""
    base = engine_template()
    leaves = []
    for seq in range(n):
        task, index = f"{seq // 1000:032x}", seq % 1000
        body = dict(base)
        body.update(
            call_id=f"{task}:{index}:1",
            task_id=task,
            step_index=index,
            duration_us=200 + seq % 97,
            commitments={
                "raw_input": sha256(b"in%d" % seq).hexdigest(),
                "raw_output": sha256(b"out%d" % seq).hexdigest(),
            },
        )
        leaves.append(leaf_bytes(canonical_json(body).decode("utf-8"), seq))
    return leaves


def signed_bundles(
    leaves: list[bytes], key: SigningKey, batch: int
) -> tuple[list[bytes], MerkleTree, bytes, bytes, int]:
    """(leaf hashes, tree, bundle with a checkpoint every ``batch``, bundle with the last
    checkpoint only, number of checkpoints)."""
    n = len(leaves)
    hashes = [leaf_hash(leaf) for leaf in leaves]
    tree = MerkleTree(hashes)
    sizes = [*range(batch, n, batch), n]
    notes = tuple(sign_checkpoint(Checkpoint(ORIGIN, s, tree.root(s)), key) for s in sizes)
    batched = encode_bundle(BundleHeader(ORIGIN, key.public_key, notes), leaves)
    single = encode_bundle(BundleHeader(ORIGIN, key.public_key, notes[-1:]), leaves)
    assert verify_bundle(batched, trusted_key=key.public_key).ok
    assert verify_bundle(single, trusted_key=key.public_key).ok
    return hashes, tree, batched, single, len(notes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000, help="records per checkpoint")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--proofs", type=int, default=2000, help="proofs sampled per kind")
    parser.add_argument(
        "--engine", type=int, default=20_000, help="records made by the real engine (0: skip)"
    )
    parser.add_argument(
        "--store",
        type=int,
        default=None,
        help="records in a SQLite store's audit log for sealing/export/proofs "
        "(default: --records; 0: skip)",
    )
    parser.add_argument("--json", help="also write every number to this file")
    args = parser.parse_args()
    n, repeats = args.records, args.repeats
    rng = random.Random(6962)
    load_start = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")

    key = SigningKey.from_private_bytes(ORIGIN, bytes(32))
    rows: list[tuple[str, str]] = []
    numbers: dict[str, Any] = {"records": n, "batch": args.batch, "repeats": repeats}
    verify_rates: dict[str, float] = {}

    def rate(label: str, seconds: float, count: int = n, verify: bool = False) -> None:
        rows.append((label, f"{seconds:.3f} s = {count / seconds / 1000:,.0f}k records/s"))
        numbers[label] = {"seconds": seconds, "records_per_s": count / seconds}
        if verify:
            verify_rates[label] = count / seconds

    def verify_rows(shape: str, leaves: list[bytes]) -> tuple[list[bytes], MerkleTree]:
        hashes, tree, batched, single, checkpoints = signed_bundles(leaves, key, args.batch)
        per_leaf = (len(single) / n) if n else 0
        rate(
            f"{shape}: verify_bundle, {checkpoints} checkpoints "
            f"({len(batched) / 2**20:.0f} MiB, {per_leaf:.0f} B/leaf)",
            timed(lambda: verify_bundle(batched, trusted_key=key.public_key), repeats),
            verify=True,
        )
        rate(
            f"{shape}: verify_bundle, 1 checkpoint (plain check)",
            timed(lambda: verify_bundle(single, trusted_key=key.public_key), repeats),
            verify=True,
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bundle.jsonl"
            path.write_bytes(batched)
            rate(
                f"{shape}: verify_bundle_file, {checkpoints} checkpoints (streaming)",
                timed(lambda: verify_bundle_file(path, trusted_key=key.public_key), repeats),
                verify=True,
            )
        return hashes, tree

    # Engine-shaped first (the realistic size); its data is dropped before the compact one.
    verify_rows("engine-shaped", engine_leaves(n))
    hashes, tree = verify_rows("compact", [encode_leaf(seq, record(seq)) for seq in range(n)])
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

    def sizes(label: str, proofs: list[list[bytes]]) -> None:
        lengths = [len(p) for p in proofs]
        rows.append(
            (
                label,
                f"{min(lengths)}-{max(lengths)} hashes = {min(lengths) * 32}-"
                f"{max(lengths) * 32} bytes (median {statistics.median(lengths):.0f} hashes)",
            )
        )
        numbers[label] = {"min_hashes": min(lengths), "max_hashes": max(lengths)}

    def per_proof_row(label: str, run: Callable[[], object]) -> None:
        rows.append((label, per_proof(run)))

    sizes("inclusion proof size", inclusion)
    per_proof_row("inclusion proof, generate (MerkleTree)", make_inclusion)
    per_proof_row("inclusion proof, verify", check_inclusion)
    sizes("consistency proof size", consistency)
    per_proof_row("consistency proof, generate (MerkleTree)", make_consistency)
    per_proof_row("consistency proof, verify", check_consistency)
    one = timed(lambda: inclusion_proof(hashes, indexes[0]), 1)
    rows.append(("inclusion proof from the bare list (O(n))", f"{one * 1000:.0f} ms"))

    engine_rows: list[tuple[str, str]] = []
    if args.engine > 0:
        engine_rows = engine_bench(args.engine, repeats, args.proofs, numbers, verify_rates)
    store_n = n if args.store is None else args.store
    store_rows: list[tuple[str, str]] = []
    if store_n > 0:
        store_rows = store_bench(store_n, repeats, args.proofs, numbers, verify_rates)

    load_end = os.getloadavg()
    print(f"## handrail audit log, {n:,} records — {started}\n")
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {platform.system()}, "
        f"{os.cpu_count()} CPUs; 1-min load average {load_start[0]:.2f} at start, "
        f"{load_end[0]:.2f} at end; median of {repeats} run(s); checkpoint every "
        f"{args.batch:,} records\n"
    )
    print("| measurement | result |\n|---|---|")
    for label, value in rows:
        print(f"| {label} | {value} |")
    if engine_rows:
        print(f"\n### Real engine: {args.engine:,} records made by workflow steps on App(path)\n")
        print("| measurement | result |\n|---|---|")
        for label, value in engine_rows:
            print(f"| {label} | {value} |")
    if store_rows:
        print(
            f"\n### A SQLite store's audit log at {store_n:,} records (engine-shaped rows "
            "appended directly, then the engine's sequencer, export, verify and proofs)\n"
        )
        print("| measurement | result |\n|---|---|")
        for label, value in store_rows:
            print(f"| {label} | {value} |")
    slowest = min((v, k) for k, v in verify_rates.items())
    status = "met" if slowest[0] >= VERIFY_GOAL else "NOT met"
    print("\n| goal | measured (slowest verification above) | status |\n|---|---:|---|")
    print(
        f"| offline verification ≥ {VERIFY_GOAL // 1000}k records/s | "
        f"{slowest[0] / 1000:,.0f}k records/s ({slowest[1]}) | {status} |"
    )
    numbers.update(
        started=started,
        loadavg_start=load_start,
        loadavg_end=load_end,
        verify_goal={"records_per_s": VERIFY_GOAL, "slowest": slowest, "status": status},
    )
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=2, default=str))
    return 0


def engine_bench(
    records: int,
    repeats: int,
    proofs: int,
    numbers: dict[str, Any],
    verify_rates: dict[str, float],
) -> list[tuple[str, str]]:
    """Records made by workflow steps of the real engine, then sealed, exported and
    verified by it (see the module docs, step 5)."""
    import handrail

    rows: list[tuple[str, str]] = []
    steps = 1000
    tasks = max(1, records // steps)
    with tempfile.TemporaryDirectory(prefix="handrail-audit-bench-") as tmp:
        app = handrail.App(str(Path(tmp) / "engine.db"))

        @app.tool(
            idempotent=True,
            describe="Refund {amount_cents} cents on order {order_id}",
            data_accessed=("orders",),
            data_modified=("payments",),
        )
        def refund(order_id: str, amount_cents: int) -> dict[str, str]:
            return {"refund_id": f"R-{order_id}", "status": "ok"}

        @app.workflow
        def support(ctx: handrail.TaskContext, n: int) -> int:
            for i in range(n):
                refund(f"A-{i}", 100 + i)
            return n

        t0 = time.perf_counter()
        for _ in range(tasks):
            assert app.run(support, steps).result() == steps
        made = time.perf_counter() - t0
        pending = app.store.audit_log().pending()
        rows.append(
            (
                "records made (workflow steps on App(path), SQLite synchronous=FULL)",
                f"{pending:,} records in {made:.2f} s ({made / pending * 1e6:.0f} µs/step)",
            )
        )
        try:
            rows += seal_export_verify(
                app, Path(tmp), "engine", repeats, proofs, numbers, verify_rates
            )
        finally:
            app.close()
    return rows


def store_bench(
    records: int,
    repeats: int,
    proofs: int,
    numbers: dict[str, Any],
    verify_rates: dict[str, float],
) -> list[tuple[str, str]]:
    """A SQLite store's audit log at ``records`` records: engine-shaped rows appended
    directly (``log.append``, no workflow: making 1M steps would take minutes), then sealed,
    exported, verified and asked for proofs by the engine's own code."""
    import handrail
    from handrail.audit.record import AuditRow

    base = engine_template()
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="handrail-audit-bench-") as tmp:
        app = handrail.App(str(Path(tmp) / "store.db"))
        log = app.store.audit_log()
        t0 = time.perf_counter()
        chunk = 10_000
        for first in range(0, records, chunk):
            batch = []
            for seq in range(first, min(first + chunk, records)):
                task, index = f"{seq // 1000:032x}", seq % 1000
                compliance = dict(base)
                del compliance["commitments"]
                compliance.update(call_id=f"{task}:{index}:1", task_id=task, step_index=index)
                body = dict(compliance)
                body["commitments"] = {
                    "raw_input": sha256(b"in%d" % seq).hexdigest(),
                    "raw_output": sha256(b"out%d" % seq).hexdigest(),
                }
                batch.append(
                    AuditRow(
                        call_id=compliance["call_id"],
                        task_id=task,
                        kind="tool_call",
                        created_at=1_790_000_000.0 + seq / 1000,
                        compliance_json=canonical_json(compliance).decode("utf-8"),
                        technical_json=None,
                        leaf_body=canonical_json(body).decode("utf-8"),
                    )
                )
            log.append(batch)
        made = time.perf_counter() - t0
        rows.append(
            (
                "records appended (log.append, 10,000 a transaction)",
                f"{log.pending():,} records in {made:.1f} s",
            )
        )
        try:
            rows += seal_export_verify(
                app, Path(tmp), "store", repeats, proofs, numbers, verify_rates
            )
        finally:
            app.close()
    return rows


def seal_export_verify(
    app: Any,
    tmp: Path,
    name: str,
    repeats: int,
    proofs: int,
    numbers: dict[str, Any],
    verify_rates: dict[str, float],
) -> list[tuple[str, str]]:
    """Seal what ``app``'s audit log holds as the worker does, export it, verify it
    offline and from the store, and time the proofs the store serves."""
    from handrail import audit_ops
    from handrail.audit.keys import load_or_create_signing_key
    from handrail.audit.sequencer import Sequencer

    rows: list[tuple[str, str]] = []
    log = app.store.audit_log()
    path = audit_ops.signing_key_path(app.store, None)
    assert path is not None
    signing = load_or_create_signing_key(audit_ops.LOG_ORIGIN, path=path)
    # The worker's sequencer (audit_jobs.AuditJobs): 256 records a checkpoint.
    sequencer = Sequencer(log, signing, audit_ops.LOG_ORIGIN, poll_seconds=0.5)
    t0 = time.perf_counter()
    signed = sequencer.flush()
    sealed = time.perf_counter() - t0
    latest = log.latest_checkpoint()
    assert latest is not None
    size = latest.size
    rows.append(
        (
            "seal: Sequencer.flush(), configured as the worker's (256 records a checkpoint)",
            f"{size:,} records, {len(signed):,} checkpoints in {sealed:.2f} s "
            f"= {size / sealed / 1000:,.1f}k records/s",
        )
    )
    numbers[f"{name} seal"] = {"seconds": sealed, "records": size, "checkpoints": len(signed)}
    public, _ = audit_ops.public_key_for(app.store)
    bundle = tmp / "audit-bundle.jsonl"
    caller = {"auditor"}

    def export() -> None:
        with bundle.open("wb") as fh:
            audit_ops.export_log(app.store, caller, fh)

    seconds = timed(export, repeats)
    nbytes = bundle.stat().st_size
    rows.append(
        (
            "export: audit_ops.export_log to a file",
            f"{nbytes / 2**20:.1f} MiB ({nbytes / size:.0f} B/record) in {seconds:.3f} s "
            f"= {size / seconds / 1000:,.0f}k records/s",
        )
    )
    numbers[f"{name} export"] = {"seconds": seconds, "bytes": nbytes}

    def check() -> None:
        result = audit_ops.verify_bundle_file(bundle, public_key=public)
        assert result.ok, result
        assert result.records == size, result

    seconds = timed(check, repeats)
    label = f"{name} bundle: audit_ops.verify_bundle_file (offline, trusted public key)"
    rows.append(
        (
            "verify the exported bundle offline: audit_ops.verify_bundle_file",
            f"{seconds:.3f} s = {size / seconds / 1000:,.0f}k records/s",
        )
    )
    numbers[label] = {"seconds": seconds, "records_per_s": size / seconds}
    verify_rates[label] = size / seconds

    def verify_store() -> None:
        assert audit_ops.verify_log(app.store, caller).ok

    seconds = timed(verify_store, repeats)
    rows.append(
        (
            "verify in place: audit_ops.verify_log (export to a temp file + verify)",
            f"{seconds:.3f} s = {size / seconds / 1000:,.0f}k records/s",
        )
    )
    numbers[f"{name} verify_log"] = {"seconds": seconds, "records_per_s": size / seconds}

    rng = random.Random(4)
    count = min(proofs, 500)
    leaves = [rng.randrange(size) for _ in range(count)]
    olds = [rng.randrange(1, size) for _ in range(count)]
    t0 = time.perf_counter()
    inclusion = [log.inclusion_proof(leaf) for leaf in leaves]
    made_inclusion = (time.perf_counter() - t0) / count
    t0 = time.perf_counter()
    for proof in inclusion:
        proof.verify()
    checked_inclusion = (time.perf_counter() - t0) / count
    t0 = time.perf_counter()
    consistency = [log.consistency_proof(old) for old in olds]
    made_consistency = (time.perf_counter() - t0) / count
    lengths = [len(p.path) for p in inclusion]
    rows.append(
        (
            f"inclusion proof served by the store at {size:,} (log.inclusion_proof)",
            f"{min(lengths)}-{max(lengths)} hashes = {min(lengths) * 32}-{max(lengths) * 32} "
            f"bytes; {made_inclusion * 1e6:.0f} µs to serve, {checked_inclusion * 1e6:.0f} µs "
            "to verify",
        )
    )
    clengths = [len(p) for p in consistency]
    rows.append(
        (
            f"consistency proof served by the store to {size:,} (log.consistency_proof)",
            f"{min(clengths)}-{max(clengths)} hashes = {min(clengths) * 32}-"
            f"{max(clengths) * 32} bytes; {made_consistency * 1e6:.0f} µs to serve",
        )
    )
    numbers[f"{name} proofs"] = {
        "inclusion_hashes": [min(lengths), max(lengths)],
        "inclusion_serve_us": made_inclusion * 1e6,
        "inclusion_verify_us": checked_inclusion * 1e6,
        "consistency_hashes": [min(clengths), max(clengths)],
        "consistency_serve_us": made_consistency * 1e6,
    }
    return rows


if __name__ == "__main__":
    sys.exit(main())
