//! `berth image digest REF` (issue 13): prints the digest an image reference names now,
//! so a pipeline deploys by digest (`<registry>/<repository>@sha256:…`) rather than by a
//! tag that may move. `REF` is `[<registry>/]<repository>[:<tag>|@<digest>]` as docker
//! writes it (tag `latest` when none); the registry part (`host[:port]`, recognised as
//! docker does: it has a `.` or `:` or is `localhost`) is where the ECR API is called,
//! else `--registry`. The digest comes from the registry's `DescribeImages`
//! (SigV4-signed, credentials found as the AWS CLI finds them, like `berth login`), which
//! resolves the tag on the server; `--reference` prints the whole pinned reference.

use anyhow::Context;
use clap::{Args, Subcommand};

/// `berth image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// Print the digest an image reference names (for deploying by digest).
    Digest(DigestArgs),
}

/// `berth image digest`.
#[derive(Debug, Args)]
pub struct DigestArgs {
    /// `[<registry>/]<repository>[:<tag>|@<digest>]`.
    reference: String,
    /// Print `<registry>/<repository>@<digest>` instead of the digest alone.
    #[arg(long)]
    reference_out: bool,
    /// The registry (when REF names none) and the credentials.
    #[command(flatten)]
    client: crate::login::EcrClientArgs,
}

/// A parsed image reference: (registry host, repository, tag or digest member).
#[derive(Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// `host[:port]`, when the reference names one.
    pub registry: Option<String>,
    /// The repository name.
    pub repository: String,
    /// `("imageTag", tag)` or `("imageDigest", digest)`.
    pub id: (&'static str, String),
}

/// Splits a docker-style reference (docker's rule for the registry part: the first
/// component has a `.` or `:` or is `localhost`). Errors: an empty repository.
pub fn parse_reference(r: &str) -> anyhow::Result<ImageRef> {
    let (registry, rest) = match r.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (Some(first.to_string()), rest)
        }
        _ => (None, r),
    };
    let (repository, id) = if let Some((repo, digest)) = rest.split_once('@') {
        (repo, ("imageDigest", digest.to_string()))
    } else {
        match rest.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, ("imageTag", tag.to_string())),
            _ => (rest, ("imageTag", "latest".to_string())),
        }
    };
    anyhow::ensure!(
        !repository.is_empty() && !id.1.is_empty(),
        "{r:?} is not an image reference ([<registry>/]<repository>[:<tag>|@<digest>])"
    );
    Ok(ImageRef {
        registry,
        repository: repository.to_string(),
        id,
    })
}

/// Runs `berth image …`.
pub fn run(args: ImageArgs) -> anyhow::Result<()> {
    let ImageCommand::Digest(a) = args.command;
    let r = parse_reference(&a.reference)?;
    let url = crate::login::registry_url(
        r.registry.clone().or(a.client.registry.clone()),
        "aws ecr describe-images",
    )?;
    let region = crate::login::signing_region(a.client.region.clone());
    let body = serde_json::json!({
        "repositoryName": r.repository,
        "imageIds": [{ r.id.0: r.id.1 }],
    });
    let v = crate::login::call_ecr(
        &url,
        &region,
        a.client.profile.as_deref(),
        "DescribeImages",
        body.to_string().as_bytes(),
    )?;
    let digest = v["imageDetails"][0]["imageDigest"]
        .as_str()
        .with_context(|| format!("no image {} in the answer: {v}", a.reference))?;
    if a.reference_out {
        let host = r.registry.unwrap_or_else(|| {
            url.trim_end_matches('/')
                .split_once("://")
                .map(|(_, h)| h.to_string())
                .unwrap_or_default()
        });
        println!("{host}/{}@{digest}", r.repository);
    } else {
        println!("{digest}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_as_docker_splits_them() {
        let r = parse_reference("127.0.0.1:5000/acme/app:ci").unwrap();
        assert_eq!(r.registry.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(r.repository, "acme/app");
        assert_eq!(r.id, ("imageTag", "ci".to_string()));
        let r = parse_reference("acme/app").unwrap();
        assert_eq!(r.registry, None);
        assert_eq!(r.id, ("imageTag", "latest".to_string()));
        let r = parse_reference("localhost/app@sha256:abc").unwrap();
        assert_eq!(r.registry.as_deref(), Some("localhost"));
        assert_eq!(r.id, ("imageDigest", "sha256:abc".to_string()));
        assert!(parse_reference("host.example/:").is_err());
    }
}
