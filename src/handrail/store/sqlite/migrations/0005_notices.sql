-- handrail 0005: the notice outbox. A notice waits here until its notifier took it; the
-- process that enqueued it holds it while it sends it (held_by, held_until), and once the
-- hold ends any process may claim it. Sent and given-up notices stay, with their last
-- error. The partial index is the queue: what is neither sent nor dropped, in id order.
CREATE TABLE handrail_notices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    notifier TEXT NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    held_by TEXT,
    held_until REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at REAL,
    dropped_at REAL,
    UNIQUE (notifier, key)
);

CREATE INDEX handrail_notices_queued ON handrail_notices (notifier, id)
WHERE sent_at IS NULL AND dropped_at IS NULL;
