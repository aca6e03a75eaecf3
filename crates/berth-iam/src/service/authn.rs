//! Authentication: who is calling, from Basic credentials (an access key or an
//! ECR-style `AWS:` token), SigV4, a presigned blob URL, or nobody; and the issuing of
//! authorization tokens (GetAuthorizationToken).

use super::*;

impl Iam {
    /// An anonymous caller.
    pub fn anonymous(&self, source_ip: Option<IpAddr>) -> Caller {
        Caller {
            principal: Principal {
                account: self.inner.account.clone(),
                kind: PrincipalKind::Anonymous,
                name: String::new(),
                user_id: "anonymous".into(),
                tags: BTreeMap::new(),
            },
            source_ip,
            via: "anonymous",
        }
    }

    pub(super) fn principal_of(
        &self,
        snap: &Snapshot,
        account: &str,
        kind: StoredKind,
        name: &str,
        session: Option<&str>,
    ) -> Option<Principal> {
        let stored = snap
            .principals
            .get(&(account.to_string(), kind, name.to_string()))?;
        let account = AccountId::parse(account).ok()?;
        let (pkind, user_id) = match (kind, session) {
            (StoredKind::User, _) => (PrincipalKind::User, stored.principal_id.clone()),
            (StoredKind::Role, Some(s)) => (
                PrincipalKind::AssumedRole {
                    session: s.to_string(),
                },
                format!("{}:{s}", stored.principal_id),
            ),
            (StoredKind::Role, None) => return None,
            (StoredKind::Service, _) => (PrincipalKind::Service, stored.principal_id.clone()),
        };
        Some(Principal {
            account,
            kind: pkind,
            name: name.to_string(),
            user_id,
            tags: stored.tags.clone(),
        })
    }

    pub(super) async fn audit_authn(
        &self,
        who: &str,
        ip: Option<IpAddr>,
        ok: bool,
        reason: String,
    ) {
        self.inner
            .audit
            .record(AuditRow {
                id: 0,
                at_ms: OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000,
                principal: who.to_string(),
                action: "authenticate".into(),
                resource: "*".into(),
                decision: if ok { "allow" } else { "deny" }.into(),
                reason,
                source_ip: ip.map(|i| i.to_string()),
            })
            .await;
    }

    /// Records a successful authentication that no authorisation decision follows (the
    /// OCI `/v2/` check). Other successful authentications are recorded with the
    /// authorisation decision of the same request, which names the method (`via`).
    pub async fn record_authentication(&self, caller: &Caller) {
        self.audit_authn(
            &caller.principal.arn(),
            caller.source_ip,
            true,
            caller.via.to_string(),
        )
        .await;
    }

    /// Authenticates an HTTP Basic credential (the part after `Basic `): either
    /// `AWS:<token password>` (ECR_REFERENCE §4.1) or `<access key ID>:<secret>`; an empty
    /// user and password is an anonymous caller.
    /// Records the outcome in the audit trail (never the secret).
    pub async fn authenticate_basic(
        &self,
        credential: &str,
        source_ip: Option<IpAddr>,
    ) -> Result<Caller, AuthError> {
        let mut r = self.basic(credential);
        if matches!(&r, Err((_, e)) if e.may_be_stale()) && self.refresh().await {
            r = self.basic(credential);
        }
        match r {
            Ok((principal, via)) => Ok(Caller {
                principal,
                source_ip,
                via,
            }),
            Err((who, e)) => {
                self.audit_authn(&who, source_ip, false, e.audit_reason())
                    .await;
                Err(e)
            }
        }
    }

    /// The principal a Basic credential names, or (who it claimed to be, why refused).
    pub(super) fn basic(
        &self,
        credential: &str,
    ) -> Result<(Principal, &'static str), (String, AuthError)> {
        use base64::Engine;
        let malformed = |m: &str| ("unknown".to_string(), AuthError::Malformed(m.into()));
        let raw = base64::engine::general_purpose::STANDARD
            .decode(credential.trim())
            .map_err(|_| malformed("Basic credential is not base64"))?;
        let raw = Zeroizing::new(
            String::from_utf8(raw).map_err(|_| malformed("Basic credential is not UTF-8"))?,
        );
        let (user, pass) = raw
            .split_once(':')
            .ok_or_else(|| malformed("Basic credential has no ':'"))?;
        // skopeo and podman answer a Basic challenge without credentials with an empty
        // user and password (`Basic Og==`): that is an anonymous caller.
        if user.is_empty() && pass.is_empty() {
            return Ok((self.anonymous(None).principal, "anonymous"));
        }
        if user == "AWS" {
            self.verify_token(pass)
                .map(|p| (p, "Basic token"))
                .map_err(|e| ("AWS (authorization token)".to_string(), e))
        } else {
            self.verify_key_secret(user, pass)
                .map(|p| (p, "Basic access key"))
                .map_err(|e| (user.to_string(), e))
        }
    }

