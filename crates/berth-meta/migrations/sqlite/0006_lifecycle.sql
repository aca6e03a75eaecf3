-- Lifecycle policies (issue 12): one ECR lifecycle policy per repository, when it was
-- last evaluated, and the repository's latest lifecycle policy preview. Times are Unix
-- epoch seconds.

CREATE TABLE lifecycle_policies (
    repository_id     INTEGER PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    policy_text       TEXT NOT NULL,
    updated_at        INTEGER NOT NULL,
    last_evaluated_at INTEGER
);

-- StartLifecyclePolicyPreview's latest dry run per repository: the policy text it
-- evaluates, IN_PROGRESS until the `lifecycle.preview` job stores its results (a JSON
-- array of previewResults) and COMPLETE (or FAILED, with the error).
CREATE TABLE lifecycle_previews (
    repository_id INTEGER PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    policy_text   TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('IN_PROGRESS', 'COMPLETE', 'EXPIRED', 'FAILED')),
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    results       TEXT,
    error         TEXT
);
