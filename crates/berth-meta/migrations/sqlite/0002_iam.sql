-- Berth identity and access (issue 3). Times are Unix epoch seconds unless named *_ms.
-- Secrets are stored encrypted (AES-256-GCM) under a key kept outside this database.

CREATE TABLE iam_accounts (
    account_id  TEXT PRIMARY KEY CHECK (length(account_id) = 12),
    name        TEXT NOT NULL,
    is_default  INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- Users, roles and service principals. A service principal's name is the service
-- (e.g. ecs-tasks.amazonaws.com).
CREATE TABLE iam_principals (
    account_id   TEXT NOT NULL REFERENCES iam_accounts(account_id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('user', 'role', 'service')),
    name         TEXT NOT NULL,
    principal_id TEXT NOT NULL UNIQUE,
    tags         TEXT NOT NULL DEFAULT '{}',
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (account_id, kind, name)
) WITHOUT ROWID;

-- Access keys of users and service principals, and temporary credentials of assumed
-- roles (session_name, session_token_hash and expires_at set).
CREATE TABLE iam_access_keys (
    access_key_id      TEXT PRIMARY KEY,
    account_id         TEXT NOT NULL,
    kind               TEXT NOT NULL,
    name               TEXT NOT NULL,
    secret_enc         BLOB NOT NULL,
    session_name       TEXT,
    session_token_hash TEXT,
    expires_at         INTEGER,
    created_at         INTEGER NOT NULL,
    FOREIGN KEY (account_id, kind, name)
        REFERENCES iam_principals(account_id, kind, name) ON DELETE CASCADE
) WITHOUT ROWID;

-- Inline identity policies attached to users and roles.
CREATE TABLE iam_policies (
    account_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    policy_name TEXT NOT NULL,
    document    TEXT NOT NULL,
    PRIMARY KEY (account_id, kind, name, policy_name),
    FOREIGN KEY (account_id, kind, name)
        REFERENCES iam_principals(account_id, kind, name) ON DELETE CASCADE
) WITHOUT ROWID;

-- Resource-based policies of repositories, by repository name.
CREATE TABLE repository_policies (
    repository TEXT PRIMARY KEY,
    document   TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Registry-wide settings; key 'registry_policy' holds the registry policy.
CREATE TABLE registry_settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- Bumped by every change to the tables above, so servers reload their in-memory copy.
CREATE TABLE iam_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO iam_generation (id, generation) VALUES (1, 0);

-- Every authentication and authorisation decision.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms      INTEGER NOT NULL,
    principal  TEXT NOT NULL,
    action     TEXT NOT NULL,
    resource   TEXT NOT NULL,
    decision   TEXT NOT NULL,
    reason     TEXT NOT NULL,
    source_ip  TEXT
);
CREATE INDEX audit_log_at ON audit_log (at_ms);
CREATE INDEX audit_log_principal ON audit_log (principal, at_ms);
