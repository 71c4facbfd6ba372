-- Named queries of the SQLite store. Parameters are :named.

-- name: insert_task
INSERT INTO handrail_tasks (task_id, workflow, queue, status, created_at, updated_at, run_at,
    initiator, max_execution_seconds)
VALUES (:task_id, :workflow, :queue, 'pending', :created_at, :created_at, :run_at,
    :initiator, :max_execution_seconds);

-- name: insert_event
INSERT INTO handrail_events (task_id, seq, kind, ts, step_index, step_name, inputs, outputs,
    reasoning, approval, error, actor, data)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: claim_task
UPDATE handrail_tasks
SET lease_owner = :worker, lease_expires_at = :expires, epoch = epoch + 1,
    status = 'in_progress', updated_at = :now
WHERE task_id = (
    SELECT task_id FROM handrail_tasks
    WHERE run_at <= :now
      AND (lease_owner IS NULL OR lease_expires_at <= :now)
      AND NOT EXISTS (
          SELECT 1 FROM handrail_halts h
          WHERE h.released_at IS NULL
            AND (h.scope = 'all' OR (h.scope = 'task' AND h.target = handrail_tasks.task_id))
      )
      AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
      AND (:workflows IS NULL OR workflow IN (SELECT value FROM json_each(:workflows)))
      AND (:task_id IS NULL OR task_id = :task_id)
    ORDER BY run_at
    LIMIT 1
)
RETURNING task_id, workflow, queue, status, created_at, updated_at, run_at, lease_owner,
    lease_expires_at, epoch, cancel_requested_by, initiator, max_execution_seconds;

-- name: insert_event_fenced
-- One journal row, written only while the lease (epoch and owner) still holds and, for a row
-- that opens a step at a boundary (flag 1), no cancel is flagged and no active halt covers
-- everything, the task or the row's tool: the checks cost no extra statement.
INSERT INTO handrail_events (task_id, seq, kind, ts, step_index, step_name, inputs, outputs,
    reasoning, approval, error, actor, data)
SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
WHERE EXISTS (
    SELECT 1 FROM handrail_tasks
    WHERE task_id = ? AND epoch = ? AND lease_owner = ? AND (? = 0 OR cancel_requested_by IS NULL)
)
AND (? = 0 OR NOT EXISTS (
    SELECT 1 FROM handrail_halts
    WHERE released_at IS NULL
      AND (scope = 'all' OR (scope = 'task' AND target = ?) OR (scope = 'tool' AND target = ?))
));

-- name: next_seq
SELECT coalesce(max(seq), -1) + 1 FROM handrail_events WHERE task_id = ?;

-- name: fence
SELECT epoch, lease_owner, cancel_requested_by FROM handrail_tasks WHERE task_id = ?;

-- name: update_task
UPDATE handrail_tasks
SET status = coalesce(:status, status),
    run_at = CASE WHEN :set_run_at THEN :run_at ELSE run_at END,
    lease_owner = CASE WHEN :release THEN NULL ELSE lease_owner END,
    lease_expires_at = CASE WHEN :release THEN NULL ELSE lease_expires_at END,
    updated_at = :now
WHERE task_id = :task_id;

-- name: revoke_lease
-- An operator write revokes any expired lease: the old holder can write no more.
UPDATE handrail_tasks SET epoch = epoch + 1, lease_owner = NULL, lease_expires_at = NULL
WHERE task_id = ?;

-- name: renew_lease
UPDATE handrail_tasks SET lease_expires_at = :expires
WHERE task_id = :task_id AND epoch = :epoch AND lease_owner = :worker;

-- name: release_worker
UPDATE handrail_tasks SET lease_owner = NULL, lease_expires_at = NULL
WHERE lease_owner = :worker;

-- name: request_cancel
UPDATE handrail_tasks
SET cancel_requested_by = coalesce(cancel_requested_by, :actor), updated_at = :now
WHERE task_id = :task_id
RETURNING task_id, workflow, queue, status, created_at, updated_at, run_at, lease_owner,
    lease_expires_at, epoch, cancel_requested_by, initiator, max_execution_seconds;

