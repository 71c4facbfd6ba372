-- handrail PostgreSQL schema: what applying every migration yields (tests check it).
CREATE TABLE handrail_tasks (
    task_id text PRIMARY KEY,
    workflow text NOT NULL,
    queue text NOT NULL,
    status text NOT NULL,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    run_at double precision,
    lease_owner text,
    lease_expires_at double precision,
    epoch bigint NOT NULL DEFAULT 0,
    cancel_requested_by text,
    initiator text,
    max_execution_seconds double precision
);

CREATE INDEX handrail_tasks_due ON handrail_tasks (run_at) WHERE run_at IS NOT NULL;

CREATE INDEX handrail_tasks_status ON handrail_tasks (status, created_at);

CREATE TABLE handrail_events (
    task_id text NOT NULL,
    seq bigint NOT NULL,
    kind text NOT NULL,
    ts double precision NOT NULL,
    step_index integer,
    step_name text,
    inputs text,
    outputs text,
    reasoning text,
    approval integer NOT NULL DEFAULT 0,
    error text,
    actor text,
    data text,
    PRIMARY KEY (task_id, seq)
);

CREATE FUNCTION handrail_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'handrail_events is append-only' USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER handrail_events_no_update BEFORE UPDATE ON handrail_events
FOR EACH ROW EXECUTE FUNCTION handrail_events_append_only();

CREATE TRIGGER handrail_events_no_delete BEFORE DELETE ON handrail_events
FOR EACH ROW EXECUTE FUNCTION handrail_events_append_only();
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
