-- Berth metadata for the ECR API (issue 4) on PostgreSQL, as migrations/sqlite/0003_ecr.sql:
-- repository settings, resource tags, image sizes and pull times. Times are Unix epoch
-- seconds. `scan_on_push` is a BOOLEAN (SQLite stores 0/1; both read as a bool).

ALTER TABLE repositories ADD COLUMN tag_mutability TEXT NOT NULL DEFAULT 'MUTABLE'
    CHECK (tag_mutability IN ('MUTABLE', 'IMMUTABLE', 'IMMUTABLE_WITH_EXCLUSION', 'MUTABLE_WITH_EXCLUSION'));
ALTER TABLE repositories ADD COLUMN tag_mutability_filters TEXT NOT NULL DEFAULT '[]';
ALTER TABLE repositories ADD COLUMN scan_on_push BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE repositories ADD COLUMN encryption_type TEXT NOT NULL DEFAULT 'AES256';
ALTER TABLE repositories ADD COLUMN kms_key TEXT;

-- Resource tags of repositories (ECR TagResource); at most 50 per repository.
CREATE TABLE repository_resource_tags (
    repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    key           TEXT COLLATE "C" NOT NULL,
    value         TEXT NOT NULL,
    PRIMARY KEY (repository_id, key)
);

-- ECR's imageSizeInBytes, computed at push: config + layers for an image manifest, the
-- largest child for an index. And the last recorded pull (written in batches).
ALTER TABLE manifests ADD COLUMN image_size BIGINT NOT NULL DEFAULT 0;
ALTER TABLE manifests ADD COLUMN last_pulled_at BIGINT;

UPDATE manifests SET image_size = (
    SELECT COALESCE(SUM(b.size), 0) FROM manifest_references mr
    JOIN blobs b ON b.digest = mr.target
    WHERE mr.repository_id = manifests.repository_id AND mr.manifest = manifests.digest
      AND mr.kind = 'blob');
UPDATE manifests SET image_size = (
    SELECT COALESCE(MAX(c.image_size), 0) FROM manifest_references mr
    JOIN manifests c ON c.repository_id = mr.repository_id AND c.digest = mr.target
    WHERE mr.repository_id = manifests.repository_id AND mr.manifest = manifests.digest
      AND mr.kind = 'manifest')
WHERE EXISTS (SELECT 1 FROM manifest_references mr
    WHERE mr.repository_id = manifests.repository_id AND mr.manifest = manifests.digest
      AND mr.kind = 'manifest');
