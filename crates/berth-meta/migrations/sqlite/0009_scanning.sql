-- Vulnerability scanning (issue 11). Times are Unix epoch seconds; JSON is kept as TEXT
-- (the scanner's own serialisation: berth-scan's `OsvRecord`, `LayerInventory` and
-- `Finding`), opaque to the store.

-- OSV records imported by `berth vulndb import`, one row per record ID (a newer import of
-- an ID replaces it). `source` is the OSV ecosystem without its release (`PyPI`,
-- `Debian`).
CREATE TABLE vuln_records (
    id       TEXT PRIMARY KEY,
    source   TEXT NOT NULL,
    modified TEXT NOT NULL,
    record   TEXT NOT NULL
);

-- Each source's timestamp: the newest `modified` among its records (ECR's
-- vulnerabilitySourceUpdatedAt) and when it was last imported. `generation` of the
-- single row of vuln_db_generation grows with every import that changed a record, so
-- scanners know when to reload and continuous scanning when to re-match.
CREATE TABLE vuln_sources (
    source      TEXT PRIMARY KEY,
    updated_at  TEXT NOT NULL,
    imported_at INTEGER NOT NULL,
    records     INTEGER NOT NULL
);

CREATE TABLE vuln_db_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO vuln_db_generation (id, generation) VALUES (1, 0);

-- The inventory of a layer, by the layer blob's digest: computed once, shared by every
-- image (in every repository) that has the layer.
CREATE TABLE layer_inventories (
    digest     TEXT PRIMARY KEY,
    inventory  TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- The latest scan of each image (repository, manifest digest): ECR's imageScanStatus
-- (IN_PROGRESS, COMPLETE, FAILED, UNSUPPORTED_IMAGE) with its description, the image's inventory and
-- findings once complete, and the vulnerability database generation they were matched
-- against. Goes with its repository.
CREATE TABLE image_scans (
    repository_id   INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    manifest_digest TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('IN_PROGRESS', 'COMPLETE', 'FAILED', 'UNSUPPORTED_IMAGE')),
    description     TEXT NOT NULL,
    started_at      INTEGER NOT NULL,
    completed_at    INTEGER,
    inventory       TEXT,
    findings        TEXT,
    db_generation   INTEGER,
    PRIMARY KEY (repository_id, manifest_digest)
);

-- The registry's scanning configuration (PutRegistryScanningConfiguration): scan type
-- and rules as the API gave them (JSON), one row.
CREATE TABLE registry_scanning (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    scan_type  TEXT NOT NULL,
    rules      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
