//! `berth`: the registry binary. `berth serve` runs the registry; see `berth --help`.

mod admin;
mod config;
mod identity;
mod login;
mod serve;

use clap::{Parser, Subcommand};

/// Berth: a self-hosted OCI container registry with Amazon ECR's features.
#[derive(Parser)]
#[command(name = "berth", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry (OCI Distribution API on /v2/, health and metrics endpoints).
    Serve(config::ServeArgs),
    /// Manage accounts, users, roles, service principals, access keys, policies; read
    /// the audit trail. Works on the data directory, with or without a running server.
    Admin(admin::AdminArgs),
    /// Print a password for `docker login -u AWS --password-stdin <registry>` (like
    /// `aws ecr get-login-password`), using your AWS-style credentials.
    Login(login::LoginArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One readable line (with its causes), never a backtrace.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let settings = args.resolve()?;
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
    }
}
