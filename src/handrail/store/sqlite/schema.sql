-- handrail SQLite schema: what applying every migration yields (tests check it).
CREATE TABLE handrail_tasks (
    task_id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    queue TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    run_at REAL,
    lease_owner TEXT,
    lease_expires_at REAL,
    epoch INTEGER NOT NULL DEFAULT 0,
    cancel_requested_by TEXT,
    initiator TEXT,
    max_execution_seconds REAL
);

CREATE INDEX handrail_tasks_due ON handrail_tasks (run_at) WHERE run_at IS NOT NULL;

CREATE INDEX handrail_tasks_status ON handrail_tasks (status, created_at);

CREATE TABLE handrail_events (
    task_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    ts REAL NOT NULL,
    step_index INTEGER,
    step_name TEXT,
    inputs TEXT,
    outputs TEXT,
    reasoning TEXT,
    approval INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    actor TEXT,
    data TEXT,
    PRIMARY KEY (task_id, seq)
) WITHOUT ROWID;

CREATE TRIGGER handrail_events_no_update BEFORE UPDATE ON handrail_events
BEGIN
    SELECT RAISE(ABORT, 'handrail_events is append-only');
END;

CREATE TRIGGER handrail_events_no_delete BEFORE DELETE ON handrail_events
BEGIN
    SELECT RAISE(ABORT, 'handrail_events is append-only');
END;
CREATE TABLE handrail_halts (
    halt_id TEXT PRIMARY KEY,
    scope TEXT NOT NULL CHECK (scope IN ('task', 'tool', 'all')),
    target TEXT,
    halted_by TEXT NOT NULL,
    reason TEXT,
    created_at REAL NOT NULL,
    released_by TEXT,
    released_at REAL
);

CREATE INDEX handrail_halts_active ON handrail_halts (scope, target) WHERE released_at IS NULL;

CREATE TABLE handrail_circuits (
    tool TEXT PRIMARY KEY,
    failures INTEGER NOT NULL DEFAULT 0,
    opened_at REAL,
    open_until REAL,
    updated_at REAL NOT NULL
);

CREATE TABLE handrail_rate_windows (
    rate_key TEXT PRIMARY KEY,
    window_start REAL NOT NULL,
    calls INTEGER NOT NULL
);

CREATE TABLE handrail_audit_records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL UNIQUE,
    task_id TEXT,
    kind TEXT NOT NULL,
    created_at REAL NOT NULL,
    compliance_json TEXT NOT NULL,
    technical_json TEXT,
    leaf_body TEXT NOT NULL
);

CREATE INDEX handrail_audit_records_task ON handrail_audit_records (task_id, id);

CREATE TABLE handrail_audit_pending (
    record_id INTEGER PRIMARY KEY
);

CREATE TRIGGER handrail_audit_records_queue AFTER INSERT ON handrail_audit_records
BEGIN
    INSERT INTO handrail_audit_pending (record_id) VALUES (NEW.id);
END;

CREATE TABLE handrail_audit_leaves (
    leaf_index INTEGER PRIMARY KEY,
    record_id INTEGER NOT NULL UNIQUE REFERENCES handrail_audit_records (id),
    leaf_hash BLOB NOT NULL
);

CREATE TABLE handrail_audit_nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

CREATE TABLE handrail_audit_checkpoints (
    size INTEGER PRIMARY KEY,
    root_hash BLOB NOT NULL,
    note TEXT NOT NULL,
    frontier BLOB NOT NULL,
    created_at REAL NOT NULL
);

CREATE TABLE handrail_audit_outbox (
    sink TEXT NOT NULL,
    record_id INTEGER NOT NULL REFERENCES handrail_audit_records (id),
    leaf_index INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    delivered_at REAL,
    last_error TEXT,
    PRIMARY KEY (sink, record_id)
) WITHOUT ROWID;

CREATE INDEX handrail_audit_outbox_due ON handrail_audit_outbox (sink, leaf_index)
WHERE delivered_at IS NULL;

CREATE TABLE handrail_audit_data_keys (
    key_id TEXT PRIMARY KEY,
    key BLOB NOT NULL,
    created_at REAL NOT NULL
);

CREATE TABLE handrail_audit_key_tombstones (
    key_id TEXT PRIMARY KEY,
    destroyed_at REAL NOT NULL,
    destroyed_by TEXT NOT NULL,
    reason TEXT
);

CREATE TRIGGER handrail_audit_records_no_update BEFORE UPDATE ON handrail_audit_records
BEGIN
    SELECT RAISE(ABORT, 'handrail_audit_records is append-only');
END;

CREATE TRIGGER handrail_audit_records_no_delete BEFORE DELETE ON handrail_audit_records
BEGIN
    SELECT RAISE(ABORT, 'handrail_audit_records is append-only');
END;

CREATE TRIGGER handrail_audit_leaves_no_update BEFORE UPDATE ON handrail_audit_leaves
BEGIN
    SELECT RAISE(ABORT, 'handrail_audit_leaves is append-only');
END;

CREATE TRIGGER handrail_audit_leaves_no_delete BEFORE DELETE ON handrail_audit_leaves
BEGIN
    SELECT RAISE(ABORT, 'handrail_audit_leaves is append-only');
END;

CREATE TRIGGER handrail_audit_nodes_no_update BEFORE UPDATE ON handrail_audit_nodes
BEGIN
    SELECT RAISE(ABORT, 'handrail_audit_nodes is append-only');
END;

CREATE TRIGGER handrail_audit_nodes_no_delete BEFORE DELETE ON handrail_audit_nodes
BEGIN
    SELECT RAISE(ABORT, 'handrail_audit_nodes is append-only');
END;

CREATE TRIGGER handrail_audit_checkpoints_no_update BEFORE UPDATE ON handrail_audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'handrail_audit_checkpoints is append-only');
END;

CREATE TRIGGER handrail_audit_checkpoints_no_delete BEFORE DELETE ON handrail_audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'handrail_audit_checkpoints is append-only');
END;

CREATE TRIGGER handrail_audit_key_tombstones_no_update
BEFORE UPDATE ON handrail_audit_key_tombstones
BEGIN
    SELECT RAISE(ABORT, 'handrail_audit_key_tombstones is append-only');
END;

CREATE TRIGGER handrail_audit_key_tombstones_no_delete
BEFORE DELETE ON handrail_audit_key_tombstones
BEGIN
    SELECT RAISE(ABORT, 'handrail_audit_key_tombstones is append-only');
END;

CREATE TABLE handrail_audit_drafts (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL,
    task_id TEXT,
    kind TEXT NOT NULL,
    created_at REAL NOT NULL,
    compliance_json TEXT NOT NULL,
    key_id TEXT,
    raw_input TEXT,
    raw_output TEXT,
    error TEXT,
    facts TEXT
);

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
