//! Administration: accounts, principals, access keys, identity, repository and registry
//! policies (create, read, update, delete), and the audit log.

use super::*;

impl Iam {
    /// Checks a repository policy as [`Iam::set_repository_policy`] would, without
    /// storing it: size, grammar, and that it names only known accounts and ECR
    /// resources (used for repository creation templates, whose policy is stored with
    /// the template and applied when a repository is created).
    /// Errors: [`IamError::InvalidPolicy`] saying why.
    pub async fn check_repository_policy(&self, text: &str) -> Result<(), IamError> {
        validate_policy(text, PolicyKind::Resource)?;
        // An account `berth admin` just created counts at once, not after the next tick.
        self.refresh().await;
        let snap = self.snapshot();
        repository_policy_scope(text, |a| snap.accounts.contains_key(a))
            .map_err(IamError::InvalidPolicy)
    }

    /// Validates and stores a repository policy (ECR SetRepositoryPolicy; ≤ 10240 chars).
    ///
    /// Besides the grammar, the policy must stay inside this registry (issue 17, as ECR
    /// refuses such policies): every principal ARN or account ID names an account this
    /// registry knows, and every `Resource`/`NotResource` is an ECR ARN. Errors:
    /// [`IamError::InvalidPolicy`] naming the statement and the offending value.
    pub async fn set_repository_policy(
        &self,
        repository: &str,
        text: &str,
    ) -> Result<(), IamError> {
        self.check_repository_policy(text).await?;
        self.inner
            .store
            .set_repository_policy(repository, Some(text))
            .await?;
        self.reload().await
    }

    /// The repository's policy text, if any. Reads the latest stored state (a policy a
    /// creation template set when a push created the repository is written by the
    /// metadata store, not through this service).
    pub async fn get_repository_policy(
        &self,
        repository: &str,
    ) -> Result<Option<String>, IamError> {
        self.refresh().await;
        Ok(self
            .snapshot()
            .repository_policies
            .get(repository)
            .map(|(t, _)| t.clone()))
    }

    /// Deletes the repository's policy; returns the deleted text, if there was one.
    pub async fn delete_repository_policy(
        &self,
        repository: &str,
    ) -> Result<Option<String>, IamError> {
        let prev = self
            .inner
            .store
            .set_repository_policy(repository, None)
            .await?;
        self.reload().await?;
        Ok(prev)
    }

    /// Validates and stores the registry policy (ECR PutRegistryPolicy; ≤ 10240 chars).
    pub async fn put_registry_policy(&self, text: &str) -> Result<(), IamError> {
        validate_policy(text, PolicyKind::Resource)?;
        self.inner.store.set_registry_policy(Some(text)).await?;
        self.reload().await
    }

    /// The registry policy text, if set.
    pub async fn get_registry_policy(&self) -> Result<Option<String>, IamError> {
        Ok(self
            .snapshot()
            .registry_policy
            .as_ref()
            .map(|(t, _)| t.clone()))
    }

    /// Deletes the registry policy; returns the deleted text, if there was one.
    pub async fn delete_registry_policy(&self) -> Result<Option<String>, IamError> {
        let prev = self.inner.store.set_registry_policy(None).await?;
        self.reload().await?;
        Ok(prev)
    }

    // ---- administration -------------------------------------------------------------

    /// Creates an account. Errors: bad ID, or it exists.
    pub async fn create_account(&self, account_id: &str, name: &str) -> Result<(), IamError> {
        AccountId::parse(account_id).map_err(IamError::Invalid)?;
        let created = self
            .inner
            .store
            .create_account(&AccountRow {
                account_id: account_id.into(),
                name: name.into(),
                is_default: false,
                created_at: now_secs(),
            })
            .await?;
        self.reload().await?;
        created
            .then_some(())
            .ok_or_else(|| IamError::AlreadyExists(format!("account {account_id} already exists")))
    }

    /// Deletes an account and everything in it. The default account cannot be deleted.
    pub async fn delete_account(&self, account_id: &str) -> Result<(), IamError> {
        if account_id == self.inner.account.as_str() {
            return Err(IamError::Invalid(format!(
                "account {account_id} is this registry's own account and cannot be deleted"
            )));
        }
        let done = self.inner.store.delete_account(account_id).await?;
        self.reload().await?;
        done.then_some(())
            .ok_or_else(|| IamError::NotFound(format!("account {account_id} does not exist")))
    }

