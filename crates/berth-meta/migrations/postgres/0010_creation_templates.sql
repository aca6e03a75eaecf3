-- Repository creation templates (issue 10) on PostgreSQL, as
-- migrations/sqlite/0010_creation_templates.sql: one row per prefix, the template's
-- JSON, creation and update times (Unix epoch seconds).
CREATE TABLE repository_creation_templates (
    prefix     TEXT PRIMARY KEY,
    document   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
