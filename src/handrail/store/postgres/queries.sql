-- Named queries of the PostgreSQL store. Parameters are psycopg's %(named)s placeholders.
-- Events are written as one JSON array of objects (their columns by name), read with
-- json_populate_recordset(): one statement (one round trip, one prepared plan) whatever the
-- number of events, and one parameter for the driver to send (a dozen arrays cost it more
-- time than the server takes to parse the JSON).
-- Writes that make a task runnable call pg_notify('handrail_wake', <queue>) in their own
-- statement: workers that LISTEN wake when the transaction commits (nothing if it rolls back).

-- name: create_task
WITH task AS (
    INSERT INTO handrail_tasks (task_id, workflow, queue, status, created_at, updated_at,
        run_at, initiator, max_execution_seconds)
    VALUES (%(task_id)s, %(workflow)s, %(queue)s, 'pending', %(created_at)s, %(created_at)s,
        %(run_at)s, %(initiator)s, %(max_execution_seconds)s)
    ON CONFLICT (task_id) DO NOTHING
    RETURNING task_id
)
INSERT INTO handrail_events (task_id, seq, kind, ts, step_index, step_name, inputs, outputs,
    reasoning, approval, error, actor, data)
SELECT e.task_id, e.seq, e.kind, e.ts, e.step_index, e.step_name, e.inputs, e.outputs,
    e.reasoning, e.approval, e.error, e.actor, e.data
FROM json_populate_recordset(NULL::handrail_events, %(events)s::json) AS e
WHERE EXISTS (SELECT FROM task)
RETURNING pg_notify('handrail_wake', %(queue)s);

-- name: claim_task
-- The due task first; rows other claimers hold are skipped, not waited for. One statement,
-- which the caller runs as a transaction of its own (one round trip, committed on return).
WITH candidate AS (
    SELECT task_id FROM handrail_tasks
    WHERE run_at <= %(now)s
      AND (lease_owner IS NULL OR lease_expires_at <= %(now)s)
      AND NOT EXISTS (
          SELECT FROM handrail_halts h
          WHERE h.released_at IS NULL
            AND (h.scope = 'all' OR (h.scope = 'task' AND h.target = handrail_tasks.task_id))
      )
      AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
      AND (%(workflows)s::text[] IS NULL OR workflow = ANY(%(workflows)s::text[]))
    ORDER BY run_at, created_at, task_id COLLATE "C"
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), claimed AS (
UPDATE handrail_tasks AS t
SET lease_owner = %(worker)s, lease_token = %(token)s, lease_expires_at = %(expires)s,
    epoch = t.epoch + 1, status = 'in_progress', updated_at = %(now)s
FROM candidate
WHERE t.task_id = candidate.task_id
RETURNING t.task_id, t.workflow, t.queue, t.status, t.created_at, t.updated_at, t.run_at,
    t.lease_owner, t.lease_expires_at, t.epoch, t.cancel_requested_by, t.initiator,
    t.max_execution_seconds
), journal AS (
    -- the task_claimed event, in the same statement (the lease is ours: nobody else
    -- appends to this journal now)
    INSERT INTO handrail_events (task_id, seq, kind, ts, approval, data)
    SELECT c.task_id,
        (SELECT coalesce(max(e.seq), -1) + 1 FROM handrail_events e
         WHERE e.task_id = c.task_id),
        'task_claimed', %(now)s, 0,
        '{"worker":' || to_json(%(worker)s::text)::text || ',"epoch":' || c.epoch || '}'
    FROM claimed c
    RETURNING task_id, seq, kind, ts, step_index, step_name, inputs, outputs, reasoning,
        approval, error, actor, data
), unflushed AS (
    -- This transaction's commit does not wait for its WAL flush: a claim lost in a server
    -- crash is harmless (its holder's writes are refused: the lease token), and it is
    -- durable once any later commit is (the holder's first write is flushed before any
    -- effect it journals). Reverts at the end of the transaction.
    SELECT set_config('synchronous_commit', 'off', true) FROM claimed
), following AS (
    -- When to claim again, read in this statement's snapshot (a write that makes a task
    -- runnable after it wakes the claimers): now if another task looks claimable (an
    -- over-estimate: halts, and claims in flight elsewhere, are not looked at), else when
    -- the next one falls due, as next_due says (NULL: none is scheduled).
    SELECT CASE
        WHEN EXISTS (
            SELECT FROM handrail_tasks o
            WHERE o.run_at <= %(now)s
              AND o.task_id <> c.task_id
              AND (o.lease_owner IS NULL OR o.lease_expires_at <= %(now)s)
              AND (%(queues)s::text[] IS NULL OR o.queue = ANY(%(queues)s::text[]))
              AND (%(workflows)s::text[] IS NULL OR o.workflow = ANY(%(workflows)s::text[]))
        ) THEN %(now)s::double precision
        ELSE (
            SELECT min(GREATEST(o.run_at, o.lease_expires_at))
            FROM handrail_tasks o
            WHERE o.run_at IS NOT NULL
              AND o.task_id <> c.task_id
              AND NOT EXISTS (
                  SELECT FROM handrail_halts h
                  WHERE h.released_at IS NULL
                    AND (h.scope = 'all' OR (h.scope = 'task' AND h.target = o.task_id))
              )
              AND (%(queues)s::text[] IS NULL OR o.queue = ANY(%(queues)s::text[]))
              AND (%(workflows)s::text[] IS NULL OR o.workflow = ANY(%(workflows)s::text[]))
        )
    END AS next_due
    FROM claimed c
)
-- The claimed row with its journal, a row per event, the claim event last: the events of
-- this statement's snapshot, and the one it appended. Had the journal moved on after the
-- snapshot was taken, the claim event's seq would collide with an event the snapshot
-- lacks: the statement fails (unique violation), writing nothing, and the caller retries.
SELECT c.*, e.*, (SELECT count(*) FROM unflushed), (SELECT next_due FROM following)
FROM claimed c
CROSS JOIN LATERAL (
    SELECT old.task_id, old.seq, old.kind, old.ts, old.step_index, old.step_name,
        old.inputs, old.outputs, old.reasoning, old.approval, old.error, old.actor, old.data
    FROM handrail_events old WHERE old.task_id = c.task_id
    UNION ALL
    SELECT * FROM journal
) e
ORDER BY e.seq;

