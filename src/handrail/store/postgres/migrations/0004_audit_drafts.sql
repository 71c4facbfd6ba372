-- handrail 0004: audit drafts. A step's statement writes its audit record as a draft (the
-- compliance view final, the raw payloads not sealed yet); the audit log seals drafts
-- into handrail_audit_records before it reads or sequences them, and deletes them in
-- the same transaction. Sealing needs the data key, which on the step's path would cost
-- a round trip (and, for a task's first record, a transaction) of its own.
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
