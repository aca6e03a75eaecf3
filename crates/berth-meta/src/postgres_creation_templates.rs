//! [`CreationTemplateStore`](crate::CreationTemplateStore) on PostgreSQL (migration
//! `migrations/postgres/0010_creation_templates.sql`) and `apply_template`, which `ensure_repository` calls
//! in the transaction that creates a repository.

use crate::creation_templates::creation_template_store;
use crate::PgMeta;

creation_template_store!(
    PgMeta,
    sqlx::Postgres,
    pool,
    pool,
    apply_template,
    list: "SELECT prefix, document, created_at, updated_at FROM repository_creation_templates
           ORDER BY prefix",
    insert: "INSERT INTO repository_creation_templates (prefix, document, created_at, updated_at)
             VALUES ($1, $2, $3, $3) ON CONFLICT (prefix) DO NOTHING
             RETURNING prefix, document, created_at, updated_at",
    update: "UPDATE repository_creation_templates SET document = $1, updated_at = $2
             WHERE prefix = $3 RETURNING prefix, document, created_at, updated_at",
    delete: "DELETE FROM repository_creation_templates WHERE prefix = $1
             RETURNING prefix, document, created_at, updated_at",
    docs: "SELECT document FROM repository_creation_templates",
    settings: "UPDATE repositories SET tag_mutability = $1, tag_mutability_filters = $2,
               encryption_type = $3, kms_key = $4 WHERE id = $5",
    tag: "INSERT INTO repository_resource_tags (repository_id, key, value) VALUES ($1, $2, $3)
          ON CONFLICT (repository_id, key) DO UPDATE SET value = excluded.value",
    policy: "INSERT INTO repository_policies (repository, document, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (repository) DO UPDATE
                 SET document = excluded.document, updated_at = excluded.updated_at",
    bump: "UPDATE iam_generation SET generation = generation + 1 WHERE id = 1",
    lifecycle: "INSERT INTO lifecycle_policies (repository_id, policy_text, updated_at)
                VALUES ($1, $2, $3)"
);
