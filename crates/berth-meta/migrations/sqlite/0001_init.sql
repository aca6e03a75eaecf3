-- Berth metadata schema v1. Digests are stored as their canonical "alg:hex" strings.
-- Times are Unix epoch seconds.

CREATE TABLE repositories (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

-- Every blob committed to storage that some repository links.
CREATE TABLE blobs (
    digest      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- A repository serves only the blobs linked to it (pushed or mounted into it).
CREATE TABLE repository_blobs (
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest        TEXT NOT NULL REFERENCES blobs(digest),
    linked_at     INTEGER NOT NULL,
    PRIMARY KEY (repository_id, digest)
) WITHOUT ROWID;

-- Manifests, stored byte-exact (at most 4 MiB each).
CREATE TABLE manifests (
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest        TEXT NOT NULL,
    media_type    TEXT NOT NULL,
    body          BLOB NOT NULL,
    size          INTEGER NOT NULL,
    artifact_type TEXT,
    subject       TEXT,
    annotations   TEXT,
    pushed_at     INTEGER NOT NULL,
    PRIMARY KEY (repository_id, digest)
) WITHOUT ROWID;
CREATE INDEX manifests_by_subject ON manifests(repository_id, subject) WHERE subject IS NOT NULL;

-- What each manifest references: its blobs (config, layers) and, for an index, its
-- child manifests with their platforms (JSON), in document order.
CREATE TABLE manifest_references (
    repository_id INTEGER NOT NULL,
    manifest      TEXT NOT NULL,
    position      INTEGER NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('blob', 'manifest')),
    target        TEXT NOT NULL,
    platform      TEXT,
    PRIMARY KEY (repository_id, manifest, position),
    FOREIGN KEY (repository_id, manifest) REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX manifest_references_by_target ON manifest_references(repository_id, target);

CREATE TABLE tags (
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    digest        TEXT NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (repository_id, name),
    FOREIGN KEY (repository_id, digest) REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX tags_by_digest ON tags(repository_id, digest);