-- name: claim_candidate_id
-- claim_task's first CTE for one named task (a plan on the primary key); the store puts
-- the rest of claim_task after it (its next_due is then not used).
WITH candidate AS (
    SELECT task_id FROM handrail_tasks
    WHERE task_id = %(task_id)s
      AND run_at <= %(now)s
      AND (lease_owner IS NULL OR lease_expires_at <= %(now)s)
      AND NOT EXISTS (
          SELECT FROM handrail_halts h
          WHERE h.released_at IS NULL
            AND (h.scope = 'all' OR (h.scope = 'task' AND h.target = handrail_tasks.task_id))
      )
      AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
      AND (%(workflows)s::text[] IS NULL OR workflow = ANY(%(workflows)s::text[]))
    FOR UPDATE SKIP LOCKED

-- name: append_events
-- The per-step write, in one statement: lock the task row (a concurrent claim either
-- skips it or has already bumped the epoch, which the lock then shows), and only if the
-- lease still holds (and, with boundary, no cancel is flagged) insert the events and
-- update the row. The fence row is returned so the caller can tell why nothing was written.
-- With wake (the lease is handed back with a due time), any worker is woken.
WITH fence AS (
    SELECT epoch, lease_owner, lease_token, cancel_requested_by
    FROM handrail_tasks
    WHERE task_id = %(task_id)s
    FOR NO KEY UPDATE
),
halt AS (
    SELECT halt_id, scope, target, halted_by
    FROM handrail_halts
    WHERE %(boundary)s::boolean
      AND cardinality(%(intent_tools)s::text[]) > 0
      AND released_at IS NULL
      AND (scope = 'all' OR (scope = 'task' AND target = %(task_id)s)
           OR (scope = 'tool' AND target = ANY(%(intent_tools)s::text[])))
    ORDER BY created_at
    LIMIT 1
),
allowed AS (
    SELECT FROM fence
    WHERE epoch = %(epoch)s
      AND lease_owner = %(worker)s
      AND lease_token IS NOT DISTINCT FROM %(token)s
      AND NOT (%(boundary)s::boolean AND cancel_requested_by IS NOT NULL)
      AND NOT EXISTS (SELECT FROM halt)
),
inserted AS (
    INSERT INTO handrail_events (task_id, seq, kind, ts, step_index, step_name, inputs,
        outputs, reasoning, approval, error, actor, data)
    SELECT e.task_id, e.seq, e.kind, e.ts, e.step_index, e.step_name, e.inputs, e.outputs,
        e.reasoning, e.approval, e.error, e.actor, e.data
    FROM json_populate_recordset(NULL::handrail_events, %(events)s::json) AS e
    WHERE EXISTS (SELECT FROM allowed)
),
updated AS (
    UPDATE handrail_tasks
    SET status = coalesce(%(status)s::text, status),
        run_at = CASE WHEN %(set_run_at)s::boolean THEN %(run_at)s::double precision
                 ELSE run_at END,
        lease_owner = CASE WHEN %(release)s::boolean THEN NULL ELSE lease_owner END,
        lease_token = CASE WHEN %(release)s::boolean THEN NULL ELSE lease_token END,
        lease_expires_at = CASE WHEN %(release)s::boolean THEN NULL ELSE lease_expires_at END,
        updated_at = %(now)s
    WHERE task_id = %(task_id)s
      AND %(update)s::boolean
      AND EXISTS (SELECT FROM allowed)
    RETURNING queue
),
woken AS (
    SELECT pg_notify('handrail_wake', queue) FROM updated WHERE %(wake)s::boolean
)
SELECT f.epoch, f.lease_owner, f.cancel_requested_by,
    h.halt_id, h.scope, h.target, h.halted_by, (SELECT count(*) FROM woken), f.lease_token
FROM fence f LEFT JOIN halt h ON true;

-- name: renew_lease
UPDATE handrail_tasks SET lease_expires_at = %(expires)s
WHERE task_id = %(task_id)s AND epoch = %(epoch)s AND lease_owner = %(worker)s
  AND lease_token IS NOT DISTINCT FROM %(token)s;

-- name: release_worker
UPDATE handrail_tasks SET lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
WHERE lease_owner = %(worker)s;

-- name: request_cancel
UPDATE handrail_tasks
SET cancel_requested_by = coalesce(cancel_requested_by, %(actor)s), updated_at = %(now)s
WHERE task_id = %(task_id)s
RETURNING task_id, workflow, queue, status, created_at, updated_at, run_at, lease_owner,
    lease_expires_at, epoch, cancel_requested_by, initiator, max_execution_seconds,
    pg_notify('handrail_wake', queue);

-- name: load_events
SELECT task_id, seq, kind, ts, step_index, step_name, inputs, outputs, reasoning, approval,
    error, actor, data
FROM handrail_events WHERE task_id = %(task_id)s ORDER BY seq;

-- name: advisory_lock
-- Named locks (Store.named_lock): a session lock on a 64-bit hash of the name.
SELECT pg_advisory_lock(hashtextextended(%(name)s, 0));

-- name: advisory_unlock
SELECT pg_advisory_unlock(hashtextextended(%(name)s, 0));

-- name: last_seqs
SELECT t.task_id, (SELECT max(e.seq) FROM handrail_events e WHERE e.task_id = t.task_id)
FROM handrail_tasks t
WHERE t.status = ANY(%(statuses)s::text[]);

-- name: get_task
SELECT task_id, workflow, queue, status, created_at, updated_at, run_at, lease_owner,
    lease_expires_at, epoch, cancel_requested_by, initiator, max_execution_seconds
FROM handrail_tasks WHERE task_id = %(task_id)s;

-- name: list_tasks
SELECT task_id, workflow, queue, status, created_at, updated_at, run_at, lease_owner,
    lease_expires_at, epoch, cancel_requested_by, initiator, max_execution_seconds
FROM handrail_tasks
WHERE (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
  AND (%(workflow)s::text IS NULL OR workflow = %(workflow)s::text)
  AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
ORDER BY created_at DESC, task_id COLLATE "C" DESC
LIMIT %(limit)s;

-- name: next_due
SELECT min(GREATEST(run_at, lease_expires_at))
FROM handrail_tasks
WHERE run_at IS NOT NULL
  AND NOT EXISTS (
      SELECT FROM handrail_halts h
      WHERE h.released_at IS NULL
        AND (h.scope = 'all' OR (h.scope = 'task' AND h.target = handrail_tasks.task_id))
  )
  AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
  AND (%(workflows)s::text[] IS NULL OR workflow = ANY(%(workflows)s::text[]));

-- name: insert_halt
INSERT INTO handrail_halts (halt_id, scope, target, halted_by, reason, created_at)
VALUES (%(halt_id)s, %(scope)s, %(target)s, %(halted_by)s, %(reason)s, %(created_at)s);

-- name: release_halts
UPDATE handrail_halts SET released_by = %(actor)s, released_at = %(now)s
WHERE released_at IS NULL AND scope = %(scope)s AND target IS NOT DISTINCT FROM %(target)s
RETURNING halt_id, scope, target, halted_by, reason, created_at, released_by, released_at,
    pg_notify('handrail_wake', '');

-- name: list_halts
SELECT halt_id, scope, target, halted_by, reason, created_at, released_by, released_at
FROM handrail_halts
WHERE (NOT %(active_only)s::boolean OR released_at IS NULL)
ORDER BY created_at;

-- name: circuits
SELECT tool, failures, opened_at, open_until, updated_at FROM handrail_circuits ORDER BY tool;

-- name: circuit_failure
INSERT INTO handrail_circuits AS c (tool, failures, opened_at, open_until, updated_at)
VALUES (%(tool)s, 1,
        CASE WHEN %(threshold)s <= 1 THEN %(now)s::double precision END,
        CASE WHEN %(threshold)s <= 1 THEN %(now)s + %(cooldown)s END, %(now)s)
ON CONFLICT (tool) DO UPDATE SET
    failures = c.failures + 1,
    opened_at = CASE WHEN c.failures + 1 >= %(threshold)s THEN %(now)s ELSE c.opened_at END,
    open_until = CASE WHEN c.failures + 1 >= %(threshold)s THEN %(now)s + %(cooldown)s
                 ELSE c.open_until END,
    updated_at = %(now)s
RETURNING tool, failures, opened_at, open_until, updated_at;

-- name: circuit_success
UPDATE handrail_circuits SET failures = 0, open_until = NULL, updated_at = %(now)s
WHERE tool = %(tool)s AND (failures > 0 OR open_until IS NOT NULL);

-- name: rate_ensure
INSERT INTO handrail_rate_windows (rate_key, window_start, calls)
VALUES (%(key)s, %(window_start)s, 0)
ON CONFLICT (rate_key) DO NOTHING;

-- name: rate_window
SELECT window_start, calls FROM handrail_rate_windows WHERE rate_key = %(key)s FOR UPDATE;

-- name: rate_take
INSERT INTO handrail_rate_windows AS r (rate_key, window_start, calls)
VALUES (%(key)s, %(window_start)s, 1)
ON CONFLICT (rate_key) DO UPDATE SET
    calls = CASE WHEN r.window_start = %(window_start)s THEN r.calls + 1 ELSE 1 END,
    window_start = %(window_start)s;

-- name: operator_write
-- An operator's write in one statement, which the caller runs as a transaction of its own
-- (one round trip): lock the task row and see where its journal ends; only if no live
-- lease holds the task and its journal ends at expect_seq, revoke any lease (the epoch
-- moves on), append the events, set status and due time when asked, and wake the workers
-- when it is due. The task row is returned, with its journal's end and whether the write
-- was made, so the caller can tell why not. The max(seq) reads the statement's snapshot,
-- which may be older than the lock: a journal that moved on meanwhile then makes the
-- insert collide on (task_id, seq), which is refused the same way.
WITH target AS (
    SELECT t.task_id, t.workflow, t.queue, t.status, t.created_at, t.updated_at, t.run_at,
        t.lease_owner, t.lease_expires_at, t.epoch, t.cancel_requested_by, t.initiator,
        t.max_execution_seconds,
        (SELECT coalesce(max(e.seq), -1) FROM handrail_events e
         WHERE e.task_id = t.task_id) AS last_seq
    FROM handrail_tasks t WHERE t.task_id = %(task_id)s
    FOR NO KEY UPDATE OF t
), allowed AS (
    SELECT FROM target
    WHERE last_seq = %(expect_seq)s
      AND NOT (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL
               AND lease_expires_at > %(now)s)
), task AS (
    UPDATE handrail_tasks
    SET epoch = epoch + 1, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL,
        status = coalesce(%(status)s::text, status),
        run_at = CASE WHEN %(set_run_at)s::boolean THEN %(run_at)s::double precision
                 ELSE run_at END,
        updated_at = CASE WHEN %(update)s::boolean THEN %(now)s ELSE updated_at END
    WHERE task_id = %(task_id)s
      AND EXISTS (SELECT FROM allowed)
    RETURNING queue
), journal AS (
    INSERT INTO handrail_events (task_id, seq, kind, ts, step_index, step_name, inputs,
        outputs, reasoning, approval, error, actor, data)
    SELECT e.task_id, e.seq, e.kind, e.ts, e.step_index, e.step_name, e.inputs, e.outputs,
        e.reasoning, e.approval, e.error, e.actor, e.data
    FROM json_populate_recordset(NULL::handrail_events, %(events)s::json) AS e
    WHERE EXISTS (SELECT FROM allowed)
    RETURNING 1
), woken AS (
    SELECT pg_notify('handrail_wake', queue) FROM task WHERE %(wake)s::boolean
)
SELECT t.*, EXISTS (SELECT FROM allowed), (SELECT count(*) FROM journal),
    (SELECT count(*) FROM woken)
FROM target t;

-- name: read_task
-- The task row and its journal in one statement (one snapshot, one round trip): a row per
-- event, the task's columns first (one row with NULL event columns for an empty journal).
SELECT t.task_id, t.workflow, t.queue, t.status, t.created_at, t.updated_at, t.run_at,
    t.lease_owner, t.lease_expires_at, t.epoch, t.cancel_requested_by, t.initiator,
    t.max_execution_seconds,
    e.task_id, e.seq, e.kind, e.ts, e.step_index, e.step_name, e.inputs, e.outputs,
    e.reasoning, e.approval, e.error, e.actor, e.data
FROM handrail_tasks t LEFT JOIN handrail_events e ON e.task_id = t.task_id
WHERE t.task_id = %(task_id)s
ORDER BY e.seq;
