-- handrail 0002: operator halts (the stop button), tool circuit breakers, rate windows.
CREATE TABLE handrail_halts (
    halt_id text PRIMARY KEY,
    scope text NOT NULL CHECK (scope IN ('task', 'tool', 'all')),
    target text,
    halted_by text NOT NULL,
    reason text,
    created_at double precision NOT NULL,
    released_by text,
    released_at double precision
);

CREATE INDEX handrail_halts_active ON handrail_halts (scope, target) WHERE released_at IS NULL;

CREATE TABLE handrail_circuits (
    tool text PRIMARY KEY,
    failures integer NOT NULL DEFAULT 0,
    opened_at double precision,
    open_until double precision,
    updated_at double precision NOT NULL
);

CREATE TABLE handrail_rate_windows (
    rate_key text PRIMARY KEY,
    window_start double precision NOT NULL,
    calls integer NOT NULL
);