    /// All accounts as (ID, name, is default).
    pub fn list_accounts(&self) -> Vec<(String, String, bool)> {
        self.snapshot()
            .accounts
            .values()
            .map(|a| (a.account_id.clone(), a.name.clone(), a.is_default))
            .collect()
    }

    /// Creates a user, role or service principal in `account`. A service principal's
    /// name is the service, e.g. `ecs-tasks.amazonaws.com`.
    pub async fn create_principal(
        &self,
        account: &str,
        kind: StoredKind,
        name: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<(), IamError> {
        if kind == StoredKind::Service {
            let ok = !name.is_empty()
                && name.len() <= 128
                && name.contains('.')
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-".contains(c));
            if !ok {
                return Err(IamError::Invalid(format!(
                    "service name '{name}' must look like a DNS name, e.g. ecs-tasks.amazonaws.com"
                )));
            }
        } else {
            check_name(kind.as_str(), name)?;
        }
        if !self.snapshot().accounts.contains_key(account) {
            return Err(IamError::NotFound(format!(
                "account {account} does not exist"
            )));
        }
        let prefix = match kind {
            StoredKind::User => "AIDA",
            StoredKind::Role => "AROA",
            StoredKind::Service => "ASVC",
        };
        let created = self
            .inner
            .store
            .create_principal(&PrincipalRow {
                account_id: account.into(),
                kind: kind.as_str().into(),
                name: name.into(),
                principal_id: format!("{prefix}{}", random_chars(17, ID_ALPHABET)),
                tags: serde_json::to_string(&tags).unwrap_or_else(|_| "{}".into()),
                created_at: now_secs(),
            })
            .await?;
        self.reload().await?;
        created.then_some(()).ok_or_else(|| {
            IamError::AlreadyExists(format!(
                "{} '{name}' already exists in account {account}",
                kind.as_str()
            ))
        })
    }

    /// Deletes a principal with its keys and policies (its tokens stop working).
    pub async fn delete_principal(
        &self,
        account: &str,
        kind: StoredKind,
        name: &str,
    ) -> Result<(), IamError> {
        let done = self
            .inner
            .store
            .delete_principal(account, kind.as_str(), name)
            .await?;
        self.reload().await?;
        done.then_some(()).ok_or_else(|| {
            IamError::NotFound(format!(
                "{} '{name}' does not exist in account {account}",
                kind.as_str()
            ))
        })
    }

    /// Principals as (account, kind, name, ARN-or-service-name).
    pub fn list_principals(
        &self,
        account: Option<&str>,
    ) -> Vec<(String, StoredKind, String, String)> {
        let snap = self.snapshot();
        let mut v: Vec<_> = snap
            .principals
            .keys()
            .filter(|(a, _, _)| account.is_none_or(|x| x == a))
            .map(|(a, k, n)| {
                let arn = match k {
                    StoredKind::User => format!("arn:aws:iam::{a}:user/{n}"),
                    StoredKind::Role => format!("arn:aws:iam::{a}:role/{n}"),
                    StoredKind::Service => n.clone(),
                };
                (a.clone(), *k, n.clone(), arn)
            })
            .collect();
        v.sort();
        v
    }

    /// Issues a long-lived access key to a user or service principal. The secret is
    /// returned once and stored only encrypted.
    pub async fn create_access_key(
        &self,
        account: &str,
        kind: StoredKind,
        name: &str,
    ) -> Result<NewAccessKey, IamError> {
        if kind == StoredKind::Role {
            return Err(IamError::Invalid(
                "roles have no long-lived access keys; assume the role for temporary credentials"
                    .into(),
            ));
        }
        if !self
            .snapshot()
            .principals
            .contains_key(&(account.to_string(), kind, name.to_string()))
        {
            return Err(IamError::NotFound(format!(
                "{} '{name}' does not exist in account {account}",
                kind.as_str()
            )));
        }
        let id = format!("AKIA{}", random_chars(16, ID_ALPHABET));
        let secret = Zeroizing::new(random_chars(40, SECRET_ALPHABET));
        self.inner
            .store
            .create_access_key(&AccessKeyRow {
                access_key_id: id.clone(),
                account_id: account.into(),
                kind: kind.as_str().into(),
                name: name.into(),
                secret_enc: self.inner.keys.seal(&secret),
                session_name: None,
                session_token_hash: None,
                expires_at: None,
                created_at: now_secs(),
            })
            .await?;
        self.reload().await?;
        Ok(NewAccessKey {
            access_key_id: id,
            secret_access_key: secret,
        })
    }

    /// Access keys as (ID, owner ARN-or-service, session, expiry epoch seconds).
    pub fn list_access_keys(
        &self,
        account: Option<&str>,
    ) -> Vec<(String, String, Option<String>, Option<i64>)> {
        let snap = self.snapshot();
        let mut v: Vec<_> = snap
            .keys
            .iter()
            .filter(|(_, k)| account.is_none_or(|a| a == k.account))
            .map(|(id, k)| {
                let owner = match k.kind {
                    StoredKind::User => format!("arn:aws:iam::{}:user/{}", k.account, k.name),
                    StoredKind::Role => format!("arn:aws:iam::{}:role/{}", k.account, k.name),
                    StoredKind::Service => k.name.clone(),
                };
                (id.clone(), owner, k.session_name.clone(), k.expires_at)
            })
            .collect();
        v.sort();
        v
    }

    /// Deletes an access key (or temporary credentials).
    pub async fn delete_access_key(&self, access_key_id: &str) -> Result<(), IamError> {
        let done = self.inner.store.delete_access_key(access_key_id).await?;
        self.reload().await?;
        done.then_some(())
            .ok_or_else(|| IamError::NotFound(format!("access key {access_key_id} does not exist")))
    }

    /// Attaches (creates or replaces) an inline identity policy to a user or role.
    /// Errors: [`IamError::InvalidPolicy`] naming the statement and field.
    pub async fn put_identity_policy(
        &self,
        account: &str,
        kind: StoredKind,
        name: &str,
        policy_name: &str,
        text: &str,
    ) -> Result<(), IamError> {
        if kind == StoredKind::Service {
            return Err(IamError::Invalid(
                "service principals have no identity policies: what a service may do is what \
                 repository and registry policies naming {\"Service\": \"<name>\"} allow (it \
                 may always get an authorization token for itself). For identity policies, \
                 give the workload a role, as ECS does with its task execution role: \
                 `berth admin role create`, `policy put --role`, `role assume`"
                    .into(),
            ));
        }
        check_name("policy", policy_name)?;
        validate_policy(text, PolicyKind::Identity)?;
        if !self
            .snapshot()
            .principals
            .contains_key(&(account.to_string(), kind, name.to_string()))
        {
            return Err(IamError::NotFound(format!(
                "{} '{name}' does not exist in account {account}",
                kind.as_str()
            )));
        }
        self.inner
            .store
            .put_identity_policy(&IdentityPolicyRow {
                account_id: account.into(),
                kind: kind.as_str().into(),
                name: name.into(),
                policy_name: policy_name.into(),
                document: text.into(),
            })
            .await?;
        self.reload().await
    }

    /// Detaches an inline identity policy.
    pub async fn delete_identity_policy(
        &self,
        account: &str,
        kind: StoredKind,
        name: &str,
        policy_name: &str,
    ) -> Result<(), IamError> {
        let done = self
            .inner
            .store
            .delete_identity_policy(account, kind.as_str(), name, policy_name)
            .await?;
        self.reload().await?;
        done.then_some(()).ok_or_else(|| {
            IamError::NotFound(format!(
                "policy '{policy_name}' is not attached to {} '{name}'",
                kind.as_str()
            ))
        })
    }

    /// Identity policies of a user or role as (policy name, document text).
    pub async fn list_identity_policies(
        &self,
        account: &str,
        kind: StoredKind,
        name: &str,
    ) -> Result<Vec<(String, String)>, IamError> {
        let data = self.inner.store.load_iam().await?;
        Ok(data
            .policies
            .into_iter()
            .filter(|p| p.account_id == account && p.kind == kind.as_str() && p.name == name)
            .filter(|p| p.policy_name != TRUST_POLICY_NAME)
            .map(|p| (p.policy_name, p.document))
            .collect())
    }

    /// Audit records matching `q`, newest first.
    pub async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRow>, IamError> {
        Ok(self.inner.store.query_audit(q).await?)
    }

    /// Deletes audit records older than `max_age`.
    pub async fn prune_audit(&self, max_age: Duration) -> Result<u64, IamError> {
        let cutoff = OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
            - max_age.as_millis() as i64;
        Ok(self.inner.store.prune_audit(cutoff).await?)
    }
}

/// Checks what the grammar cannot: that a repository policy (already parsed as valid)
/// names only principals of accounts `known` admits and only ECR ARNs (or ARN patterns)
/// as resources. The error names the statement and the value.
pub(super) fn repository_policy_scope(
    text: &str,
    known: impl Fn(&str) -> bool,
) -> Result<(), String> {
    let Ok(serde_json::Value::Object(top)) = serde_json::from_str::<serde_json::Value>(text) else {
        return Ok(()); // the grammar check reported it
    };
    let statements: Vec<&serde_json::Value> = match top.get("Statement") {
        Some(serde_json::Value::Array(items)) => items.iter().collect(),
        Some(one) => vec![one],
        None => Vec::new(),
    };
    let strings = |v: Option<&serde_json::Value>| -> Vec<String> {
        match v {
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    };
    for (i, st) in statements.iter().enumerate() {
        let at = match st.get("Sid").and_then(|s| s.as_str()) {
            Some(sid) => format!("Statement[{i}] (Sid \"{sid}\")"),
            None => format!("Statement[{i}]"),
        };
        for field in ["Principal", "NotPrincipal"] {
            for p in strings(st.get(field).and_then(|p| p.get("AWS"))) {
                let account = if p.len() == 12 && p.bytes().all(|b| b.is_ascii_digit()) {
                    Some(p.as_str())
                } else {
                    p.split(':').nth(4)
                };
                if let Some(a) = account.filter(|a| !a.is_empty() && !known(a)) {
                    return Err(format!(
                        "{at}: {field} \"{p}\" is in account {a}, which this registry does not \
                         know (create it with `berth admin account create {a}`)"
                    ));
                }
            }
        }
        for field in ["Resource", "NotResource"] {
            for r in strings(st.get(field)) {
                let mut parts = r.splitn(4, ':');
                let ecr = parts.next() == Some("arn")
                    && parts.next().is_some_and(|p| !p.is_empty())
                    && parts.next() == Some("ecr");
                if !ecr {
                    return Err(format!(
                        "{at}: {field} \"{r}\" is not an ECR ARN \
                         (arn:aws:ecr:<region>:<account>:repository/<name>); a repository \
                         policy may also leave Resource out to mean its repository"
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::repository_policy_scope;

    fn check(policy: &str) -> Result<(), String> {
        repository_policy_scope(policy, |a| a == "111111111111" || a == "222222222222")
    }

    /// Issue 17: principals of known accounts (ID, root, user, role, session), `*` and
    /// service principals pass; ECR ARNs pass as resources.
    #[test]
    fn policies_inside_the_registry_pass() {
        check(r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":["111111111111","arn:aws:iam::222222222222:root","arn:aws:iam::111111111111:user/u","arn:aws:iam::222222222222:role/r","arn:aws:sts::222222222222:assumed-role/r/s"],"Service":"ecs-tasks.amazonaws.com"},"Action":"ecr:*","Resource":"arn:aws:ecr:us-east-1:111111111111:repository/x"}]}"#).unwrap();
        check(r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage"}}"#)
            .unwrap();
        check(r#"{"Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":"111111111111"},"Action":"ecr:*","NotResource":["arn:aws:ecr:*:*:repository/a*"]}]}"#).unwrap();
    }

    /// Issue 17: a principal in an unknown account, or a Resource that is not an ECR ARN,
    /// is refused with the statement and value named.
    #[test]
    fn principals_of_unknown_accounts_and_foreign_resources_are_refused() {
        let e = check(r#"{"Statement":[{"Sid":"x","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999999999999:role/r"},"Action":"ecr:*"}]}"#).unwrap_err();
        assert!(e.starts_with(r#"Statement[0] (Sid "x"): Principal "arn:aws:iam::999999999999:role/r" is in account 999999999999"#), "{e}");
        let e = check(r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"ecr:*"},{"Effect":"Deny","NotPrincipal":{"AWS":"999999999999"},"Action":"ecr:*"}]}"#).unwrap_err();
        assert!(
            e.starts_with(
                r#"Statement[1]: NotPrincipal "999999999999" is in account 999999999999"#
            ),
            "{e}"
        );
        let e = check(r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:*","Resource":"arn:aws:s3:::bucket"}]}"#).unwrap_err();
        assert!(
            e.starts_with(r#"Statement[0]: Resource "arn:aws:s3:::bucket" is not an ECR ARN"#),
            "{e}"
        );
        let e = check(
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:*","Resource":"*"}]}"#,
        )
        .unwrap_err();
        assert!(
            e.starts_with(r#"Statement[0]: Resource "*" is not an ECR ARN"#),
            "{e}"
        );
    }
}
