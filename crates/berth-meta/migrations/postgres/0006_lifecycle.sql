-- Lifecycle policies (issue 12) on PostgreSQL, as migrations/sqlite/0006_lifecycle.sql:
-- one ECR lifecycle policy per repository, when it was last evaluated, and the
-- repository's latest lifecycle policy preview. Times are Unix epoch seconds.

CREATE TABLE lifecycle_policies (
    repository_id     BIGINT PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    policy_text       TEXT NOT NULL,
    updated_at        BIGINT NOT NULL,
    last_evaluated_at BIGINT
);

-- StartLifecyclePolicyPreview's latest dry run per repository: the policy text it
-- evaluates, IN_PROGRESS until the `lifecycle.preview` job stores its results (a JSON
-- array of previewResults) and COMPLETE (or FAILED, with the error).
CREATE TABLE lifecycle_previews (
    repository_id BIGINT PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    policy_text   TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('IN_PROGRESS', 'COMPLETE', 'EXPIRED', 'FAILED')),
    started_at    BIGINT NOT NULL,
    finished_at   BIGINT,
    results       TEXT,
    error         TEXT
);
