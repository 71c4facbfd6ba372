-- The audit log's named queries (handrail.store.sqlite.audit).

-- name: insert_record
INSERT INTO handrail_audit_records
    (call_id, task_id, kind, created_at, compliance_json, technical_json, leaf_body)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (call_id) DO NOTHING;

-- name: insert_draft
INSERT INTO handrail_audit_drafts
    (call_id, task_id, kind, created_at, compliance_json, key_id, raw_input, raw_output, error,
     facts)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: drafts
SELECT id, call_id, task_id, kind, created_at, compliance_json, key_id, raw_input,
       raw_output, error, facts
FROM handrail_audit_drafts
ORDER BY id
LIMIT ?;

-- name: delete_draft
DELETE FROM handrail_audit_drafts WHERE id = ? AND call_id = ?;

-- name: pending_count
SELECT (SELECT count(*) FROM handrail_audit_pending)
     + (SELECT count(*) FROM handrail_audit_drafts);

-- name: pending_batch
SELECT p.record_id, r.leaf_body
FROM handrail_audit_pending p
JOIN handrail_audit_records r ON r.id = p.record_id
ORDER BY p.record_id
LIMIT ?;

-- name: latest_state
SELECT size, frontier, note FROM handrail_audit_checkpoints ORDER BY size DESC LIMIT 1;

-- name: insert_leaf
INSERT INTO handrail_audit_leaves (leaf_index, record_id, leaf_hash) VALUES (?, ?, ?);

-- name: insert_node
INSERT INTO handrail_audit_nodes (level, idx, hash) VALUES (?, ?, ?);

-- name: dequeue
DELETE FROM handrail_audit_pending WHERE record_id = ?;

-- name: insert_checkpoint
INSERT INTO handrail_audit_checkpoints (size, root_hash, note, frontier, created_at)
VALUES (?, ?, ?, ?, ?);

-- name: enqueue_outbox
INSERT INTO handrail_audit_outbox (sink, record_id, leaf_index, next_attempt_at)
VALUES (?, ?, ?, ?)
ON CONFLICT (sink, record_id) DO NOTHING;

-- name: latest_checkpoint
SELECT note, created_at FROM handrail_audit_checkpoints ORDER BY size DESC LIMIT 1;

-- name: checkpoints
SELECT note, created_at FROM handrail_audit_checkpoints
WHERE :up_to IS NULL OR size <= :up_to
ORDER BY size;

-- name: records
SELECT r.id, r.call_id, r.task_id, r.kind, r.created_at, r.compliance_json,
       r.technical_json, r.leaf_body, l.leaf_index, l.leaf_hash
FROM handrail_audit_records r
LEFT JOIN handrail_audit_leaves l ON l.record_id = r.id
WHERE r.id > :after_id
  AND (:task_id IS NULL OR r.task_id = :task_id)
  AND (:kind IS NULL OR r.kind = :kind)
  AND (:since IS NULL OR r.created_at >= :since)
  AND (:until IS NULL OR r.created_at < :until)
ORDER BY r.id
LIMIT :limit;

-- name: record
SELECT r.id, r.call_id, r.task_id, r.kind, r.created_at, r.compliance_json,
       r.technical_json, r.leaf_body, l.leaf_index, l.leaf_hash
FROM handrail_audit_records r
LEFT JOIN handrail_audit_leaves l ON l.record_id = r.id
WHERE r.call_id = ?;

-- name: leaves
SELECT l.leaf_index, r.leaf_body
FROM handrail_audit_leaves l
JOIN handrail_audit_records r ON r.id = l.record_id
WHERE l.leaf_index >= ? AND l.leaf_index < ?
ORDER BY l.leaf_index;

-- name: leaf_hashes
SELECT leaf_index, leaf_hash FROM handrail_audit_leaves
WHERE leaf_index IN (SELECT value FROM json_each(?));

-- name: node_hashes
SELECT n.level, n.idx, n.hash
FROM handrail_audit_nodes n
JOIN json_each(?) k
  ON n.level = json_extract(k.value, '$[0]') AND n.idx = json_extract(k.value, '$[1]');

-- name: due
SELECT r.id, r.call_id, r.task_id, r.kind, r.created_at, r.compliance_json,
       r.technical_json, r.leaf_body, l.leaf_index, l.leaf_hash,
       o.attempts, o.next_attempt_at, o.last_error
FROM handrail_audit_outbox o
JOIN handrail_audit_records r ON r.id = o.record_id
JOIN handrail_audit_leaves l ON l.record_id = o.record_id
WHERE o.sink = ? AND o.delivered_at IS NULL
ORDER BY o.leaf_index
LIMIT ?;

-- name: delivered
UPDATE handrail_audit_outbox
SET delivered_at = ?, attempts = attempts + 1, last_error = NULL
WHERE sink = ? AND record_id = ? AND delivered_at IS NULL;

-- name: failed
UPDATE handrail_audit_outbox
SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?
WHERE sink = ? AND record_id = ? AND delivered_at IS NULL;

-- name: sinks
-- The distinct sinks, one index probe each (a skip scan of the outbox's primary key).
WITH RECURSIVE s (sink) AS (
    SELECT min(sink) FROM handrail_audit_outbox
    UNION ALL
    SELECT (SELECT min(sink) FROM handrail_audit_outbox WHERE sink > s.sink)
    FROM s WHERE s.sink IS NOT NULL
)
SELECT sink FROM s WHERE sink IS NOT NULL;

-- name: backlog_counts
SELECT count(*) FILTER (WHERE delivered_at IS NULL), count(*) FILTER (WHERE delivered_at IS NOT NULL)
FROM handrail_audit_outbox WHERE sink = ?;

-- name: backlog_head
SELECT o.leaf_index, r.created_at, o.attempts, o.next_attempt_at, o.last_error
FROM handrail_audit_outbox o
JOIN handrail_audit_records r ON r.id = o.record_id
WHERE o.sink = ? AND o.delivered_at IS NULL
ORDER BY o.leaf_index
LIMIT 1;
