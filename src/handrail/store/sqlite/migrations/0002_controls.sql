-- handrail 0002: operator halts (the stop button), tool circuit breakers, rate windows.
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
