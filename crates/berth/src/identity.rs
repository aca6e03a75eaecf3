//! Opening the identity service for `berth serve` and `berth admin`: the master key,
//! the default account, the bootstrap administrator, and identities declared in the
//! config file.

use crate::config::{IamDeclarations, Settings};
use anyhow::Context;
use berth_iam::audit::AuditSink;
use berth_iam::federation::{Federation, JwksSource, OidcProvider};
use berth_iam::secret::Keys;
use berth_iam::service::StoredKind;
use berth_iam::{Iam, IamConfig, IamError};
use berth_meta::{IamStore, Metadata};
use std::sync::Arc;

/// The master key: `BERTH_MASTER_KEY` (base64 of 32 bytes) if set, else the key file
/// (created on first use when `create` is true).
fn keys(s: &Settings, create: bool) -> anyhow::Result<Keys> {
    if let Ok(v) = std::env::var("BERTH_MASTER_KEY") {
        return Ok(Keys::from_base64(&v)?);
    }
    if !create && !s.master_key_file().exists() {
        anyhow::bail!(
            "master key file {} does not exist: has `berth serve` run on this data directory?",
            s.master_key_file().display()
        );
    }
    let (k, created) = Keys::load_or_create(&s.master_key_file())?;
    if created {
        tracing::info!(path = %s.master_key_file().display(), "created the master key (keep it with the data directory, and back it up)");
    }
    Ok(k)
}

/// The setting holding a value sealed with the master key: every process checks it
/// opens before serving, so nodes sharing a database cannot run with different keys.
const MASTER_KEY_CHECK: &str = "master_key_check";
/// The plaintext sealed in [`MASTER_KEY_CHECK`].
const MASTER_KEY_CHECK_TEXT: &str = "berth master key check v1";

/// Refuses a master key that cannot open what the database already holds sealed: the
/// check value every server records at its first start (and, by `Iam::open`, any stored
/// access key). Nodes sharing one PostgreSQL database must share one key
/// (`master_key_file` / `BERTH_MASTER_KEY_FILE`, or `BERTH_MASTER_KEY`); a node started
/// with another key would fail every SigV4 check and token its peers hand out.
async fn check_master_key(s: &Settings, meta: &dyn IamStore, keys: &Keys) -> anyhow::Result<()> {
    use base64::Engine as _;
    let Some(stored) = meta.get_setting(MASTER_KEY_CHECK).await? else {
        return Ok(());
    };
    let opened = base64::engine::general_purpose::STANDARD
        .decode(stored.as_bytes())
        .ok()
        .and_then(|sealed| keys.unseal(&sealed).ok());
    if opened.as_deref().map(String::as_str) != Some(MASTER_KEY_CHECK_TEXT) {
        let source = if std::env::var_os("BERTH_MASTER_KEY").is_some() {
            "BERTH_MASTER_KEY".to_string()
        } else {
            format!("master key file {}", s.master_key_file().display())
        };
        anyhow::bail!(
            "the master key ({source}) cannot open the secrets sealed in the metadata \
             database {}: every node sharing a database must use the same master key \
             (set master_key_file / BERTH_MASTER_KEY_FILE to a copy of the first node's key)",
            s.metadata_url()?.redacted()
        );
    }
    Ok(())
}

/// Records [`MASTER_KEY_CHECK`] when the database has none yet (a first start, or a
/// database from before the check existed whose sealed keys `Iam::open` just opened).
async fn record_master_key(meta: &dyn IamStore, keys: &Keys) -> anyhow::Result<()> {
    use base64::Engine as _;
    if meta.get_setting(MASTER_KEY_CHECK).await?.is_none() {
        let sealed = keys.seal(MASTER_KEY_CHECK_TEXT);
        let text = base64::engine::general_purpose::STANDARD.encode(sealed);
        meta.put_setting(MASTER_KEY_CHECK, &text).await?;
    }
    Ok(())
}

/// [`berth_registry::sealed::SecretSealer`] over the master key: event-configuration
/// secrets are sealed with the same AES-256-GCM subkey as access-key secrets.
struct KeySealer(Keys);

impl berth_registry::sealed::SecretSealer for KeySealer {
    fn seal(&self, plaintext: &str) -> Vec<u8> {
        self.0.seal(plaintext)
    }
    fn unseal(&self, sealed: &[u8]) -> Result<String, String> {
        self.0
            .unseal(sealed)
            .map(|s| s.as_str().to_string())
            .map_err(|e| e.to_string())
    }
}

/// The master key as a sealer of event-configuration secrets (`BERTH_MASTER_KEY` or the
/// key file, which must exist: call after [`open`]). Errors: the key cannot be read.
pub fn sealer(s: &Settings) -> anyhow::Result<Arc<dyn berth_registry::sealed::SecretSealer>> {
    Ok(Arc::new(KeySealer(keys(s, false)?)))
}

/// The event configuration of `meta` with its secrets sealed by the master key.
/// Errors: the key cannot be read.
pub fn sealed_events(
    s: &Settings,
    meta: Arc<dyn berth_meta::Metadata>,
) -> anyhow::Result<Arc<berth_registry::sealed::SealedEventConfig>> {
    Ok(Arc::new(berth_registry::sealed::SealedEventConfig::new(
        meta,
        sealer(s)?,
    )))
}

