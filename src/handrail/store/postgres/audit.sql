-- The audit log's named queries (handrail.store.postgres.audit). Parameters are psycopg's
-- %(named)s placeholders; batches are written as parallel arrays through unnest().

-- name: insert_records
INSERT INTO handrail_audit_records
    (call_id, task_id, kind, created_at, compliance_json, technical_json, leaf_body)
SELECT *
FROM unnest(%(call_id)s::text[], %(task_id)s::text[], %(kind)s::text[],
    %(created_at)s::double precision[], %(compliance_json)s::text[],
    %(technical_json)s::text[], %(leaf_body)s::text[])
ON CONFLICT (call_id) DO NOTHING;

-- name: try_lock
SELECT pg_try_advisory_xact_lock(%(lock)s);

-- name: insert_drafts
INSERT INTO handrail_audit_drafts
    (call_id, task_id, kind, created_at, compliance_json, key_id, raw_input, raw_output, error,
     facts)
SELECT d.call_id, d.task_id, d.kind, d.created_at, d.compliance_json, d.key_id, d.raw_input,
    d.raw_output, d.error, d.facts
FROM json_populate_recordset(NULL::handrail_audit_drafts, %(drafts)s::json) AS d;

-- name: drafts
SELECT id, call_id, task_id, kind, created_at, compliance_json, key_id, raw_input,
       raw_output, error, facts
FROM handrail_audit_drafts
ORDER BY id
LIMIT %(limit)s;

-- name: delete_drafts
DELETE FROM handrail_audit_drafts WHERE id = ANY(%(ids)s::bigint[]);

-- name: pending_count
SELECT (SELECT count(*) FROM handrail_audit_pending)
     + (SELECT count(*) FROM handrail_audit_drafts);

-- name: pending_batch
SELECT p.record_id, r.leaf_body
FROM handrail_audit_pending p
JOIN handrail_audit_records r ON r.id = p.record_id
ORDER BY p.record_id
LIMIT %(limit)s;

-- name: latest_state
SELECT size, frontier, note FROM handrail_audit_checkpoints ORDER BY size DESC LIMIT 1;

-- name: insert_leaves
INSERT INTO handrail_audit_leaves (leaf_index, record_id, leaf_hash)
SELECT * FROM unnest(%(leaf_index)s::bigint[], %(record_id)s::bigint[], %(leaf_hash)s::bytea[]);

-- name: insert_nodes
INSERT INTO handrail_audit_nodes (level, idx, hash)
SELECT * FROM unnest(%(level)s::smallint[], %(idx)s::bigint[], %(hash)s::bytea[]);

-- name: dequeue
DELETE FROM handrail_audit_pending WHERE record_id = ANY(%(record_id)s::bigint[]);

-- name: insert_checkpoint
INSERT INTO handrail_audit_checkpoints (size, root_hash, note, frontier, created_at)
VALUES (%(size)s, %(root_hash)s, %(note)s, %(frontier)s, %(created_at)s);

-- name: enqueue_outbox
INSERT INTO handrail_audit_outbox (sink, record_id, leaf_index, next_attempt_at)
SELECT s.sink, l.record_id, l.leaf_index, %(now)s
FROM unnest(%(sinks)s::text[]) AS s (sink)
CROSS JOIN unnest(%(record_id)s::bigint[], %(leaf_index)s::bigint[]) AS l (record_id, leaf_index)
ON CONFLICT (sink, record_id) DO NOTHING;

-- name: latest_checkpoint
SELECT note, created_at FROM handrail_audit_checkpoints ORDER BY size DESC LIMIT 1;

-- name: checkpoints
SELECT note, created_at FROM handrail_audit_checkpoints
WHERE %(up_to)s::bigint IS NULL OR size <= %(up_to)s::bigint
ORDER BY size;

-- name: records
SELECT r.id, r.call_id, r.task_id, r.kind, r.created_at, r.compliance_json,
       r.technical_json, r.leaf_body, l.leaf_index, l.leaf_hash
FROM handrail_audit_records r
LEFT JOIN handrail_audit_leaves l ON l.record_id = r.id
WHERE r.id > %(after_id)s
  AND (%(task_id)s::text IS NULL OR r.task_id = %(task_id)s::text)
  AND (%(kind)s::text IS NULL OR r.kind = %(kind)s::text)
  AND (%(since)s::double precision IS NULL OR r.created_at >= %(since)s::double precision)
  AND (%(until)s::double precision IS NULL OR r.created_at < %(until)s::double precision)