    pub(super) fn verify_token(&self, password: &str) -> Result<Principal, AuthError> {
        let claims = token::verify(
            self.inner.keys.token_key(),
            password,
            &self.inner.cfg.region,
            now_secs(),
        )?;
        let snap = self.snapshot();
        let kind = StoredKind::parse(&claims.kind)
            .ok_or(AuthError::Token(token::TokenError::Malformed))?;
        let mut session = None;
        if let Some(k) = &claims.temporary_key {
            let key = snap
                .keys
                .get(k)
                .ok_or_else(|| AuthError::Revoked(format!("temporary credentials {k}")))?;
            if key.expires_at.is_some_and(|e| e <= now_secs()) {
                return Err(AuthError::ExpiredCredentials(k.clone()));
            }
            session = key.session_name.clone();
        }
        let revoked = || AuthError::Revoked(format!("{} {}", claims.kind, claims.name));
        let stored = snap
            .principals
            .get(&(claims.account.clone(), kind, claims.name.clone()))
            .ok_or_else(revoked)?;
        if stored.principal_id != claims.principal_id {
            return Err(revoked());
        }
        self.principal_of(
            &snap,
            &claims.account,
            kind,
            &claims.name,
            session.as_deref(),
        )
        .ok_or_else(revoked)
    }

    pub(super) fn verify_key_secret(
        &self,
        akid: &str,
        secret: &str,
    ) -> Result<Principal, AuthError> {
        let snap = self.snapshot();
        let key = snap
            .keys
            .get(akid)
            .ok_or_else(|| AuthError::UnknownAccessKey(akid.to_string()))?;
        if key.session_token_hash.is_some() {
            return Err(AuthError::SessionToken(akid.to_string()));
        }
        if !bool::from(key.secret.as_bytes().ct_eq(secret.as_bytes())) {
            return Err(AuthError::WrongSecret(akid.to_string()));
        }
        self.principal_of(&snap, &key.account, key.kind, &key.name, None)
            .ok_or_else(|| AuthError::UnknownAccessKey(akid.to_string()))
    }

    /// Authenticates a SigV4-signed request (ECR_REFERENCE §1.2): looks up the access
    /// key, requires the session token for temporary credentials, requires the credential
    /// scope to name this region and service `ecr`, and verifies the signature and clock
    /// skew.
    pub async fn authenticate_sigv4(
        &self,
        req: &SignedRequest<'_>,
        source_ip: Option<IpAddr>,
    ) -> Result<Caller, AuthError> {
        self.authenticate_sigv4_for(req, source_ip, "ecr").await
    }

    /// [`Iam::authenticate_sigv4`] for another AWS service of Berth's listener: the
    /// credential scope must name `service` (`events` for the EventBridge API).
    pub async fn authenticate_sigv4_for(
        &self,
        req: &SignedRequest<'_>,
        source_ip: Option<IpAddr>,
        service: &str,
    ) -> Result<Caller, AuthError> {
        let parsed = sigv4::parse(req);
        let who = parsed
            .as_ref()
            .map(|a| a.access_key_id.clone())
            .unwrap_or_else(|_| "unknown".into());
        let parsed = parsed.map_err(AuthError::from);
        let mut r = parsed
            .clone()
            .and_then(|auth| self.verify_sigv4(req, &auth, service));
        if matches!(&r, Err(e) if e.may_be_stale()) && self.refresh().await {
            r = parsed.and_then(|auth| self.verify_sigv4(req, &auth, service));
        }
        match r {
            Ok(principal) => Ok(Caller {
                principal,
                source_ip,
                via: "SigV4",
            }),
            Err(e) => {
                self.audit_authn(&who, source_ip, false, e.audit_reason())
                    .await;
                Err(e)
            }
        }
    }

    pub(super) fn verify_sigv4(
        &self,
        req: &SignedRequest<'_>,
        auth: &sigv4::Authorization,
        service: &str,
    ) -> Result<Principal, AuthError> {
        let snap = self.snapshot();
        let akid = &auth.access_key_id;
        let key = snap
            .keys
            .get(akid)
            .ok_or_else(|| AuthError::UnknownAccessKey(akid.clone()))?;
        if let Some(hash) = &key.session_token_hash {
            let given = auth
                .security_token
                .as_deref()
                .map(sha256_hex)
                .unwrap_or_default();
            if !bool::from(given.as_bytes().ct_eq(hash.as_bytes())) {
                return Err(AuthError::SessionToken(akid.clone()));
            }
            if key.expires_at.is_some_and(|e| e <= now_secs()) {
                return Err(AuthError::ExpiredCredentials(akid.clone()));
            }
        }
        if auth.service != service {
            return Err(AuthError::WrongService(
                auth.service.clone(),
                service.to_string(),
            ));
        }
        if auth.region != self.inner.cfg.region {
            return Err(AuthError::WrongRegion(
                auth.region.clone(),
                self.inner.cfg.region.clone(),
            ));
        }
        let skew = time::Duration::try_from(self.inner.cfg.max_clock_skew)
            .unwrap_or(time::Duration::minutes(15));
        sigv4::verify(req, auth, &key.secret, OffsetDateTime::now_utc(), skew)?;
        self.principal_of(
            &snap,
            &key.account,
            key.kind,
            &key.name,
            key.session_name.as_deref(),
        )
        .ok_or_else(|| AuthError::UnknownAccessKey(akid.clone()))
    }

