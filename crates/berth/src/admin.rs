//! `berth admin`: manage accounts, users, roles, service principals, access keys and
//! policies, and read the audit trail — directly in the registry's metadata database
//! (the data directory's SQLite file, or the PostgreSQL database `--metadata` names,
//! opened by `crate::backends::open_metadata` exactly as `berth serve` opens it), so it
//! works whether or not the server runs (a running server picks changes up within a
//! second). Secrets are printed once, when created, and never stored in clear.

use crate::config::Settings;
use anyhow::Context;
use berth_iam::service::StoredKind;
use berth_iam::{Action, Iam};
use berth_meta::iam::AuditQuery;
use berth_meta::Metadata;
use clap::{Args, Subcommand, ValueEnum};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// `berth admin [--data-dir DIR] <command>`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Data directory of the registry. [default: ./berth-data]
    #[arg(long, env = "BERTH_DATA_DIR", value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// The metadata database, as `berth serve --metadata` takes it (`sqlite:///path` or
    /// `postgres://…`). [default: <data-dir>/metadata.db]
    #[arg(long, env = "BERTH_METADATA", value_name = "URL", global = true)]
    pub metadata: Option<String>,
    /// The master key file, as `berth serve --master-key-file` takes it.
    /// [default: <data-dir>/master.key]
    #[arg(
        long,
        env = "BERTH_MASTER_KEY_FILE",
        value_name = "FILE",
        global = true
    )]
    pub master_key_file: Option<PathBuf>,
    /// The server's TOML config file (for data_dir, metadata, region and master_key_file).
    #[arg(long, env = "BERTH_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Region, used only for a data directory that has not recorded one yet (the
    /// server records its region at first start). [default: us-east-1]
    #[arg(long, env = "BERTH_REGION", value_name = "REGION", global = true)]
    pub region: Option<String>,
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// What to administer.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Accounts (registry IDs).
    #[command(subcommand)]
    Account(AccountCmd),
    /// IAM users.
    #[command(subcommand)]
    User(PrincipalCmd),
    /// IAM roles, and temporary credentials by assuming one.
    #[command(subcommand)]
    Role(RoleCmd),
    /// Service principals (e.g. ecs-tasks.amazonaws.com), matched by `{"Service": …}`.
    #[command(subcommand)]
    Service(PrincipalCmd),
    /// Access keys of users and service principals.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Identity policies of users and roles; policy simulation.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Repository policies (resource-based).
    #[command(subcommand, name = "repository-policy")]
    RepositoryPolicy(RepoPolicyCmd),
    /// The registry policy (resource-based, registry-wide).
    #[command(subcommand, name = "registry-policy")]
    RegistryPolicy(RegistryPolicyCmd),
    /// Query the audit trail of authentication and authorisation decisions.
    Audit(AuditArgs),
    /// Background jobs (event fan-out and delivery, …): list, show, retry, cancel.
    #[command(subcommand)]
    Jobs(crate::admin_jobs::JobsCmd),
    /// Events: the webhook delivery log and API destinations' signing secrets.
    #[command(subcommand)]
    Events(crate::admin_jobs::EventsCmd),
    /// Lifecycle policies: run them now.
    #[command(subcommand)]
    Lifecycle(LifecycleCmd),
    /// Vulnerability data for image scanning: import OSV records.
    #[command(subcommand)]
    Vulndb(VulndbCmd),
    /// Copy this embedded-default registry (SQLite + local blobs) to PostgreSQL and
    /// S3-compatible storage, verified and resumable; the server must be stopped.
    Migrate(crate::admin_migrate::MigrateArgs),
    /// Online garbage collection: sweep blobs no manifest references (and stray bytes)
    /// that stayed so for the grace window; `--dry-run` prints what would go.
    Gc(crate::admin_gc::GcArgs),
}

