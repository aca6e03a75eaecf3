-- Online garbage collection (issue 12), the same columns and table as
-- migrations/sqlite/0007_gc.sql. See ARCHITECTURE.md "Garbage collection" and
-- crates/berth-meta/src/gc.rs for the protocol these rows implement.

-- When the blob last became wanted without a manifest referencing it: its last link
-- (upload commit or mount) or the deletion of a manifest that referenced it. Epoch
-- seconds. GC sweeps an unreferenced blob only once this is older than the grace window.
ALTER TABLE blobs ADD COLUMN touched_at BIGINT NOT NULL DEFAULT 0;
UPDATE blobs SET touched_at = created_at;

-- GC's mark: is this blob referenced by any manifest of any repository?
CREATE INDEX manifest_references_by_blob ON manifest_references(target) WHERE kind = 'blob';
-- GC's claim deletes every link of a blob (and the foreign key is checked) by digest.
CREATE INDEX repository_blobs_by_digest ON repository_blobs(digest);

-- One row per blob digest whose bytes are being written and linked by pushes
-- (state 'pinned', `pins` of them) or deleted by a GC (state 'sweeping', `owner` the
-- GC run). The primary key arbitrates: a pin and a sweep of one digest never coexist,
-- so GC never deletes bytes a push is about to link. `updated_at` is epoch seconds.
CREATE TABLE blob_guards (
    digest     TEXT COLLATE "C" PRIMARY KEY,
    state      TEXT NOT NULL CHECK (state IN ('pinned', 'sweeping')),
    pins       BIGINT NOT NULL,
    owner      TEXT,
    updated_at BIGINT NOT NULL
);
