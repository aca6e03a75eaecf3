//! The identity tables behind `berth-iam` (issue 3): accounts, principals, access keys,
//! identity, repository and registry policies, settings, the audit trail, and the
//! generation counter that makes every server reload after an identity write.
//!
//! One suite for both backends: every scenario takes `&dyn IamStore` and runs on SQLite
//! (a real file in a temporary directory) and on PostgreSQL (a fresh database on the test
//! server of `berth_test_support::postgres`; skipped loudly without PostgreSQL outside
//! CI). The last tests race two PostgreSQL pools — two nodes — on one database.

use berth_meta::iam::{
    AccessKeyRow, AccountRow, AuditQuery, AuditRow, IamStore, IdentityPolicyRow, PrincipalRow,
};
use berth_meta::{MetaError, PgMeta, SqliteMeta};
use berth_test_support::postgres::Postgres;
use std::sync::Arc;

/// One backend under test.
enum Backend {
    Sqlite {
        _dir: tempfile::TempDir,
        meta: SqliteMeta,
    },
    Pg(PgMeta),
}

impl Backend {
    fn store(&self) -> &dyn IamStore {
        match self {
            Backend::Sqlite { meta, .. } => meta,
            Backend::Pg(m) => m,
        }
    }
}

/// A fresh SQLite file, and a fresh PostgreSQL database when the server is available.
async fn backends(test: &str) -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteMeta::open(&dir.path().join("meta.db")).await.unwrap();
    let mut all = vec![Backend::Sqlite {
        _dir: dir,
        meta: sqlite,
    }];
    if let Some(pg) = Postgres::shared(test) {
        all.push(Backend::Pg(PgMeta::open(&pg.database()).await.unwrap()));
    }
    all
}

/// Runs `scenario` once per backend.
macro_rules! on_both {
    ($test:ident, $scenario:ident) => {
        #[doc = concat!("Runs [`", stringify!($scenario), "`] on SQLite and on PostgreSQL.")]
        #[tokio::test]
        async fn $test() {
            for b in backends(stringify!($test)).await {
                $scenario(b.store()).await;
            }
        }
    };
}

fn account(id: &str, default: bool) -> AccountRow {
    AccountRow {
        account_id: id.into(),
        name: format!("account {id}"),
        is_default: default,
        created_at: 1_700_000_000,
    }
}

fn principal(account: &str, kind: &str, name: &str) -> PrincipalRow {
    PrincipalRow {
        account_id: account.into(),
        kind: kind.into(),
        name: name.into(),
        principal_id: format!("AIDA{account}{kind}{name}"),
        tags: r#"{"team":"a"}"#.into(),
        created_at: 1_700_000_001,
    }
}

fn key(id: &str, account: &str, name: &str, expires_at: Option<i64>) -> AccessKeyRow {
    AccessKeyRow {
        access_key_id: id.into(),
        account_id: account.into(),
        kind: "user".into(),
        name: name.into(),
        // Not UTF-8 and with a NUL: stored as bytes (BLOB / BYTEA), returned exactly.
        secret_enc: vec![0, 159, 146, 150, 255, 1],
        session_name: expires_at.map(|_| "session".into()),
        session_token_hash: expires_at.map(|_| "ab".repeat(32)),
        expires_at,
        created_at: 1_700_000_002,
    }
}

fn policy(account: &str, name: &str, policy_name: &str, doc: &str) -> IdentityPolicyRow {
    IdentityPolicyRow {
        account_id: account.into(),
        kind: "user".into(),
        name: name.into(),
        policy_name: policy_name.into(),
        document: doc.into(),
    }
}

fn audit(at_ms: i64, principal: &str, resource: &str, decision: &str) -> AuditRow {
    AuditRow {
        id: 0,
        at_ms,
        principal: principal.into(),
        action: "ecr:BatchGetImage".into(),
        resource: resource.into(),
        decision: decision.into(),
        reason: "statement 0 of policy p".into(),
        source_ip: Some("192.0.2.7".into()),
    }
}

