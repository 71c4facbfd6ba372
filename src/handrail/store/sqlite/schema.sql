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