/// `berth admin vulndb …`.
#[derive(Debug, Subcommand)]
pub enum VulndbCmd {
    /// Import OSV records (a `.json` record, a directory of them searched recursively,
    /// or OSV's per-ecosystem `all.zip`) into the vulnerability database, keeping each
    /// source's timestamp; when anything changed, every stored image inventory is
    /// re-matched by the server (continuous scanning). Prints one JSON object.
    Import {
        /// The file, directory or zip archive.
        path: PathBuf,
    },
}

/// `berth admin lifecycle …`.
#[derive(Debug, Subcommand)]
pub enum LifecycleCmd {
    /// Enqueue a `lifecycle.evaluate` job for every repository with a lifecycle policy
    /// (or only `--repository`), skipping repositories under `lifecycle_exclude_prefixes`;
    /// prints one JSON line per repository (the job's ID, or why it was skipped). The
    /// server runs the jobs (within a second); `berth admin jobs show ID` shows what each
    /// expired.
    Run {
        /// Only this repository.
        #[arg(long)]
        repository: Option<String>,
    },
}

/// Account commands.
#[derive(Debug, Subcommand)]
pub enum AccountCmd {
    /// Create an account.
    Create {
        /// 12-digit account ID.
        id: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// List accounts.
    List,
    /// Delete an account with all its principals, keys and policies.
    Delete {
        /// 12-digit account ID.
        id: String,
    },
}

/// Where a principal lives.
#[derive(Debug, Args)]
pub struct AccountOpt {
    /// Account (default: this registry's own account).
    #[arg(long)]
    pub account: Option<String>,
}

/// User and service-principal commands.
#[derive(Debug, Subcommand)]
pub enum PrincipalCmd {
    /// Create one.
    Create {
        /// Name (for a service principal: the service, e.g. ecs-tasks.amazonaws.com).
        name: String,
        #[command(flatten)]
        account: AccountOpt,
        /// Principal tag KEY=VALUE (repeatable).
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// List them.
    List {
        #[command(flatten)]
        account: AccountOpt,
    },
    /// Delete one with its keys and policies.
    Delete {
        /// Name.
        name: String,
        #[command(flatten)]
        account: AccountOpt,
    },
}

/// Output of new credentials.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CredFormat {
    /// AWS shared-credentials file (`[default]` …).
    Credentials,
    /// `export AWS_…=…` lines for a shell.
    Env,
    /// JSON, as STS and IAM print them.
    Json,
}

/// Role commands.
#[derive(Debug, Subcommand)]
pub enum RoleCmd {
    /// create, list, delete: as for users.
    #[command(flatten)]
    Common(PrincipalCmd),
    /// Assume a role: print temporary credentials (key, secret, session token).
    Assume {
        /// Role name.
        name: String,
        #[command(flatten)]
        account: AccountOpt,
        /// Role session name.
        #[arg(long, default_value = "berth-admin")]
        session_name: String,
        /// Lifetime in seconds (900–43200).
        #[arg(long, default_value_t = 3600)]
        duration_secs: u64,
        /// Output format.
        #[arg(long, value_enum, default_value = "credentials")]
        format: CredFormat,
    },
}

/// Access-key commands.
#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Create an access key for a user or a service principal; prints the secret once.
    Create {
        /// The user's name.
        #[arg(long, conflicts_with = "service", required_unless_present = "service")]
        user: Option<String>,
        /// The service principal's name.
        #[arg(long)]
        service: Option<String>,
        #[command(flatten)]
        account: AccountOpt,
        /// Output format.
        #[arg(long, value_enum, default_value = "credentials")]
        format: CredFormat,
    },
    /// List access keys (never their secrets).
    List {
        #[command(flatten)]
        account: AccountOpt,
    },
    /// Delete an access key (or temporary credentials).
    Delete {
        /// Access key ID.
        id: String,
    },
}

/// Whose identity policy.
#[derive(Debug, Args)]
pub struct PolicyOwner {
    /// A user's name.
    #[arg(long, conflicts_with = "role", required_unless_present = "role")]
    pub user: Option<String>,
    /// A role's name.
    #[arg(long)]
    pub role: Option<String>,
    #[command(flatten)]
    pub account: AccountOpt,
}

