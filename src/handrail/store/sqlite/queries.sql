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
      AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
      AND (:workflows IS NULL OR workflow IN (SELECT value FROM json_each(:workflows)))
      AND (:task_id IS NULL OR task_id = :task_id)
    ORDER BY run_at
    LIMIT 1
)
RETURNING task_id, workflow, queue, status, created_at, updated_at, run_at, lease_owner,
    lease_expires_at, epoch, cancel_requested_by, initiator, max_execution_seconds;

-- name: insert_event_fenced
-- One journal row, written only while the lease (epoch and owner) still holds and, when the
-- last parameter is 1, no cancel is flagged: the fence check costs no extra statement.
INSERT INTO handrail_events (task_id, seq, kind, ts, step_index, step_name, inputs, outputs,
    reasoning, approval, error, actor, data)
SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
WHERE EXISTS (
    SELECT 1 FROM handrail_tasks
    WHERE task_id = ? AND epoch = ? AND lease_owner = ? AND (? = 0 OR cancel_requested_by IS NULL)
);

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
  AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
  AND (:workflows IS NULL OR workflow IN (SELECT value FROM json_each(:workflows)));
