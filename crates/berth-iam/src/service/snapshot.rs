//! The in-memory snapshot of the identity tables and its reloading (after this
//! process's writes, and by a background task after another process's).

use super::*;

/// A policy that denies everything: stands in for a stored document that no longer
/// parses, so a damaged policy fails closed.
pub(super) fn deny_all(kind: PolicyKind) -> PolicyDocument {
    let text = match kind {
        PolicyKind::Identity => r#"{"Statement":{"Effect":"Deny","Action":"*","Resource":"*"}}"#,
        PolicyKind::Resource => r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"*"}}"#,
    };
    PolicyDocument::parse(text, kind).expect("built-in policy parses")
}

pub(super) fn parse_stored(what: &str, text: &str, kind: PolicyKind) -> PolicyDocument {
    PolicyDocument::parse(text, kind).unwrap_or_else(|e| {
        tracing::error!(policy = what, error = %e, "a stored policy does not parse; it denies everything until replaced");
        deny_all(kind)
    })
}

impl Snapshot {
    pub(super) fn build(data: IamData, keys: &Keys) -> Snapshot {
        let accounts: BTreeMap<String, AccountRow> = data
            .accounts
            .into_iter()
            .map(|a| (a.account_id.clone(), a))
            .collect();
        let default_account = accounts
            .values()
            .find(|a| a.is_default)
            .and_then(|a| AccountId::parse(&a.account_id).ok());
        let mut principals = HashMap::new();
        for p in data.principals {
            let Some(kind) = StoredKind::parse(&p.kind) else {
                continue;
            };
            let tags = serde_json::from_str(&p.tags).unwrap_or_default();
            principals.insert(
                (p.account_id, kind, p.name),
                StoredPrincipal {
                    principal_id: p.principal_id,
                    tags,
                },
            );
        }
        let mut stored_keys = HashMap::new();
        let mut unsealable = 0usize;
        for k in data.access_keys {
            let Some(kind) = StoredKind::parse(&k.kind) else {
                continue;
            };
            match keys.unseal(&k.secret_enc) {
                Ok(secret) => {
                    stored_keys.insert(
                        k.access_key_id,
                        StoredKey {
                            account: k.account_id,
                            kind,
                            name: k.name,
                            secret,
                            session_name: k.session_name,
                            session_token_hash: k.session_token_hash,
                            expires_at: k.expires_at,
                        },
                    );
                }
                Err(_) => unsealable += 1,
            }
        }
        if unsealable > 0 {
            tracing::error!(
                keys = unsealable,
                "access keys cannot be decrypted with this master key; they will not authenticate (was master.key replaced?)"
            );
        }
        let mut identity_policies: HashMap<PrincipalKey, Vec<(String, PolicyDocument)>> =
            HashMap::new();
        let mut trust_policies = HashMap::new();
        for p in data.policies {
            let Some(kind) = StoredKind::parse(&p.kind) else {
                continue;
            };
            if p.policy_name == TRUST_POLICY_NAME {
                let (doc, max) = sts::parse_trust_row(&p.name, &p.document);
                trust_policies.insert((p.account_id, kind, p.name), (doc, max));
                continue;
            }
            let doc = parse_stored(&p.policy_name, &p.document, PolicyKind::Identity);
            identity_policies
                .entry((p.account_id, kind, p.name))
                .or_default()
                .push((p.policy_name, doc));
        }
        let repository_policies = data
            .repository_policies
            .into_iter()
            .map(|(repo, text)| {
                let doc = parse_stored(&repo, &text, PolicyKind::Resource);
                (repo, (text, doc))
            })
            .collect();
        let registry_policy = data.registry_policy.map(|text| {
            let doc = parse_stored("registry policy", &text, PolicyKind::Resource);
            (text, doc)
        });
        Snapshot {
            generation: data.generation,
            default_account,
            accounts,
            principals,
            keys: stored_keys,
            identity_policies,
            trust_policies,
            repository_policies,
            registry_policy,
            unsealable,
        }
    }
}

impl Snapshot {
    /// The identity policies of a user or role session (none for other principals).
    pub(super) fn identity_policies_of(&self, p: &Principal) -> Vec<NamedPolicy<'_>> {
        let kind = match &p.kind {
            PrincipalKind::User => StoredKind::User,
            PrincipalKind::AssumedRole { .. } => StoredKind::Role,
            _ => return Vec::new(),
        };
        self.identity_policies
            .get(&(p.account.to_string(), kind, p.name.clone()))
            .map(|v| {
                v.iter()
                    .map(|(name, document)| NamedPolicy { name, document })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Errors unless `role` exists in `account`.
    pub(super) fn require_role(&self, account: &str, role: &str) -> Result<(), IamError> {
        if self
            .principals
            .contains_key(&(account.to_string(), StoredKind::Role, role.to_string()))
        {
            Ok(())
        } else {
            Err(IamError::NotFound(format!(
                "role '{role}' does not exist in account {account}"
            )))
        }
    }
}

impl Iam {
    /// Starts the task that reloads the snapshot when another process changed the
    /// identity tables, and deletes expired temporary credentials.
    pub fn spawn_reloader(&self) -> tokio::task::JoinHandle<()> {
        self.spawn_reloader_until(std::future::pending())
    }

    /// [`Iam::spawn_reloader`] that ends when `stop` completes, between two rounds (never
    /// in the middle of one), so a server can await it at shutdown.
    pub fn spawn_reloader_until(
        &self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let iam = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RELOAD_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n: u64 = 0;
            let mut stop = std::pin::pin!(stop);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = &mut stop => break,
                }
                n += 1;
                if n.is_multiple_of(60) {
                    if let Err(e) = iam.inner.store.delete_expired_keys(now_secs()).await {
                        tracing::warn!(error = %e, "deleting expired temporary credentials failed");
                    }
                }
                match iam.inner.store.iam_generation().await {
                    Ok(g) if g != iam.snapshot().generation => {
                        if let Err(e) = iam.reload().await {
                            tracing::warn!(error = %e, "reloading identities failed");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "checking identity generation failed"),
                }
            }
        })
    }

    /// Reloads the snapshot if another process changed the identity tables since it was
    /// read; returns whether it did. Called before refusing an unknown key, so a key made
    /// with `berth admin` works at once rather than after the next reload tick.
    pub(super) async fn refresh(&self) -> bool {
        match self.inner.store.iam_generation().await {
            Ok(g) if g != self.snapshot().generation => self.reload().await.is_ok(),
            _ => false,
        }
    }

    /// Rereads the identity tables.
    pub async fn reload(&self) -> Result<(), IamError> {
        let data = self.inner.store.load_iam().await?;
        self.inner
            .snap
            .store(Arc::new(Snapshot::build(data, &self.inner.keys)));
        Ok(())
    }

    pub(super) fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.inner.snap.load()
    }
}
