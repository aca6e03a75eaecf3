//! Secrets of the event configuration sealed at rest (issue 8): EventBridge connection
//! secrets (`BasicAuthParameters.Password`, `ApiKeyAuthParameters.ApiKeyValue`,
//! `OAuthParameters.ClientParameters.ClientSecret`, and every
//! `InvocationHttpParameters` entry with `IsValueSecret: true`) and API destinations'
//! `X-Berth-Signature` signing secrets.
//!
//! [`SealedEventConfig`] wraps an [`EventConfigStore`]: every write seals those values
//! with a [`SecretSealer`] (the master key's AES-256-GCM, as access-key secrets are) and
//! stores the result in the same text column as `berth-sealed:v1:<base64 of nonce ||
//! ciphertext+tag>`; every read opens them again, so callers above see plaintext and the
//! database never holds it. A value without that prefix is a row written before sealing
//! existed: it is read as plaintext, and [`SealedEventConfig::seal_plaintext_rows`]
//! (run by `berth serve` at start) rewrites such rows sealed.

use async_trait::async_trait;
use base64::Engine;
use berth_meta::events::{
    ApiDestinationRow, ConnectionRow, DeliverableRule, EventConfigStore, NamePage,
    NewApiDestination, NewConnection, NewRule, RuleRow, RuleState, TargetRow,
};
use berth_meta::{MetaError, Result};
use serde_json::Value;
use std::sync::Arc;

/// The prefix of a sealed value in a text column.
pub const SEALED_PREFIX: &str = "berth-sealed:v1:";

/// Encrypts and decrypts secrets at rest (implemented over the master key by `berth`).
pub trait SecretSealer: Send + Sync {
    /// `nonce || ciphertext+tag` of `plaintext`.
    fn seal(&self, plaintext: &str) -> Vec<u8>;
    /// The plaintext of what [`SecretSealer::seal`] produced. Errors: wrong key or
    /// altered data (as text).
    fn unseal(&self, sealed: &[u8]) -> std::result::Result<String, String>;
}

/// Whether a stored value is sealed (else it is a plaintext row from before sealing).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

/// An [`EventConfigStore`] that seals secrets on write and opens them on read (see the
/// module doc). Cheap to clone.
#[derive(Clone)]
pub struct SealedEventConfig {
    inner: Arc<dyn EventConfigStore>,
    sealer: Arc<dyn SecretSealer>,
}

/// The JSON pointers, inside a connection's `auth_parameters`, of its single secrets.
const SECRET_POINTERS: [&str; 3] = [
    "/BasicAuthParameters/Password",
    "/ApiKeyAuthParameters/ApiKeyValue",
    "/OAuthParameters/ClientParameters/ClientSecret",
];

impl SealedEventConfig {
    /// `inner` with secrets sealed by `sealer`.
    pub fn new(inner: Arc<dyn EventConfigStore>, sealer: Arc<dyn SecretSealer>) -> Self {
        SealedEventConfig { inner, sealer }
    }

    fn seal_str(&self, plaintext: &str) -> String {
        format!(
            "{SEALED_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(self.sealer.seal(plaintext))
        )
    }