/// Policy text from a file or the command line.
#[derive(Debug, Args)]
pub struct PolicyText {
    /// File holding the policy JSON (`-` for stdin).
    #[arg(
        long,
        conflicts_with = "document",
        required_unless_present = "document"
    )]
    pub file: Option<PathBuf>,
    /// The policy JSON itself.
    #[arg(long)]
    pub document: Option<String>,
}

impl PolicyText {
    fn read(&self) -> anyhow::Result<String> {
        match (&self.file, &self.document) {
            (_, Some(d)) => Ok(d.clone()),
            (Some(p), None) if p.as_os_str() == "-" => {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
                Ok(s)
            }
            (Some(p), None) => {
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
            }
            (None, None) => anyhow::bail!("give --file or --document"),
        }
    }
}

/// Identity-policy commands.
#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Attach (create or replace) an inline policy to a user or role.
    Put {
        #[command(flatten)]
        owner: PolicyOwner,
        /// Policy name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        text: PolicyText,
    },
    /// Detach an inline policy.
    Delete {
        #[command(flatten)]
        owner: PolicyOwner,
        /// Policy name.
        #[arg(long)]
        name: String,
    },
    /// List a user's or role's inline policies.
    List {
        #[command(flatten)]
        owner: PolicyOwner,
    },
    /// Evaluate a request as the server would, without making it.
    Simulate {
        /// Principal: a user ARN (`arn:aws:iam::<acct>:user/<name>`), a role ARN
        /// (`arn:aws:iam::<acct>:role/<name>`, simulated as a session of the role), a
        /// session ARN (`arn:aws:sts::<acct>:assumed-role/<role>/<session>`), a service
        /// principal's name, or `anonymous`.
        #[arg(long)]
        principal: String,
        /// Action, e.g. ecr:BatchGetImage (a name ECR does not have gets a warning).
        #[arg(long)]
        action: String,
        /// Resource ARN, or a repository name (made into this registry's ARN).
        #[arg(long)]
        resource: String,
        /// The caller's IP address (`aws:SourceIp`).
        #[arg(long)]
        source_ip: Option<std::net::IpAddr>,
    },
}

/// Repository-policy commands.
#[derive(Debug, Subcommand)]
pub enum RepoPolicyCmd {
    /// Set a repository's policy.
    Set {
        /// Repository name.
        repository: String,
        #[command(flatten)]
        text: PolicyText,
    },
    /// Print a repository's policy.
    Get {
        /// Repository name.
        repository: String,
    },
    /// Delete a repository's policy.
    Delete {
        /// Repository name.
        repository: String,
    },
}

/// Registry-policy commands.
#[derive(Debug, Subcommand)]
pub enum RegistryPolicyCmd {
    /// Set the registry policy.
    Put {
        #[command(flatten)]
        text: PolicyText,
    },
    /// Print the registry policy.
    Get,
    /// Delete the registry policy.
    Delete,
}

/// Filters of `berth admin audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Exact principal ARN (or access key ID for failed authentications).
    #[arg(long)]
    pub principal: Option<String>,
    /// Exact action, e.g. ecr:BatchGetImage or authenticate.
    #[arg(long)]
    pub action: Option<String>,
    /// allow or deny.
    #[arg(long, value_parser = ["allow", "deny"])]
    pub decision: Option<String>,
    /// A resource ARN or repository name (exact); end it with `*` for a prefix.
    #[arg(long)]
    pub resource: Option<String>,
    /// Only records newer than this many seconds.
    #[arg(long, value_name = "SECS")]
    pub since_secs: Option<u64>,
    /// At most this many records (newest first).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

fn tags(list: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    list.iter()
        .map(|t| {
            t.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("tag {t:?} must be KEY=VALUE"))
        })
        .collect()
}