/// Opens the identity service. When `serving`, starts the audit writer, creates the
/// bootstrap administrator on first start and applies the config file's declarations.
///
/// Errors: the master key is missing (`berth admin` on a data directory never served)
/// or is not the one the database's secrets were sealed with; the database failed.
pub async fn open(s: &Settings, meta: Arc<dyn Metadata>, serving: bool) -> anyhow::Result<Iam> {
    let keys = keys(s, serving)?;
    check_master_key(s, meta.as_ref(), &keys).await?;
    let check = keys.clone();
    let audit = if serving {
        AuditSink::start(meta.clone())
    } else {
        AuditSink::log_only()
    };
    let iam = Iam::open(
        meta.clone(),
        keys,
        IamConfig {
            region: s.region.clone(),
            account_id: s.account_id(),
            allow_anonymous: s.allow_anonymous,
            token_lifetime: s.token_lifetime(),
            // `berth admin` follows the data directory's region; the server must match it.
            adopt_stored_region: !serving,
            federation: federation(s),
            ..IamConfig::default()
        },
        audit,
    )
    .await?;
    if serving {
        record_master_key(meta.as_ref(), &check).await?;
    }
    if serving {
        let path = s.data_dir.join("admin-credentials");
        let created = match iam.bootstrap(&path).await {
            // Another node on the same database created it between our snapshot and
            // our insert (nodes started together on a fresh PostgreSQL database).
            Err(IamError::AlreadyExists(_)) => None,
            other => other?,
        };
        if let Some(p) = created {
            tracing::info!(
                path = %p.display(),
                user = %format!("arn:aws:iam::{}:user/admin", iam.account()),
                "created the administrator; its access key is in this file (AWS shared-credentials format)"
            );
        }
        apply(&iam, &s.iam)
            .await
            .context("applying the [iam] declarations of the config file")?;
    }
    Ok(iam)
}

fn ignore_exists(r: Result<(), IamError>) -> Result<(), IamError> {
    match r {
        Err(IamError::AlreadyExists(_)) => Ok(()),
        other => other,
    }
}

/// Creates what the config file declares and is missing; (re)applies declared policies.
async fn apply(iam: &Iam, d: &IamDeclarations) -> anyhow::Result<()> {
    for a in &d.accounts {
        ignore_exists(
            iam.create_account(&a.id, a.name.as_deref().unwrap_or(&a.id))
                .await,
        )?;
    }
    let own = iam.account().to_string();
    for (kind, list) in [
        (StoredKind::User, &d.users),
        (StoredKind::Role, &d.roles),
        (StoredKind::Service, &d.services),
    ] {
        for p in list {
            let account = p.account.as_deref().unwrap_or(&own);
            ignore_exists(
                iam.create_principal(account, kind, &p.name, p.tags.clone())
                    .await,
            )
            .with_context(|| format!("{} {}", kind.as_str(), p.name))?;
            if let Some(trust) = &p.trust_policy {
                anyhow::ensure!(
                    kind == StoredKind::Role,
                    "{} {}: only roles have a trust_policy",
                    kind.as_str(),
                    p.name
                );
                let have = iam.get_role_trust_policy(account, &p.name).await?;
                let max = p.max_session_duration.unwrap_or(3600);
                if have.as_ref() != Some(&(trust.clone(), max)) {
                    iam.put_role_trust_policy(account, &p.name, trust, Some(max))
                        .await
                        .with_context(|| format!("trust policy of role {}", p.name))?;
                }
            }
            for (policy_name, text) in &p.policies {
                iam.put_identity_policy(account, kind, &p.name, policy_name, text)
                    .await
                    .with_context(|| {
                        format!("policy {policy_name} of {} {}", kind.as_str(), p.name)
                    })?;
            }
        }
    }
    for (repo, text) in &d.repository_policies {
        if iam.get_repository_policy(repo).await?.as_deref() != Some(text.as_str()) {
            iam.set_repository_policy(repo, text)
                .await
                .with_context(|| format!("repository policy of {repo}"))?;
        }
    }
    if let Some(text) = &d.registry_policy {
        if iam.get_registry_policy().await?.as_deref() != Some(text.as_str()) {
            iam.put_registry_policy(text)
                .await
                .context("registry policy")?;
        }
    }
    Ok(())
}

/// A key set read from a file (`jwks_file`), read again whenever asked (the cache is the
/// caller's), so replacing the file rotates keys.
struct FileJwks(std::path::PathBuf);

impl JwksSource for FileJwks {
    fn fetch(&self) -> Result<String, String> {
        std::fs::read_to_string(&self.0).map_err(|e| format!("reading {}: {e}", self.0.display()))
    }
    fn describe(&self) -> String {
        self.0.display().to_string()
    }
}

/// A key set fetched with an HTTP GET (`jwks_url`; https with the webpki roots), 10 s
/// timeout, at most 1 MiB.
struct UrlJwks(String);

impl JwksSource for UrlJwks {
    fn fetch(&self) -> Result<String, String> {
        use std::io::Read as _;
        let resp = ureq::get(&self.0)
            .timeout(std::time::Duration::from_secs(10))
            .call()
            .map_err(|e| format!("GET {}: {e}", self.0))?;
        let mut text = String::new();
        resp.into_reader()
            .take(1 << 20)
            .read_to_string(&mut text)
            .map_err(|e| format!("reading {}: {e}", self.0))?;
        Ok(text)
    }
    fn describe(&self) -> String {
        self.0.clone()
    }
}

/// The trusted OIDC providers of the config file's `[[federation.oidc_providers]]`.
fn federation(s: &Settings) -> Federation {
    Federation::new(
        s.federation
            .oidc_providers
            .iter()
            .map(|p| OidcProvider {
                issuer: p.issuer.clone(),
                audiences: p.audiences.clone(),
                jwks: match (&p.jwks_file, &p.jwks_url) {
                    (Some(f), _) => Arc::new(FileJwks(f.clone())) as Arc<dyn JwksSource>,
                    (None, Some(u)) => Arc::new(UrlJwks(u.clone())),
                    (None, None) => unreachable!("validated: one of jwks_url and jwks_file"),
                },
            })
            .collect(),
    )
}