ORDER BY r.id
LIMIT %(limit)s;

-- name: record
SELECT r.id, r.call_id, r.task_id, r.kind, r.created_at, r.compliance_json,
       r.technical_json, r.leaf_body, l.leaf_index, l.leaf_hash
FROM handrail_audit_records r
LEFT JOIN handrail_audit_leaves l ON l.record_id = r.id
WHERE r.call_id = %(call_id)s;

-- name: leaves
SELECT l.leaf_index, r.leaf_body
FROM handrail_audit_leaves l
JOIN handrail_audit_records r ON r.id = l.record_id
WHERE l.leaf_index >= %(start)s AND l.leaf_index < %(end)s
ORDER BY l.leaf_index;

-- name: leaf_hashes
SELECT leaf_index, leaf_hash FROM handrail_audit_leaves
WHERE leaf_index = ANY(%(indexes)s::bigint[]);

-- name: node_hashes
SELECT n.level, n.idx, n.hash
FROM handrail_audit_nodes n
JOIN unnest(%(level)s::smallint[], %(idx)s::bigint[]) AS k (level, idx)
  ON n.level = k.level AND n.idx = k.idx;

-- name: due
SELECT r.id, r.call_id, r.task_id, r.kind, r.created_at, r.compliance_json,
       r.technical_json, r.leaf_body, l.leaf_index, l.leaf_hash,
       o.attempts, o.next_attempt_at, o.last_error
FROM handrail_audit_outbox o
JOIN handrail_audit_records r ON r.id = o.record_id
JOIN handrail_audit_leaves l ON l.record_id = o.record_id
WHERE o.sink = %(sink)s AND o.delivered_at IS NULL
ORDER BY o.leaf_index
LIMIT %(limit)s;

-- name: delivered
UPDATE handrail_audit_outbox
SET delivered_at = %(now)s, attempts = attempts + 1, last_error = NULL
WHERE sink = %(sink)s AND record_id = ANY(%(record_id)s::bigint[]) AND delivered_at IS NULL;

-- name: failed
UPDATE handrail_audit_outbox
SET attempts = attempts + 1, next_attempt_at = %(next_at)s, last_error = %(error)s
WHERE sink = %(sink)s AND record_id = %(record_id)s AND delivered_at IS NULL;

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
SELECT count(*) FILTER (WHERE delivered_at IS NULL),
       count(*) FILTER (WHERE delivered_at IS NOT NULL)
FROM handrail_audit_outbox WHERE sink = %(sink)s;

-- name: backlog_head
SELECT o.leaf_index, r.created_at, o.attempts, o.next_attempt_at, o.last_error
FROM handrail_audit_outbox o
JOIN handrail_audit_records r ON r.id = o.record_id
WHERE o.sink = %(sink)s AND o.delivered_at IS NULL
ORDER BY o.leaf_index
LIMIT 1;

-- name: live_key
SELECT k.key FROM handrail_audit_data_keys k
WHERE k.key_id = %(key_id)s
  AND NOT EXISTS (SELECT FROM handrail_audit_key_tombstones t WHERE t.key_id = %(key_id)s);

-- name: key_lock
SELECT pg_advisory_xact_lock(%(lock)s, hashtext(%(key_id)s));

-- name: tombstone
SELECT destroyed_at, destroyed_by, reason FROM handrail_audit_key_tombstones
WHERE key_id = %(key_id)s;

-- name: make_key
INSERT INTO handrail_audit_data_keys (key_id, key, created_at)
VALUES (%(key_id)s, %(key)s, %(now)s)
ON CONFLICT (key_id) DO NOTHING;

-- name: get_key
SELECT key FROM handrail_audit_data_keys WHERE key_id = %(key_id)s;

-- name: delete_key
DELETE FROM handrail_audit_data_keys WHERE key_id = %(key_id)s;

-- name: bury_key
INSERT INTO handrail_audit_key_tombstones (key_id, destroyed_at, destroyed_by, reason)
VALUES (%(key_id)s, %(now)s, %(by)s, %(reason)s)
ON CONFLICT (key_id) DO NOTHING;
