-- handrail 0006: the notice outbox. A notice waits here until its notifier took it; the
-- process that enqueued it holds it while it sends it (held_by, held_until), and once the
-- hold ends any process may claim it (FOR UPDATE SKIP LOCKED: claimers never queue behind
-- each other). Sent and given-up notices stay, with their last error. The partial index
-- is the queue: what is neither sent nor dropped, in id order.
CREATE TABLE handrail_notices (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notifier text NOT NULL,
    key text NOT NULL,
    kind text NOT NULL,
    body text NOT NULL,
    created_at double precision NOT NULL,
    held_by text,
    held_until double precision,
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    sent_at double precision,
    dropped_at double precision,
    UNIQUE (notifier, key)
);

CREATE INDEX handrail_notices_queued ON handrail_notices (notifier, id)
WHERE sent_at IS NULL AND dropped_at IS NULL;