/// An audit record's time, UTC with milliseconds, always 24 characters wide
/// (`2026-12-02T19:04:05.067Z`), so `berth admin audit`'s columns line up.
fn audit_time(at_ms: i64) -> String {
    const FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(at_ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(FORMAT).ok())
        .unwrap_or_else(|| format!("{at_ms:>24}"))
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn print_creds(
    format: CredFormat,
    id: &str,
    secret: &str,
    token: Option<&str>,
    expiration: Option<time::OffsetDateTime>,
) {
    match format {
        CredFormat::Credentials => {
            println!("[default]\naws_access_key_id = {id}\naws_secret_access_key = {secret}");
            if let Some(t) = token {
                println!("aws_session_token = {t}");
            }
        }
        CredFormat::Env => {
            println!("export AWS_ACCESS_KEY_ID={id}\nexport AWS_SECRET_ACCESS_KEY={secret}");
            if let Some(t) = token {
                println!("export AWS_SESSION_TOKEN={t}");
            }
        }
        CredFormat::Json => {
            let mut v = serde_json::json!({"AccessKeyId": id, "SecretAccessKey": secret});
            if let Some(t) = token {
                v["SessionToken"] = t.into();
            }
            if let Some(e) = expiration {
                v["Expiration"] = rfc3339(e).into();
            }
            println!("{v}");
        }
    }
}

/// The session ARN simulated for a role ARN (`arn:aws:iam::<account>:role/[path/]<name>`):
/// a role makes no request itself, its sessions do
/// (`arn:aws:sts::<account>:assumed-role/<name>/<session>`).
fn role_session(arn: &str) -> Option<String> {
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (account, rest) = rest.split_once(':')?;
    let name = rest.strip_prefix("role/")?.rsplit('/').next()?;
    (!name.is_empty())
        .then(|| format!("arn:aws:sts::{account}:assumed-role/{name}/berth-simulation"))
}

/// Runs one admin command.
pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    // The server's settings as `berth serve` would read them, with these flags.
    let mut argv: Vec<std::ffi::OsString> = Vec::new();
    if let Some(d) = &args.data_dir {
        argv.extend(["--data-dir".into(), d.into()]);
    }
    if let Some(c) = &args.config {
        argv.extend(["--config".into(), c.into()]);
    }
    if let Some(r) = &args.region {
        argv.extend(["--region".into(), r.into()]);
    }
    if let Some(m) = &args.metadata {
        argv.extend(["--metadata".into(), m.into()]);
    }
    if let Some(k) = &args.master_key_file {
        argv.extend(["--master-key-file".into(), k.into()]);
    }
    let settings = Settings::from_matches(&Settings::command().try_get_matches_from(argv)?)?;
    let cmd = match args.command {
        AdminCommand::Migrate(m) => return crate::admin_migrate::run(&settings, m).await,
        AdminCommand::Gc(g) => return crate::admin_gc::run(&settings, g).await,
        other => other,
    };
    if let crate::config::MetadataUrl::Sqlite(db) = settings.metadata_url()? {
        anyhow::ensure!(
            db.exists(),
            "{} does not exist: run `berth serve --data-dir {}` once first",
            db.display(),
            settings.data_dir.display()
        );
    }
    let meta = crate::backends::open_metadata(&settings).await?;
    let iam = crate::identity::open(&settings, meta.clone(), false).await?;
    let events = crate::identity::sealed_events(&settings, meta.clone())?;
    let r = command(
        &iam,
        meta.as_ref(),
        &*events,
        &settings.lifecycle_exclude_prefixes,
        cmd,
    )
    .await;
    meta.close().await;
    r
}

fn account(iam: &Iam, a: &AccountOpt) -> String {
    a.account
        .clone()
        .unwrap_or_else(|| iam.account().to_string())
}

fn owner(iam: &Iam, o: &PolicyOwner) -> (String, StoredKind, String) {
    match (&o.user, &o.role) {
        (Some(u), _) => (account(iam, &o.account), StoredKind::User, u.clone()),
        (None, Some(r)) => (account(iam, &o.account), StoredKind::Role, r.clone()),
        (None, None) => unreachable!("clap requires --user or --role"),
    }
}

