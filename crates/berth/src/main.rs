//! `berth`: the registry binary. `berth serve` runs the registry; see `berth --help`.

use berth::{
    admin, config, credential_helper, image_digest, login, replication_wait, scan_gate, serve,
};

use clap::{CommandFactory, FromArgMatches, Subcommand};

/// Berth: a self-hosted OCI container registry with Amazon ECR's features.
#[derive(clap::Parser)]
#[command(name = "berth", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry (OCI Distribution API on /v2/, health and metrics endpoints).
    Serve(Box<config::Settings>),
    /// Manage accounts, users, roles, service principals, access keys, policies; read
    /// the audit trail. Works on the data directory, with or without a running server.
    Admin(admin::AdminArgs),
    /// Print a password for `docker login -u AWS --password-stdin <registry>` (like
    /// `aws ecr get-login-password`), using your AWS-style credentials.
    Login(login::LoginArgs),
    /// Replication helpers for pipelines: `berth replication wait` blocks until an image
    /// is COMPLETE in every replication destination.
    Replication(replication_wait::ReplicationArgs),
    /// Image helpers for pipelines: `berth image digest REF` prints the digest a tag
    /// names now, for deploying by digest.
    Image(image_digest::ImageArgs),
    /// Security gates for pipelines: `berth scan gate` waits for an image's scan and
    /// fails when it has findings at or above a severity.
    Scan(scan_gate::ScanArgs),
    /// The docker credential-helper protocol (get, store, erase, list on stdin/stdout),
    /// as `docker-credential-berth`: a fresh short-lived token per docker command.
    CredentialHelper {
        /// get, store, erase or list.
        action: String,
    },
}

fn main() -> std::process::ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match run(cli, &matches) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One readable line (with its causes), never a backtrace.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, matches: &clap::ArgMatches) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(_) => {
            // Where each value came from decides whether the TOML file may override it.
            let serve = matches
                .subcommand_matches("serve")
                .expect("the serve subcommand was parsed");
            let settings = config::Settings::from_matches(serve)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(serve::run(settings))
        }
        Command::Admin(args) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(admin::run(args))
        }
        Command::Login(args) => login::run(args),
        Command::Replication(args) => replication_wait::run(args),
        Command::Scan(args) => scan_gate::run(args),
        Command::Image(args) => image_digest::run(args),
        Command::CredentialHelper { action } => {
            std::process::exit(credential_helper::main(Some(&action)))
        }
    }
}
