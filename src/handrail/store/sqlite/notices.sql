-- The notice outbox's named queries (handrail.store.sqlite.notices). Parameters are
-- :named; lists (notifiers, ids) are JSON arrays read with json_each().

-- name: enqueue
INSERT INTO handrail_notices (notifier, key, kind, body, created_at, held_by, held_until)
VALUES (:notifier, :key, :kind, :body, :created_at, :holder, :hold_until)
ON CONFLICT (notifier, key) DO NOTHING
RETURNING id;

-- name: claim
-- The oldest queued notices nobody holds. The caller runs this in a write transaction
-- (SQLite's one writer at a time), so no two claims take the same notice.
UPDATE handrail_notices
SET held_by = :holder, held_until = :hold_until
WHERE id IN (
    SELECT id FROM handrail_notices
    WHERE notifier IN (SELECT value FROM json_each(:notifiers))
      AND sent_at IS NULL AND dropped_at IS NULL
      AND (held_until IS NULL OR held_until <= :now)
    ORDER BY id
    LIMIT :limit
)
RETURNING id, notifier, key, kind, body, created_at, attempts;

-- name: settle
-- Sent (:sent = 1) or dropped; either way out of the queue and no longer held.
UPDATE handrail_notices
SET sent_at = CASE WHEN :sent THEN :now END,
    dropped_at = CASE WHEN :sent THEN NULL ELSE :now END,
    attempts = :attempts, last_error = :error, held_by = NULL, held_until = NULL
WHERE id IN (SELECT value FROM json_each(:ids))
  AND sent_at IS NULL AND dropped_at IS NULL;

-- name: renew
-- Only the notices the holder still holds: one another process claimed stays theirs, a
-- released or settled one (held_by NULL) stays free.
UPDATE handrail_notices
SET held_until = :hold_until
WHERE id IN (SELECT value FROM json_each(:ids))
  AND sent_at IS NULL AND dropped_at IS NULL
  AND held_by = :holder;

-- name: release
UPDATE handrail_notices
SET held_by = NULL, held_until = :now
WHERE id IN (SELECT value FROM json_each(:ids))
  AND sent_at IS NULL AND dropped_at IS NULL;

-- name: counts
SELECT notifier,
       sum(sent_at IS NULL AND dropped_at IS NULL),
       sum(sent_at IS NOT NULL),
       sum(dropped_at IS NOT NULL),
       min(CASE WHEN sent_at IS NULL AND dropped_at IS NULL THEN created_at END)
FROM handrail_notices
GROUP BY notifier
ORDER BY notifier;

-- name: list
-- Newest first; :notifier and :state (queued, sent or dropped) NULL for any.
SELECT id, notifier, key, kind, created_at,
       CASE WHEN sent_at IS NOT NULL THEN 'sent'
            WHEN dropped_at IS NOT NULL THEN 'dropped'
            ELSE 'queued' END,
       attempts, last_error, held_by, held_until, sent_at, dropped_at
FROM handrail_notices
WHERE (:notifier IS NULL OR notifier = :notifier)
  AND (:state IS NULL
       OR (:state = 'sent' AND sent_at IS NOT NULL)
       OR (:state = 'dropped' AND sent_at IS NULL AND dropped_at IS NOT NULL)
       OR (:state = 'queued' AND sent_at IS NULL AND dropped_at IS NULL))
ORDER BY id DESC
LIMIT :limit;

-- name: requeue
-- Dropped notices (those among :ids, or all when :ids is NULL; of :notifier unless NULL)
-- back in the queue, unheld: the next claim takes them. Attempts and last error stay.
UPDATE handrail_notices
SET dropped_at = NULL, held_by = NULL, held_until = NULL
WHERE sent_at IS NULL AND dropped_at IS NOT NULL
  AND (:ids IS NULL OR id IN (SELECT value FROM json_each(:ids)))
  AND (:notifier IS NULL OR notifier = :notifier);
