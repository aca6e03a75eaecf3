//! STS-like role sessions: temporary credentials for a role (AssumeRole).

use super::*;

impl Iam {
    /// Assumes a role: issues temporary credentials (`ASIA…` key, secret, session token)
    /// valid for `duration` (15 minutes to 12 hours, as STS AssumeRole).
    pub async fn assume_role(
        &self,
        account: &str,
        role: &str,
        session_name: &str,
        duration: Duration,
    ) -> Result<TemporaryCredentials, IamError> {
        let secs = duration.as_secs();
        if !(900..=43_200).contains(&secs) {
            return Err(IamError::Invalid(format!(
                "duration {secs} s must be between 900 and 43200 seconds"
            )));
        }
        let ok = (2..=64).contains(&session_name.len())
            && session_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_=,.@-".contains(c));
        if !ok {
            return Err(IamError::Invalid(format!(
                "role session name '{session_name}' must be 2-64 characters of letters, digits and _=,.@-"
            )));
        }
        self.snapshot().require_role(account, role)?;
        let id = format!("ASIA{}", random_chars(16, ID_ALPHABET));
        let secret = Zeroizing::new(random_chars(40, SECRET_ALPHABET));
        let session_token = Zeroizing::new(random_chars(96, SECRET_ALPHABET));
        let expires = now_secs() + secs as i64;
        self.inner
            .store
            .create_access_key(&AccessKeyRow {
                access_key_id: id.clone(),
                account_id: account.into(),
                kind: "role".into(),
                name: role.into(),
                secret_enc: self.inner.keys.seal(&secret),
                session_name: Some(session_name.into()),
                session_token_hash: Some(sha256_hex(&session_token)),
                expires_at: Some(expires),
                created_at: now_secs(),
            })
            .await?;
        self.reload().await?;
        Ok(TemporaryCredentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token,
            expiration: OffsetDateTime::from_unix_timestamp(expires)
                .unwrap_or_else(|_| OffsetDateTime::now_utc()),
        })
    }
}