/// Issue 3: accounts, principals, keys and policies round-trip through `load_iam`
/// exactly (secrets as opaque bytes, tags and documents as the JSON text given); at most
/// one account is the default; creating what exists is `false`; deleting an account or
/// a principal removes what hangs off it; every write moves the generation.
async fn identities_round_trip_and_cascade_on(m: &dyn IamStore) {
    let g0 = m.iam_generation().await.unwrap();
    assert!(m
        .create_account(&account("111111111111", true))
        .await
        .unwrap());
    assert!(!m
        .create_account(&account("111111111111", false))
        .await
        .unwrap());
    assert!(m
        .create_account(&account("222222222222", true))
        .await
        .unwrap());
    assert!(m
        .create_account(&account("333333333333", false))
        .await
        .unwrap());
    assert!(m
        .create_principal(&principal("111111111111", "user", "alice"))
        .await
        .unwrap());
    assert!(!m
        .create_principal(&principal("111111111111", "user", "alice"))
        .await
        .unwrap());
    assert!(m
        .create_principal(&principal("111111111111", "role", "deployer"))
        .await
        .unwrap());
    assert!(m
        .create_principal(&principal("222222222222", "user", "bob"))
        .await
        .unwrap());
    // A principal of an account that does not exist: the foreign key refuses it.
    assert!(matches!(
        m.create_principal(&principal("999999999999", "user", "x"))
            .await,
        Err(MetaError::Db(_))
    ));
    m.create_access_key(&key("AKIAALICE", "111111111111", "alice", None))
        .await
        .unwrap();
    m.create_access_key(&key(
        "ASIAALICE",
        "111111111111",
        "alice",
        Some(1_800_000_000),
    ))
    .await
    .unwrap();
    m.create_access_key(&key("AKIABOB", "222222222222", "bob", None))
        .await
        .unwrap();
    m.put_identity_policy(&policy("111111111111", "alice", "pull", r#"{"v":1}"#))
        .await
        .unwrap();
    // Put again: replaced, not duplicated.
    m.put_identity_policy(&policy("111111111111", "alice", "pull", r#"{"v":2}"#))
        .await
        .unwrap();
    m.put_identity_policy(&policy("222222222222", "bob", "push", r#"{"v":3}"#))
        .await
        .unwrap();

    let d = m.load_iam().await.unwrap();
    assert_eq!(d.generation, m.iam_generation().await.unwrap());
    assert!(d.generation > g0);
    let defaults: Vec<_> = d
        .accounts
        .iter()
        .filter(|a| a.is_default)
        .map(|a| a.account_id.as_str())
        .collect();
    assert_eq!(defaults, vec!["222222222222"], "the newest default wins");
    assert_eq!(d.accounts.len(), 3);
    assert_eq!(
        d.principals,
        vec![
            principal("111111111111", "role", "deployer"),
            principal("111111111111", "user", "alice"),
            principal("222222222222", "user", "bob"),
        ]
    );
    let mut keys = d.access_keys.clone();
    keys.sort_by(|a, b| a.access_key_id.cmp(&b.access_key_id));
    assert_eq!(
        keys,
        vec![
            key("AKIAALICE", "111111111111", "alice", None),
            key("AKIABOB", "222222222222", "bob", None),
            key("ASIAALICE", "111111111111", "alice", Some(1_800_000_000)),
        ]
    );
    assert_eq!(
        d.policies,
        vec![
            policy("111111111111", "alice", "pull", r#"{"v":2}"#),
            policy("222222222222", "bob", "push", r#"{"v":3}"#),
        ]
    );

    // Expired temporary credentials go; long-lived keys stay. Nothing expired: the
    // generation does not move.
    let g = m.iam_generation().await.unwrap();
    assert_eq!(m.delete_expired_keys(1_700_000_000).await.unwrap(), 0);
    assert_eq!(m.iam_generation().await.unwrap(), g);
    assert_eq!(m.delete_expired_keys(1_800_000_001).await.unwrap(), 1);
    assert!(m.iam_generation().await.unwrap() > g);

    assert!(m.delete_access_key("AKIABOB").await.unwrap());
    assert!(!m.delete_access_key("AKIABOB").await.unwrap());
    assert!(m
        .delete_identity_policy("222222222222", "user", "bob", "push")
        .await
        .unwrap());
    assert!(!m
        .delete_identity_policy("222222222222", "user", "bob", "push")
        .await
        .unwrap());
    // Deleting a principal takes its keys and policies; deleting an account its
    // principals.
    assert!(m
        .delete_principal("111111111111", "user", "alice")
        .await
        .unwrap());
    assert!(!m
        .delete_principal("111111111111", "user", "alice")
        .await
        .unwrap());
    let d = m.load_iam().await.unwrap();
    assert!(d.access_keys.is_empty(), "{:?}", d.access_keys);
    assert!(d.policies.is_empty());
    assert!(m.delete_account("111111111111").await.unwrap());
    assert!(!m.delete_account("111111111111").await.unwrap());
    let d = m.load_iam().await.unwrap();
    assert_eq!(d.principals, vec![principal("222222222222", "user", "bob")]);
    assert_eq!(d.accounts.len(), 2);
}
on_both!(
    identities_round_trip_and_cascade,
    identities_round_trip_and_cascade_on
);

/// ECR SetRepositoryPolicy / DeleteRepositoryPolicy and PutRegistryPolicy /
/// DeleteRegistryPolicy return the document they replaced; registry settings are plain
/// key-value pairs that do not move the identity generation.
async fn policies_return_what_they_replaced_on(m: &dyn IamStore) {
    assert_eq!(
        m.set_repository_policy("app", Some("p1")).await.unwrap(),
        None
    );
    assert_eq!(
        m.set_repository_policy("app", Some("p2")).await.unwrap(),
        Some("p1".into())
    );
    assert_eq!(
        m.set_repository_policy("lib", Some("q")).await.unwrap(),
        None
    );
    assert_eq!(
        m.load_iam().await.unwrap().repository_policies,
        vec![("app".into(), "p2".into()), ("lib".into(), "q".into())]
    );
    assert_eq!(
        m.set_repository_policy("app", None).await.unwrap(),
        Some("p2".into())
    );
    assert_eq!(m.set_repository_policy("app", None).await.unwrap(), None);

    assert_eq!(m.set_registry_policy(Some("r1")).await.unwrap(), None);
    assert_eq!(
        m.set_registry_policy(Some("r2")).await.unwrap(),
        Some("r1".into())
    );
    assert_eq!(
        m.load_iam().await.unwrap().registry_policy.as_deref(),
        Some("r2")
    );
    assert_eq!(
        m.set_registry_policy(None).await.unwrap(),
        Some("r2".into())
    );
    assert_eq!(m.load_iam().await.unwrap().registry_policy, None);

    let g = m.iam_generation().await.unwrap();
    assert_eq!(m.get_setting("region").await.unwrap(), None);
    m.put_setting("region", "eu-west-1").await.unwrap();
    m.put_setting("region", "us-east-2").await.unwrap();
    assert_eq!(
        m.get_setting("region").await.unwrap().as_deref(),
        Some("us-east-2")
    );
    assert_eq!(m.iam_generation().await.unwrap(), g);
}
on_both!(
    policies_return_what_they_replaced,
    policies_return_what_they_replaced_on
);

/// Issue 3's audit trail: appended in batches (more rows than one multi-row INSERT
/// holds), queried newest first by principal, action, decision, exact resource,
/// resource prefix (a literal prefix: `_` and `%` are not wildcards) and time, limited,
/// and pruned by age.
async fn audit_trail_queries_and_pruning_on(m: &dyn IamStore) {
    let mut rows = Vec::new();
    for n in 0..2500 {
        let principal = if n % 2 == 0 { "arn:alice" } else { "arn:bob" };
        let decision = if n % 5 == 0 { "deny" } else { "allow" };
        rows.push(audit(
            1000 + n,
            principal,
            &format!("arn:aws:ecr:r:1:repository/team_{}/app", n % 3),
            decision,
        ));
    }
    rows.push(AuditRow {
        source_ip: None,
        ..audit(
            9000,
            "anonymous",
            "arn:aws:ecr:r:1:repository/teamX1/app",
            "deny",
        )
    });
    m.append_audit(&rows).await.unwrap();
    m.append_audit(&[]).await.unwrap();

    let all = m
        .query_audit(&AuditQuery {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2501);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    assert_eq!(all[0].principal, "anonymous");
    assert_eq!(all[0].source_ip, None);
    assert_eq!(
        AuditRow {
            id: 0,
            ..all[1].clone()
        },
        rows[2499],
        "stored as given"
    );

    let q = |f: AuditQuery| async move { m.query_audit(&f).await.unwrap() };
    let alice_denies = q(AuditQuery {
        principal: Some("arn:alice".into()),
        decision: Some("deny".into()),
        limit: 10_000,
        ..Default::default()
    })
    .await;
    assert_eq!(alice_denies.len(), 250);
    assert!(alice_denies
        .iter()
        .all(|r| r.principal == "arn:alice" && r.decision == "deny"));
    let exact = q(AuditQuery {
        resource: Some("arn:aws:ecr:r:1:repository/team_1/app".into()),
        action: Some("ecr:BatchGetImage".into()),
        limit: 10_000,
        ..Default::default()
    })
    .await;
    assert_eq!(exact.len(), 833);
    // `team_` must not match `teamX` (no LIKE wildcard).
    let prefixed = q(AuditQuery {
        resource_prefix: Some("arn:aws:ecr:r:1:repository/team_".into()),
        limit: 10_000,
        ..Default::default()
    })
    .await;
    assert_eq!(prefixed.len(), 2500);
    let recent = q(AuditQuery {
        since_ms: Some(3400),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(
        recent.iter().map(|r| r.at_ms).collect::<Vec<_>>(),
        vec![9000, 3499, 3498, 3497, 3496, 3495, 3494, 3493, 3492, 3491]
    );

    assert_eq!(m.prune_audit(1000).await.unwrap(), 0);
    assert_eq!(m.prune_audit(3000).await.unwrap(), 2000);
    let left = q(AuditQuery {
        limit: 10_000,
        ..Default::default()
    })
    .await;
    assert_eq!(left.len(), 501);
    assert!(left.iter().all(|r| r.at_ms >= 3000));
}
on_both!(
    audit_trail_queries_and_pruning,
    audit_trail_queries_and_pruning_on
);

/// Two nodes on one PostgreSQL database, as `berth serve` runs them: two pools.
async fn two_nodes(test: &str) -> Option<(Arc<PgMeta>, Arc<PgMeta>)> {
    let pg = Postgres::shared(test)?;
    let url = pg.database();
    let a = PgMeta::open(&url).await.unwrap();
    let b = PgMeta::open(&url).await.unwrap();
    Some((Arc::new(a), Arc::new(b)))
}

/// "At most one account is the default" with writers on two nodes: each
/// `create_account(is_default)` clears the flag on the others in its transaction, which
/// only holds if the writers are serialised (PostgreSQL: the `iam_generation` row lock).
/// Every write moves the generation exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_default_accounts_leave_one_default() {
    let Some((a, b)) = two_nodes("concurrent_default_accounts_leave_one_default").await else {
        return;
    };
    let g0 = a.iam_generation().await.unwrap();
    let mut tasks = Vec::new();
    for n in 0..12u64 {
        let node = if n % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            node.create_account(&account(&format!("{:012}", 100 + n), true))
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap());
    }
    let d = b.load_iam().await.unwrap();
    assert_eq!(d.accounts.len(), 12);
    let defaults = d.accounts.iter().filter(|a| a.is_default).count();
    assert_eq!(defaults, 1, "{:?}", d.accounts);
    assert_eq!(d.generation, g0 + 12);
}

/// SetRepositoryPolicy's "previous policy" with writers on two nodes: the replaced
/// documents form one chain — each document is returned as "previous" by exactly one
/// other write, except the one that stays — so no write lost another's document.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_policy_writes_each_replace_a_distinct_document() {
    let Some((a, b)) = two_nodes("concurrent_policy_writes_each_replace_a_distinct_document").await
    else {
        return;
    };
    let mut tasks = Vec::new();
    for n in 0..12 {
        let node = if n % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let doc = format!("doc{n}");
            node.set_repository_policy("app", Some(&doc)).await.unwrap()
        }));
    }
    let mut previous = Vec::new();
    for t in tasks {
        previous.push(t.await.unwrap());
    }
    let last = a.load_iam().await.unwrap().repository_policies;
    assert_eq!(last.len(), 1);
    let mut expected: Vec<Option<String>> = (0..12)
        .map(|n| format!("doc{n}"))
        .filter(|d| *d != last[0].1)
        .map(Some)
        .collect();
    expected.push(None);
    expected.sort();
    previous.sort();
    assert_eq!(previous, expected);
}