-- name: load_events
SELECT task_id, seq, kind, ts, step_index, step_name, inputs, outputs, reasoning, approval,
    error, actor, data
FROM handrail_events WHERE task_id = ? ORDER BY seq;

-- name: last_seqs
SELECT t.task_id, (SELECT max(e.seq) FROM handrail_events e WHERE e.task_id = t.task_id)
FROM handrail_tasks t
WHERE t.status IN (SELECT value FROM json_each(?));

-- name: get_task
SELECT task_id, workflow, queue, status, created_at, updated_at, run_at, lease_owner,
    lease_expires_at, epoch, cancel_requested_by, initiator, max_execution_seconds
FROM handrail_tasks WHERE task_id = ?;

-- name: list_tasks
SELECT task_id, workflow, queue, status, created_at, updated_at, run_at, lease_owner,
    lease_expires_at, epoch, cancel_requested_by, initiator, max_execution_seconds
FROM handrail_tasks
WHERE (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
  AND (:workflow IS NULL OR workflow = :workflow)
  AND (:queue IS NULL OR queue = :queue)
ORDER BY created_at DESC, task_id DESC
LIMIT :limit;

-- name: next_due
SELECT min(max(run_at, coalesce(lease_expires_at, run_at)))
FROM handrail_tasks
WHERE run_at IS NOT NULL
  AND NOT EXISTS (
      SELECT 1 FROM handrail_halts h
      WHERE h.released_at IS NULL
        AND (h.scope = 'all' OR (h.scope = 'task' AND h.target = handrail_tasks.task_id))
  )
  AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
  AND (:workflows IS NULL OR workflow IN (SELECT value FROM json_each(:workflows)));

-- name: blocking_halt
SELECT halt_id, scope, target, halted_by, reason, created_at, released_by, released_at
FROM handrail_halts
WHERE released_at IS NULL
  AND (scope = 'all' OR (scope = 'task' AND target = :task_id)
       OR (scope = 'tool' AND target IN (SELECT value FROM json_each(:tools))))
ORDER BY created_at
LIMIT 1;

-- name: insert_halt
INSERT INTO handrail_halts (halt_id, scope, target, halted_by, reason, created_at)
VALUES (:halt_id, :scope, :target, :halted_by, :reason, :created_at);

-- name: release_halts
UPDATE handrail_halts SET released_by = :actor, released_at = :now
WHERE released_at IS NULL AND scope = :scope AND target IS :target
RETURNING halt_id, scope, target, halted_by, reason, created_at, released_by, released_at;

-- name: list_halts
SELECT halt_id, scope, target, halted_by, reason, created_at, released_by, released_at
FROM handrail_halts
WHERE (:active_only = 0 OR released_at IS NULL)
ORDER BY created_at;

-- name: circuits
SELECT tool, failures, opened_at, open_until, updated_at FROM handrail_circuits ORDER BY tool;

-- name: circuit_failure
INSERT INTO handrail_circuits (tool, failures, opened_at, open_until, updated_at)
VALUES (:tool, 1, CASE WHEN :threshold <= 1 THEN :now END,
        CASE WHEN :threshold <= 1 THEN :now + :cooldown END, :now)
ON CONFLICT (tool) DO UPDATE SET
    failures = failures + 1,
    opened_at = CASE WHEN failures + 1 >= :threshold THEN :now ELSE opened_at END,
    open_until = CASE WHEN failures + 1 >= :threshold THEN :now + :cooldown ELSE open_until END,
    updated_at = :now
RETURNING tool, failures, opened_at, open_until, updated_at;

-- name: circuit_success
UPDATE handrail_circuits SET failures = 0, open_until = NULL, updated_at = :now
WHERE tool = :tool AND (failures > 0 OR open_until IS NOT NULL);

-- name: rate_window
SELECT window_start, calls FROM handrail_rate_windows WHERE rate_key = :key;

-- name: rate_take
INSERT INTO handrail_rate_windows (rate_key, window_start, calls)
VALUES (:key, :window_start, 1)
ON CONFLICT (rate_key) DO UPDATE SET
    calls = CASE WHEN window_start = :window_start THEN calls + 1 ELSE 1 END,
    window_start = :window_start;
