-- handrail 0004: audit drafts. A step's transaction writes its audit record as a draft
-- (the compliance view final, the raw payloads not sealed yet); the audit log seals
-- drafts into handrail_audit_records, in id order, before it reads or sequences them,
-- and deletes them in the same transaction. No index beyond the rowid: writing a draft
-- touches one table page.
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