fn list_principals(iam: &Iam, a: &AccountOpt, kind: StoredKind) {
    let acct = a.account.as_deref();
    for (_, k, _, arn) in iam.list_principals(acct) {
        if k == kind {
            println!("{arn}");
        }
    }
}

async fn command(
    iam: &Iam,
    meta: &dyn Metadata,
    events: &dyn berth_meta::EventConfigStore,
    exclude: &[String],
    cmd: AdminCommand,
) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::Migrate(_) | AdminCommand::Gc(_) => {
            unreachable!("run() handles migrate and gc before opening metadata")
        }
        AdminCommand::Jobs(c) => crate::admin_jobs::jobs(meta, c).await?,
        AdminCommand::Lifecycle(LifecycleCmd::Run { repository }) => {
            let only = repository
                .as_deref()
                .map(berth_core::RepositoryName::parse)
                .transpose()?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            let planned = crate::lifecycle::enqueue_runs(meta, exclude, only.as_ref(), now).await?;
            for (repo, p) in planned {
                println!("{}", p.to_json(&repo));
            }
        }
        AdminCommand::Events(c) => crate::admin_jobs::events(meta, events, c).await?,
        AdminCommand::Vulndb(VulndbCmd::Import { path }) => {
            let records =
                tokio::task::spawn_blocking(move || berth_scan::osv::read_path(&path)).await??;
            let rows = berth_registry::scanning::vuln_rows(&records)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            let before = meta.vuln_db_generation().await?;
            let o = meta.import_vuln_records(&rows, now / 1000).await?;
            let mut out = serde_json::json!({
                "records": rows.len(),
                "inserted": o.inserted,
                "updated": o.updated,
                "unchanged": o.unchanged,
                "generation": o.generation,
                "sources": meta.vuln_sources().await?.iter().map(|s| serde_json::json!({
                    "source": s.source, "vulnerabilitySourceUpdatedAt": s.updated_at, "records": s.records,
                })).collect::<Vec<_>>(),
            });
            if o.generation != before {
                let job = meta
                    .enqueue(&crate::scanning::rematch_job(o.generation), now)
                    .await?;
                out["rematchJob"] = serde_json::json!(job.id());
            }
            println!("{out}");
        }
        AdminCommand::Account(c) => match c {
            AccountCmd::Create { id, name } => {
                iam.create_account(&id, name.as_deref().unwrap_or(&id))
                    .await?;
                println!("created account {id}");
            }
            AccountCmd::List => {
                for (id, name, default) in iam.list_accounts() {
                    println!(
                        "{id}\t{name}{}",
                        if default { "\t(this registry)" } else { "" }
                    );
                }
            }
            AccountCmd::Delete { id } => {
                iam.delete_account(&id).await?;
                println!("deleted account {id}");
            }
        },
        AdminCommand::User(c) => principal_cmd(iam, StoredKind::User, c).await?,
        AdminCommand::Service(c) => principal_cmd(iam, StoredKind::Service, c).await?,
        AdminCommand::Role(c) => match c {
            RoleCmd::Common(c) => principal_cmd(iam, StoredKind::Role, c).await?,
            RoleCmd::Assume {
                name,
                account: a,
                session_name,
                duration_secs,
                format,
            } => {
                let c = iam
                    .assume_role(
                        &account(iam, &a),
                        &name,
                        &session_name,
                        Duration::from_secs(duration_secs),
                    )
                    .await?;
                if let CredFormat::Json = format {
                    // As `aws sts assume-role` prints it.
                    let acct = account(iam, &a);
                    println!(
                        "{}",
                        serde_json::json!({
                            "Credentials": {
                                "AccessKeyId": c.access_key_id,
                                "SecretAccessKey": c.secret_access_key.as_str(),
                                "SessionToken": c.session_token.as_str(),
                                "Expiration": rfc3339(c.expiration),
                            },
                            "AssumedRoleUser": {
                                "Arn": format!("arn:aws:sts::{acct}:assumed-role/{name}/{session_name}"),
                            },
                        })
                    );
                } else {
                    print_creds(
                        format,
                        &c.access_key_id,
                        &c.secret_access_key,
                        Some(&c.session_token),
                        Some(c.expiration),
                    );
                }
            }
        },
        AdminCommand::Key(c) => match c {
            KeyCmd::Create {
                user,
                service,
                account: a,
                format,
            } => {
                let (kind, name) = match (user, service) {
                    (Some(u), _) => (StoredKind::User, u),
                    (None, Some(s)) => (StoredKind::Service, s),
                    (None, None) => anyhow::bail!("give --user or --service"),
                };
                let k = iam
                    .create_access_key(&account(iam, &a), kind, &name)
                    .await?;
                print_creds(format, &k.access_key_id, &k.secret_access_key, None, None);
            }
            KeyCmd::List { account: a } => {
                for (id, owner, session, expires) in iam.list_access_keys(a.account.as_deref()) {
                    let mut line = format!("{id}\t{owner}");
                    if let Some(s) = session {
                        line.push_str(&format!("\tsession={s}"));
                    }
                    if let Some(e) =
                        expires.and_then(|e| time::OffsetDateTime::from_unix_timestamp(e).ok())
                    {
                        line.push_str(&format!("\texpires={}", rfc3339(e)));
                    }
                    println!("{line}");
                }
            }
            KeyCmd::Delete { id } => {
                iam.delete_access_key(&id).await?;
                println!("deleted access key {id}");
            }
        },
        AdminCommand::Policy(c) => match c {
            PolicyCmd::Put {
                owner: o,
                name,
                text,
            } => {
                let (a, k, n) = owner(iam, &o);
                iam.put_identity_policy(&a, k, &n, &name, &text.read()?)
                    .await?;
                println!("attached policy {name} to {} {n}", k.as_str());
            }
            PolicyCmd::Delete { owner: o, name } => {
                let (a, k, n) = owner(iam, &o);
                iam.delete_identity_policy(&a, k, &n, &name).await?;
                println!("detached policy {name} from {} {n}", k.as_str());
            }
            PolicyCmd::List { owner: o } => {
                let (a, k, n) = owner(iam, &o);
                for (name, doc) in iam.list_identity_policies(&a, k, &n).await? {
                    println!("{name}\t{doc}");
                }
            }
            PolicyCmd::Simulate {
                principal,
                action,
                resource,
                source_ip,
            } => {
                let resource = if resource.starts_with("arn:") || resource == "*" {
                    resource
                } else {
                    iam.repository_arn(&resource)
                };
                if Action::parse(&action).is_none() {
                    eprintln!(
                        "warning: {action:?} is not an action ECR has (they are named like \
                         ecr:BatchGetImage, ecr:PutImage; see docs/ecr-api.md): only a \
                         policy's wildcards can match it"
                    );
                }
                let principal = match role_session(&principal) {
                    Some(session) => {
                        eprintln!(
                            "note: a role acts through its sessions: simulating {session} \
                             (from `berth admin role assume`)"
                        );
                        session
                    }
                    None => principal,
                };
                let (allowed, reason, message) = iam
                    .simulate(&principal, &action, &resource, source_ip)
                    .with_context(|| {
                        format!(
                            "--principal {principal}: accepted forms are \
                             arn:aws:iam::<account>:user/<name>, \
                             arn:aws:iam::<account>:role/<name>, \
                             arn:aws:sts::<account>:assumed-role/<role>/<session>, a service \
                             principal's name (e.g. ecs-tasks.amazonaws.com), or anonymous"
                        )
                    })?;
                if allowed {
                    println!("allow\t{reason}");
                } else {
                    println!("deny\t{reason}\n{message}");
                    std::process::exit(1);
                }
            }
        },
        AdminCommand::RepositoryPolicy(c) => match c {
            RepoPolicyCmd::Set { repository, text } => {
                let name = berth_core::RepositoryName::parse(&repository)?;
                // As ECR's SetRepositoryPolicy: the repository must exist.
                anyhow::ensure!(
                    berth_meta::MetaStore::repository_exists(meta, &name).await?,
                    "repository {repository} does not exist in registry {}",
                    iam.account()
                );
                iam.set_repository_policy(&repository, &text.read()?)
                    .await?;
                println!("set the policy of repository {repository}");
            }
            RepoPolicyCmd::Get { repository } => {
                match iam.get_repository_policy(&repository).await? {
                    Some(t) => println!("{t}"),
                    None => anyhow::bail!("repository {repository} has no policy"),
                }
            }
            RepoPolicyCmd::Delete { repository } => {
                match iam.delete_repository_policy(&repository).await? {
                    Some(_) => println!("deleted the policy of repository {repository}"),
                    None => anyhow::bail!("repository {repository} has no policy"),
                }
            }
        },
        AdminCommand::RegistryPolicy(c) => match c {
            RegistryPolicyCmd::Put { text } => {
                iam.put_registry_policy(&text.read()?).await?;
                println!("set the registry policy");
            }
            RegistryPolicyCmd::Get => match iam.get_registry_policy().await? {
                Some(t) => println!("{t}"),
                None => anyhow::bail!("no registry policy is set"),
            },
            RegistryPolicyCmd::Delete => match iam.delete_registry_policy().await? {
                Some(_) => println!("deleted the registry policy"),
                None => anyhow::bail!("no registry policy is set"),
            },
        },
        AdminCommand::Audit(a) => {
            let arn = |r: &str| {
                if r.starts_with("arn:") || r == "*" {
                    r.to_string()
                } else {
                    iam.repository_arn(r)
                }
            };
            let (resource, resource_prefix) = match a.resource.as_deref() {
                Some(r) if r.ends_with('*') && r.len() > 1 => (None, Some(arn(&r[..r.len() - 1]))),
                Some(r) => (Some(arn(r)), None),
                None => (None, None),
            };
            let since_ms = a.since_secs.map(|s| {
                time::OffsetDateTime::now_utc().unix_timestamp() * 1000 - (s as i64) * 1000
            });
            let rows = iam
                .query_audit(&AuditQuery {
                    principal: a.principal,
                    action: a.action,
                    decision: a.decision,
                    resource,
                    resource_prefix,
                    since_ms,
                    limit: a.limit,
                })
                .await?;
            for r in rows {
                let at = audit_time(r.at_ms);
                if a.json {
                    println!(
                        "{}",
                        serde_json::json!({"time": at, "principal": r.principal, "action": r.action,
                            "resource": r.resource, "decision": r.decision, "reason": r.reason,
                            "sourceIp": r.source_ip})
                    );
                } else {
                    println!(
                        "{at}\t{}\t{}\t{}\t{}\t{}\t{}",
                        r.decision,
                        r.principal,
                        r.action,
                        r.resource,
                        r.reason,
                        r.source_ip.unwrap_or_else(|| "-".into())
                    );
                }
            }
        }
    }
    Ok(())
}

async fn principal_cmd(iam: &Iam, kind: StoredKind, c: PrincipalCmd) -> anyhow::Result<()> {
    match c {
        PrincipalCmd::Create {
            name,
            account: a,
            tags: t,
        } => {
            let acct = account(iam, &a);
            iam.create_principal(&acct, kind, &name, tags(&t)?).await?;
            println!("created {} {name} in account {acct}", kind.as_str());
        }
        PrincipalCmd::List { account: a } => list_principals(iam, &a, kind),
        PrincipalCmd::Delete { name, account: a } => {
            let acct = account(iam, &a);
            iam.delete_principal(&acct, kind, &name).await?;
            println!("deleted {} {name} from account {acct}", kind.as_str());
        }
    }
    Ok(())
}