    /// A presigned URL's query for `GET /v2/<repository>/blobs/<digest>`, valid for the
    /// configured lifetime, carrying the caller's identity. Returns (query, expiry).
    pub fn presign_blob_query(
        &self,
        caller: &Caller,
        repository: &str,
        digest: &str,
    ) -> (String, OffsetDateTime) {
        let expires = OffsetDateTime::now_utc()
            + time::Duration::try_from(self.inner.cfg.presign_lifetime)
                .unwrap_or(time::Duration::hours(1));
        let q = crate::presign::sign_blob_query(
            self.inner.keys.presign_key(),
            repository,
            digest,
            &caller.principal.arn(),
            expires,
        );
        (q, expires)
    }

    /// Verifies a presigned blob URL's query and returns the caller it was issued to
    /// (still subject to authorisation: a URL never grants more than its issuer has).
    pub async fn authenticate_presigned(
        &self,
        repository: &str,
        digest: &str,
        query: &str,
        source_ip: Option<IpAddr>,
    ) -> Result<Caller, AuthError> {
        let r = crate::presign::verify_blob_query(
            self.inner.keys.presign_key(),
            repository,
            digest,
            query,
            OffsetDateTime::now_utc(),
        )
        .map_err(|e| AuthError::Presign(e.to_string()))
        .and_then(|arn| {
            self.principal_by_arn(&arn)
                .ok_or_else(|| AuthError::Revoked(arn.clone()))
        });
        match r {
            Ok(principal) => Ok(Caller {
                principal,
                source_ip,
                via: "presigned URL",
            }),
            Err(e) => {
                self.audit_authn("presigned URL", source_ip, false, e.audit_reason())
                    .await;
                Err(e)
            }
        }
    }

    /// The principal an ARN (as [`Principal::arn`] prints it) names, if it exists.
    pub(super) fn principal_by_arn(&self, arn: &str) -> Option<Principal> {
        let snap = self.snapshot();
        if let Some(rest) = arn.strip_prefix("arn:aws:iam::") {
            let (account, rest) = rest.split_once(':')?;
            let name = rest.strip_prefix("user/")?;
            return self.principal_of(&snap, account, StoredKind::User, name, None);
        }
        if let Some(rest) = arn.strip_prefix("arn:aws:sts::") {
            let (account, rest) = rest.split_once(':')?;
            let (role, session) = rest.strip_prefix("assumed-role/")?.split_once('/')?;
            return self.principal_of(&snap, account, StoredKind::Role, role, Some(session));
        }
        // A service principal: its name, in whichever account issued it.
        snap.principals
            .keys()
            .find(|(_, k, n)| *k == StoredKind::Service && n == arn)
            .and_then(|(a, k, n)| self.principal_of(&snap, a, *k, n, None))
    }

    /// An ECR authorization token for the caller, valid 12 hours (or until the caller's
    /// temporary credentials expire, if sooner), in this region.
    pub async fn authorization_token(
        &self,
        caller: &Caller,
    ) -> Result<AuthorizationToken, IamError> {
        let p = &caller.principal;
        let (kind, temporary_key, cap) = match &p.kind {
            PrincipalKind::User => (StoredKind::User, None, None),
            PrincipalKind::Service => (StoredKind::Service, None, None),
            PrincipalKind::AssumedRole { session } => {
                let snap = self.snapshot();
                let key = snap.keys.iter().find(|(_, k)| {
                    k.kind == StoredKind::Role
                        && k.account == p.account.as_str()
                        && k.name == p.name
                        && k.session_name.as_deref() == Some(session)
                });
                let (id, k) = key.ok_or_else(|| {
                    IamError::NotFound(format!("the session {} has ended", p.arn()))
                })?;
                (StoredKind::Role, Some(id.clone()), k.expires_at)
            }
            PrincipalKind::Anonymous | PrincipalKind::WebIdentity => {
                return Err(IamError::Invalid(
                    "anonymous callers cannot get an authorization token".into(),
                ))
            }
        };
        let snap = self.snapshot();
        let stored = snap
            .principals
            .get(&(p.account.to_string(), kind, p.name.clone()))
            .ok_or_else(|| IamError::NotFound(format!("{} does not exist", p.arn())))?;
        let mut expires = now_secs() + self.inner.cfg.token_lifetime.as_secs() as i64;
        if let Some(c) = cap {
            expires = expires.min(c);
        }
        let claims = TokenClaims {
            account: p.account.to_string(),
            kind: kind.as_str().into(),
            name: p.name.clone(),
            principal_id: stored.principal_id.clone(),
            temporary_key,
            region: self.inner.cfg.region.clone(),
            expires_at: expires,
        };
        let password = token::issue(self.inner.keys.token_key(), &claims);
        Ok(AuthorizationToken {
            token: token::authorization_token(&password),
            password,
            expires_at: OffsetDateTime::from_unix_timestamp(expires)
                .unwrap_or_else(|_| OffsetDateTime::now_utc()),
        })
    }

    // ---- authorisation --------------------------------------------------------------
}
