//! `berth`: the registry binary. `berth serve` runs the registry; see `berth --help`.

mod config;
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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let settings = args.resolve()?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(serve::run(settings))
        }
    }
}
