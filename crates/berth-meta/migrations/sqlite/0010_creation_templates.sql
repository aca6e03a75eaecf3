-- Repository creation templates (issue 10): one row per template prefix (`ROOT` or a
-- repository-name prefix without its implicit trailing '/'), the template as ECR's
-- `RepositoryCreationTemplate` JSON without timestamps (berth-core's
-- `CreationTemplate`, validated before it is stored). Read inside the transaction that
-- creates a repository on push, by replication or by the pull-through cache, which
-- applies the chosen template's settings, tags and policies in that transaction.
-- Times are Unix epoch seconds.
CREATE TABLE repository_creation_templates (
    prefix     TEXT PRIMARY KEY,
    document   TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