    fn open_str(&self, stored: &str) -> Result<String> {
        let Some(b64) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok(stored.to_string());
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| MetaError::Corrupt("a sealed event secret is not base64".into()))?;
        self.sealer
            .unseal(&bytes)
            .map_err(|e| MetaError::Corrupt(format!("a sealed event secret: {e}")))
    }

    /// Applies `f` to every secret string of connection parameters `p`.
    fn map_secrets(p: &mut Value, f: &mut dyn FnMut(&str) -> Result<String>) -> Result<()> {
        for ptr in SECRET_POINTERS {
            if let Some(v) = p.pointer_mut(ptr) {
                if let Some(s) = v.as_str() {
                    *v = Value::String(f(s)?);
                }
            }
        }
        if let Some(Value::Object(h)) = p.get_mut("InvocationHttpParameters") {
            for list in h.values_mut() {
                let Value::Array(list) = list else { continue };
                for entry in list {
                    if entry.get("IsValueSecret") != Some(&Value::Bool(true)) {
                        continue;
                    }
                    if let Some(v) = entry.get_mut("Value") {
                        if let Some(s) = v.as_str() {
                            *v = Value::String(f(s)?);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn seal_params(&self, p: &Value) -> Value {
        let mut p = p.clone();
        // Sealing cannot fail.
        let _ = Self::map_secrets(&mut p, &mut |s| Ok(self.seal_str(s)));
        p
    }

    fn open_connection(&self, mut c: ConnectionRow) -> Result<ConnectionRow> {
        Self::map_secrets(&mut c.auth_parameters, &mut |s| self.open_str(s))?;
        Ok(c)
    }

    fn open_destination(&self, mut d: ApiDestinationRow) -> Result<ApiDestinationRow> {
        d.signing_secret = self.open_str(&d.signing_secret)?;
        Ok(d)
    }

    fn sealed_connection(&self, c: &NewConnection) -> NewConnection {
        NewConnection {
            auth_parameters: self.seal_params(&c.auth_parameters),
            ..c.clone()
        }
    }

    /// Whether a stored connection still holds a secret in plaintext.
    fn has_plaintext(p: &Value) -> bool {
        let mut found = false;
        let mut probe = p.clone();
        let _ = Self::map_secrets(&mut probe, &mut |s| {
            found |= !is_sealed(s);
            Ok(s.to_string())
        });
        found
    }

    /// Rewrites every connection and API destination whose secrets are still stored in
    /// plaintext (rows written before sealing existed) with them sealed. Idempotent;
    /// returns how many rows were rewritten. Errors: the database failed.
    pub async fn seal_plaintext_rows(&self, now: i64) -> Result<usize> {
        let mut rewritten = 0;
        let mut page = NamePage {
            limit: 100,
            ..NamePage::default()
        };
        loop {
            let rows = self.inner.list_connections(&page, None).await?;
            for c in &rows {
                if Self::has_plaintext(&c.auth_parameters) {
                    let new = NewConnection {
                        name: c.name.clone(),
                        arn: c.arn.clone(),
                        description: c.description.clone(),
                        authorization_type: c.authorization_type,
                        auth_parameters: self.seal_params(&c.auth_parameters),
                        state: c.state.clone(),
                    };
                    if self.inner.update_connection(&new, now).await?.is_some() {
                        rewritten += 1;
                    }
                }
            }
            match rows.last() {
                Some(last) if rows.len() == 100 => page.after = Some(last.name.clone()),
                _ => break,
            }
        }
        let mut page = NamePage {
            limit: 100,
            ..NamePage::default()
        };
        loop {
            let rows = self.inner.list_api_destinations(&page, None).await?;
            for d in &rows {
                if !is_sealed(&d.signing_secret) {
                    let sealed = self.seal_str(&d.signing_secret);
                    if self
                        .inner
                        .replace_signing_secret(&d.name, &d.signing_secret, &sealed)
                        .await?
                    {
                        rewritten += 1;
                    }
                }
            }
            match rows.last() {
                Some(last) if rows.len() == 100 => page.after = Some(last.name.clone()),
                _ => break,
            }
        }
        Ok(rewritten)
    }
}

#[async_trait]
impl EventConfigStore for SealedEventConfig {
    async fn event_config_generation(&self) -> Result<i64> {
        self.inner.event_config_generation().await
    }
    async fn put_rule(&self, rule: &NewRule, now: i64) -> Result<RuleRow> {
        self.inner.put_rule(rule, now).await
    }
    async fn rule(&self, bus: &str, name: &str) -> Result<Option<RuleRow>> {
        self.inner.rule(bus, name).await
    }
    async fn list_rules(&self, bus: &str, page: &NamePage) -> Result<Vec<RuleRow>> {
        self.inner.list_rules(bus, page).await
    }
    async fn delete_rule(&self, bus: &str, name: &str) -> Result<bool> {
        self.inner.delete_rule(bus, name).await
    }
    async fn set_rule_state(
        &self,
        bus: &str,
        name: &str,
        state: RuleState,
        now: i64,
    ) -> Result<bool> {
        self.inner.set_rule_state(bus, name, state, now).await
    }
    async fn put_targets(
        &self,
        bus: &str,
        rule: &str,
        targets: &[TargetRow],
        now: i64,
    ) -> Result<()> {
        self.inner.put_targets(bus, rule, targets, now).await
    }
    async fn list_targets(&self, bus: &str, rule: &str) -> Result<Vec<TargetRow>> {
        self.inner.list_targets(bus, rule).await
    }
    async fn remove_targets(
        &self,
        bus: &str,
        rule: &str,
        ids: &[String],
        now: i64,
    ) -> Result<Vec<bool>> {
        self.inner.remove_targets(bus, rule, ids, now).await
    }
    async fn create_connection(&self, c: &NewConnection, now: i64) -> Result<ConnectionRow> {
        let row = self
            .inner
            .create_connection(&self.sealed_connection(c), now)
            .await?;
        self.open_connection(row)
    }
    async fn update_connection(
        &self,
        c: &NewConnection,
        now: i64,
    ) -> Result<Option<ConnectionRow>> {
        self.inner
            .update_connection(&self.sealed_connection(c), now)
            .await?
            .map(|r| self.open_connection(r))
            .transpose()
    }
    async fn connection(&self, name: &str) -> Result<Option<ConnectionRow>> {
        self.inner
            .connection(name)
            .await?
            .map(|r| self.open_connection(r))
            .transpose()
    }
    async fn connection_by_arn(&self, arn: &str) -> Result<Option<ConnectionRow>> {
        self.inner
            .connection_by_arn(arn)
            .await?
            .map(|r| self.open_connection(r))
            .transpose()
    }
    async fn list_connections(
        &self,
        page: &NamePage,
        state: Option<&str>,
    ) -> Result<Vec<ConnectionRow>> {
        self.inner
            .list_connections(page, state)
            .await?
            .into_iter()
            .map(|r| self.open_connection(r))
            .collect()
    }
    async fn delete_connection(&self, name: &str, now: i64) -> Result<Option<ConnectionRow>> {
        self.inner
            .delete_connection(name, now)
            .await?
            .map(|r| self.open_connection(r))
            .transpose()
    }
    async fn create_api_destination(
        &self,
        d: &NewApiDestination,
        now: i64,
    ) -> Result<ApiDestinationRow> {
        let sealed = NewApiDestination {
            signing_secret: self.seal_str(&d.signing_secret),
            ..d.clone()
        };
        let row = self.inner.create_api_destination(&sealed, now).await?;
        self.open_destination(row)
    }
    async fn update_api_destination(
        &self,
        d: &NewApiDestination,
        now: i64,
    ) -> Result<Option<ApiDestinationRow>> {
        // The signing secret is not updated (see the trait); nothing to seal.
        self.inner
            .update_api_destination(d, now)
            .await?
            .map(|r| self.open_destination(r))
            .transpose()
    }
    async fn replace_signing_secret(&self, name: &str, expected: &str, new: &str) -> Result<bool> {
        // Callers above speak plaintext: compare against the opened value.
        let Some(d) = self.api_destination(name).await? else {
            return Ok(false);
        };
        if d.signing_secret != expected {
            return Ok(false);
        }
        let stored = self
            .inner
            .api_destination(name)
            .await?
            .map(|d| d.signing_secret)
            .unwrap_or_default();
        self.inner
            .replace_signing_secret(name, &stored, &self.seal_str(new))
            .await
    }
    async fn api_destination(&self, name: &str) -> Result<Option<ApiDestinationRow>> {
        self.inner
            .api_destination(name)
            .await?
            .map(|r| self.open_destination(r))
            .transpose()
    }
    async fn api_destination_by_arn(&self, arn: &str) -> Result<Option<ApiDestinationRow>> {
        self.inner
            .api_destination_by_arn(arn)
            .await?
            .map(|r| self.open_destination(r))
            .transpose()
    }
    async fn list_api_destinations(
        &self,
        page: &NamePage,
        connection_arn: Option<&str>,
    ) -> Result<Vec<ApiDestinationRow>> {
        self.inner
            .list_api_destinations(page, connection_arn)
            .await?
            .into_iter()
            .map(|r| self.open_destination(r))
            .collect()
    }
    async fn delete_api_destination(
        &self,
        name: &str,
        now: i64,
    ) -> Result<Option<ApiDestinationRow>> {
        self.inner
            .delete_api_destination(name, now)
            .await?
            .map(|r| self.open_destination(r))
            .transpose()
    }
    async fn deliverable_targets(&self) -> Result<Vec<DeliverableRule>> {
        let mut rules = self.inner.deliverable_targets().await?;
        for r in &mut rules {
            for t in &mut r.targets {
                if let Some(d) = t.api_destination.take() {
                    t.api_destination = Some(self.open_destination(d)?);
                }
                if let Some(c) = t.connection.take() {
                    t.connection = Some(self.open_connection(c)?);
                }
            }
        }
        Ok(rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Xor;
    impl SecretSealer for Xor {
        fn seal(&self, p: &str) -> Vec<u8> {
            p.bytes().map(|b| b ^ 0x5a).collect()
        }
        fn unseal(&self, s: &[u8]) -> std::result::Result<String, String> {
            String::from_utf8(s.iter().map(|b| b ^ 0x5a).collect()).map_err(|e| e.to_string())
        }
    }

    #[tokio::test]
    async fn every_connection_secret_is_sealed_and_names_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let meta = berth_meta::SqliteMeta::open(&dir.path().join("m.db"))
            .await
            .unwrap();
        let inner: Arc<dyn EventConfigStore> = Arc::new(meta);
        let s = SealedEventConfig::new(inner, Arc::new(Xor));
        let p = serde_json::json!({
            "BasicAuthParameters": {"Username": "u", "Password": "pw"},
            "InvocationHttpParameters": {"HeaderParameters": [
                {"Key": "a", "Value": "shown", "IsValueSecret": false},
                {"Key": "b", "Value": "hidden", "IsValueSecret": true}]}
        });
        let sealed = s.seal_params(&p);
        assert_eq!(sealed["BasicAuthParameters"]["Username"], "u");
        assert!(is_sealed(
            sealed["BasicAuthParameters"]["Password"].as_str().unwrap()
        ));
        let h = &sealed["InvocationHttpParameters"]["HeaderParameters"];
        assert_eq!(h[0]["Value"], "shown");
        assert!(is_sealed(h[1]["Value"].as_str().unwrap()));
        assert!(!SealedEventConfig::has_plaintext(&sealed));
        assert!(SealedEventConfig::has_plaintext(&p));
        let mut opened = sealed.clone();
        SealedEventConfig::map_secrets(&mut opened, &mut |v| s.open_str(v)).unwrap();
        assert_eq!(opened, p);
    }

    /// Rows stored in plaintext (before sealing existed) are sealed by
    /// `seal_plaintext_rows`, once; reads through the sealed store give the same values
    /// before and after.
    #[tokio::test]
    async fn plaintext_rows_from_before_are_sealed_once() {
        use berth_meta::events::AuthorizationType;
        let dir = tempfile::tempdir().unwrap();
        let meta = Arc::new(
            berth_meta::SqliteMeta::open(&dir.path().join("m.db"))
                .await
                .unwrap(),
        );
        let raw: Arc<dyn EventConfigStore> = meta.clone();
        let conn = raw
            .create_connection(
                &NewConnection {
                    name: "c".into(),
                    arn: "arn:aws:events:us-east-1:1:connection/c/1".into(),
                    description: None,
                    authorization_type: AuthorizationType::ApiKey,
                    auth_parameters: serde_json::json!({"ApiKeyAuthParameters":
                        {"ApiKeyName": "x-api-key", "ApiKeyValue": "old-key"}}),
                    state: "AUTHORIZED".into(),
                },
                1,
            )
            .await
            .unwrap();
        raw.create_api_destination(
            &NewApiDestination {
                name: "d".into(),
                arn: "arn:aws:events:us-east-1:1:api-destination/d/1".into(),
                description: None,
                connection_arn: conn.arn.clone(),
                invocation_endpoint: "http://127.0.0.1:1/".into(),
                http_method: "POST".into(),
                invocation_rate_limit_per_second: None,
                signing_secret: "old-signing".into(),
                state: "ACTIVE".into(),
            },
            1,
        )
        .await
        .unwrap();
        let sealed = SealedEventConfig::new(raw.clone(), Arc::new(Xor));
        // Read as plaintext before the migration.
        let d = sealed.api_destination("d").await.unwrap().unwrap();
        assert_eq!(d.signing_secret, "old-signing");
        assert_eq!(sealed.seal_plaintext_rows(2).await.unwrap(), 2);
        assert_eq!(
            sealed.seal_plaintext_rows(3).await.unwrap(),
            0,
            "idempotent"
        );
        let stored = raw.connection("c").await.unwrap().unwrap();
        let v = stored.api_key().unwrap().1;
        assert!(is_sealed(v) && !v.contains("old-key"), "{v}");
        let d = raw.api_destination("d").await.unwrap().unwrap();
        assert!(is_sealed(&d.signing_secret), "{}", d.signing_secret);
        assert_eq!(d.updated_at, 1, "the destination's settings did not change");
        // Callers above see the secrets as before, also in the delivery read.
        let c = sealed.connection("c").await.unwrap().unwrap();
        assert_eq!(c.api_key(), Some(("x-api-key", "old-key")));
        assert_eq!(
            sealed
                .api_destination("d")
                .await
                .unwrap()
                .unwrap()
                .signing_secret,
            "old-signing"
        );
        // A signing secret replaced through the sealed store is sealed too.
        assert!(sealed
            .replace_signing_secret("d", "old-signing", "new-signing")
            .await
            .unwrap());
        assert!(!sealed
            .replace_signing_secret("d", "old-signing", "other")
            .await
            .unwrap());
        assert!(is_sealed(
            &raw.api_destination("d")
                .await
                .unwrap()
                .unwrap()
                .signing_secret
        ));
        assert_eq!(
            sealed
                .api_destination("d")
                .await
                .unwrap()
                .unwrap()
                .signing_secret,
            "new-signing"
        );
        meta.close().await;
    }
}
