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
    max_execution_seconds double precision,
    lease_token text
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

CREATE TABLE handrail_audit_records (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    call_id text NOT NULL UNIQUE,
    task_id text,
    kind text NOT NULL,
    created_at double precision NOT NULL,
    compliance_json text NOT NULL,
    technical_json text,
    leaf_body text NOT NULL
);

CREATE INDEX handrail_audit_records_task ON handrail_audit_records (task_id, id);

CREATE TABLE handrail_audit_pending (
    record_id bigint PRIMARY KEY
);

CREATE FUNCTION handrail_audit_queue() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO handrail_audit_pending (record_id) VALUES (NEW.id);
    RETURN NULL;
END;
$$;

CREATE TRIGGER handrail_audit_records_queue AFTER INSERT ON handrail_audit_records
FOR EACH ROW EXECUTE FUNCTION handrail_audit_queue();

CREATE TABLE handrail_audit_leaves (
    leaf_index bigint PRIMARY KEY,
    record_id bigint NOT NULL UNIQUE REFERENCES handrail_audit_records (id),
    leaf_hash bytea NOT NULL
);

CREATE TABLE handrail_audit_nodes (
    level smallint NOT NULL,
    idx bigint NOT NULL,
    hash bytea NOT NULL,
    PRIMARY KEY (level, idx)
);

CREATE TABLE handrail_audit_checkpoints (
    size bigint PRIMARY KEY,
    root_hash bytea NOT NULL,
    note text NOT NULL,
    frontier bytea NOT NULL,
    created_at double precision NOT NULL
);

CREATE TABLE handrail_audit_outbox (
    sink text NOT NULL,
    record_id bigint NOT NULL REFERENCES handrail_audit_records (id),
    leaf_index bigint NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at double precision NOT NULL,
    delivered_at double precision,
    last_error text,
    PRIMARY KEY (sink, record_id)
);

CREATE INDEX handrail_audit_outbox_due ON handrail_audit_outbox (sink, leaf_index)
WHERE delivered_at IS NULL;

CREATE TABLE handrail_audit_data_keys (
    key_id text PRIMARY KEY,
    key bytea NOT NULL,
    created_at double precision NOT NULL
);

CREATE TABLE handrail_audit_key_tombstones (
    key_id text PRIMARY KEY,
    destroyed_at double precision NOT NULL,
    destroyed_by text NOT NULL,
    reason text
);

CREATE FUNCTION handrail_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER handrail_audit_records_append_only BEFORE UPDATE OR DELETE
ON handrail_audit_records FOR EACH ROW EXECUTE FUNCTION handrail_audit_append_only();

CREATE TRIGGER handrail_audit_leaves_append_only BEFORE UPDATE OR DELETE
ON handrail_audit_leaves FOR EACH ROW EXECUTE FUNCTION handrail_audit_append_only();

CREATE TRIGGER handrail_audit_nodes_append_only BEFORE UPDATE OR DELETE
ON handrail_audit_nodes FOR EACH ROW EXECUTE FUNCTION handrail_audit_append_only();

CREATE TRIGGER handrail_audit_checkpoints_append_only BEFORE UPDATE OR DELETE
ON handrail_audit_checkpoints FOR EACH ROW EXECUTE FUNCTION handrail_audit_append_only();

CREATE TRIGGER handrail_audit_key_tombstones_append_only BEFORE UPDATE OR DELETE
ON handrail_audit_key_tombstones FOR EACH ROW EXECUTE FUNCTION handrail_audit_append_only();

CREATE TRIGGER handrail_audit_records_no_truncate BEFORE TRUNCATE
ON handrail_audit_records FOR EACH STATEMENT EXECUTE FUNCTION handrail_audit_append_only();

CREATE TRIGGER handrail_audit_leaves_no_truncate BEFORE TRUNCATE
ON handrail_audit_leaves FOR EACH STATEMENT EXECUTE FUNCTION handrail_audit_append_only();

CREATE TRIGGER handrail_audit_checkpoints_no_truncate BEFORE TRUNCATE
ON handrail_audit_checkpoints FOR EACH STATEMENT EXECUTE FUNCTION handrail_audit_append_only();

CREATE TABLE handrail_audit_drafts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    call_id text NOT NULL,
    task_id text,
    kind text NOT NULL,
    created_at double precision NOT NULL,
    compliance_json text NOT NULL,
    key_id text,
    raw_input text,
    raw_output text,
    error text,
    facts text
);

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
