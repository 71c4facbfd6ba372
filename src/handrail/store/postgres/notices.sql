-- The notice outbox's named queries (handrail.store.postgres.notices). Parameters are
-- psycopg's %(named)s placeholders; batches are sent as parallel arrays through unnest().
-- Each is one statement, which the store runs as a transaction of its own (autocommit).

-- name: enqueue
-- Rows are inserted in the order given (ids ascend with it); a notifier's key that is
-- there already (or is being inserted by another transaction, which this one then waits
-- for) is skipped.
INSERT INTO handrail_notices (notifier, key, kind, body, created_at, held_by, held_until)
SELECT n.notifier, n.key, n.kind, n.body, n.created_at, %(holder)s::text,
       %(hold_until)s::double precision
FROM unnest(%(notifier)s::text[], %(key)s::text[], %(kind)s::text[], %(body)s::text[],
            %(created_at)s::double precision[])
     WITH ORDINALITY AS n (notifier, key, kind, body, created_at, position)
ORDER BY n.position
ON CONFLICT (notifier, key) DO NOTHING
RETURNING id, notifier, key;

-- name: claim
-- The oldest queued notices nobody holds; rows another claim has locked are skipped, not
-- waited for, and a row whose claim committed meanwhile is rechecked (held now: left).
UPDATE handrail_notices AS n
SET held_by = %(holder)s, held_until = %(hold_until)s
FROM (
    SELECT id FROM handrail_notices
    WHERE notifier = ANY(%(notifiers)s::text[])
      AND sent_at IS NULL AND dropped_at IS NULL
      AND (held_until IS NULL OR held_until <= %(now)s)
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
) AS free
WHERE n.id = free.id
RETURNING n.id, n.notifier, n.key, n.kind, n.body, n.created_at, n.attempts;

-- name: settle
-- Sent or dropped; either way out of the queue and no longer held.
UPDATE handrail_notices
SET sent_at = CASE WHEN %(sent)s THEN %(now)s::double precision END,
    dropped_at = CASE WHEN %(sent)s THEN NULL ELSE %(now)s::double precision END,
    attempts = %(attempts)s, last_error = %(error)s, held_by = NULL, held_until = NULL
WHERE id = ANY(%(ids)s::bigint[])
  AND sent_at IS NULL AND dropped_at IS NULL;

-- name: renew
-- Only the notices the holder still holds: one another process claimed stays theirs, a
-- released or settled one (held_by NULL) stays free.
UPDATE handrail_notices
SET held_until = %(hold_until)s
WHERE id = ANY(%(ids)s::bigint[])
  AND sent_at IS NULL AND dropped_at IS NULL
  AND held_by = %(holder)s;

-- name: release
UPDATE handrail_notices
SET held_by = NULL, held_until = %(now)s
WHERE id = ANY(%(ids)s::bigint[])
  AND sent_at IS NULL AND dropped_at IS NULL;

-- name: counts
SELECT notifier,
       count(*) FILTER (WHERE sent_at IS NULL AND dropped_at IS NULL),
       count(*) FILTER (WHERE sent_at IS NOT NULL),
       count(*) FILTER (WHERE dropped_at IS NOT NULL),
       min(created_at) FILTER (WHERE sent_at IS NULL AND dropped_at IS NULL)
FROM handrail_notices
GROUP BY notifier
ORDER BY notifier;

-- name: list
-- Newest first; %(notifier)s and %(state)s (queued, sent or dropped) NULL for any.
SELECT id, notifier, key, kind, created_at,
       CASE WHEN sent_at IS NOT NULL THEN 'sent'
            WHEN dropped_at IS NOT NULL THEN 'dropped'
            ELSE 'queued' END,
       attempts, last_error, held_by, held_until, sent_at, dropped_at
FROM handrail_notices
WHERE (%(notifier)s::text IS NULL OR notifier = %(notifier)s::text)
  AND (%(state)s::text IS NULL
       OR (%(state)s::text = 'sent' AND sent_at IS NOT NULL)
       OR (%(state)s::text = 'dropped' AND sent_at IS NULL AND dropped_at IS NOT NULL)
       OR (%(state)s::text = 'queued' AND sent_at IS NULL AND dropped_at IS NULL))
ORDER BY id DESC
LIMIT %(limit)s;

-- name: requeue
-- Dropped notices (those among %(ids)s, or all when it is NULL; of %(notifier)s unless
-- NULL) back in the queue, unheld: the next claim takes them. Attempts and last error stay.
UPDATE handrail_notices
SET dropped_at = NULL, held_by = NULL, held_until = NULL
WHERE sent_at IS NULL AND dropped_at IS NOT NULL
  AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))
  AND (%(notifier)s::text IS NULL OR notifier = %(notifier)s::text);
