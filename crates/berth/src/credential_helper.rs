//! `docker-credential-berth` (also `berth credential-helper <action>`): the docker
//! credential-helper protocol, so `docker push` and `docker pull` get a short-lived
//! registry token for each command and no secret is ever written to `config.json`
//! (issue 13).
//!
//! Protocol (docker/docker-credential-helpers, "Credential helpers" in the `docker login`
//! reference): docker runs `docker-credential-<name> <action>` for a registry listed in
//! `config.json`'s `credHelpers` (or for every registry with `credsStore`):
//!
//! | action | stdin | stdout |
//! |---|---|---|
//! | `get` | the registry's server URL (`host[:port]`, or a URL) | `{"ServerURL", "Username", "Secret"}` |
//! | `store` | `{"ServerURL", "Username", "Secret"}` | nothing |
//! | `erase` | the server URL | nothing |
//! | `list` | nothing | `{"<server URL>": "<username>", …}` |
//!
//! On failure the message goes to stdout (what docker shows) and the exit status is 1.
//!
//! `get` calls the registry's ECR API operation GetAuthorizationToken, SigV4-signed with
//! the caller's AWS-style credentials found as the AWS CLI finds them (environment, web
//! identity — `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, exchanged with the
//! registry's STS —, shared credentials file and profile; see `login.rs`), and answers
//! `Username` `AWS` and the token's password (valid 12 hours at most, and never longer
//! than the role session it came from). Nothing is cached: docker asks for every command.
//! `store` and `erase` keep nothing (what `docker login` would have stored is exactly the
//! long-lived secret this helper exists to avoid) and succeed, as amazon-ecr-credential-helper
//! does; `list` answers `{}`.
//!
//! The registry's address comes from the server URL docker passes: a URL keeps its scheme;
//! a bare `host[:port]` is `http://` on loopback (`127.0.0.0/8`, `localhost`, `[::1]`,
//! where docker itself speaks plain HTTP) and `https://` elsewhere; `BERTH_ENDPOINT_URL`
//! overrides both (a registry behind a proxy whose API is elsewhere).

use anyhow::Context;
use std::io::{Read as _, Write as _};

/// What `store` reads on stdin (docker-credential-helpers' `Credentials`).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StoredCredentials {
    /// The registry's server URL.
    #[serde(rename = "ServerURL")]
    pub server_url: String,
    /// The user name.
    pub username: String,
    /// The secret (discarded).
    pub secret: String,
}

/// Parses `store`'s stdin. Errors: not the JSON object docker sends.
pub fn parse_store(input: &[u8]) -> anyhow::Result<StoredCredentials> {
    serde_json::from_slice(input)
        .context("store expects {\"ServerURL\", \"Username\", \"Secret\"} on stdin")
}

/// The ECR API endpoint (`<scheme>://<host>/`) for the server URL docker passed on stdin
/// (see the module doc). Errors: empty, a scheme other than http(s), or not a host.
pub fn endpoint_for(server_url: &str) -> anyhow::Result<String> {
    let s = server_url.trim();
    anyhow::ensure!(!s.is_empty(), "no registry server URL on stdin");
    if let Ok(url) = std::env::var("BERTH_ENDPOINT_URL") {
        return Ok(format!("{}/", url.trim_end_matches('/')));
    }
    let (scheme, rest) = match s.split_once("://") {
        Some((scheme, rest)) => {
            anyhow::ensure!(
                scheme == "http" || scheme == "https",
                "registry URL {s:?} must be http:// or https://"
            );
            (Some(scheme), rest)
        }
        None => (None, s),
    };
    let host = rest.split('/').next().unwrap_or("");
    anyhow::ensure!(
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c)),
        "registry server URL {s:?} does not name a host"
    );
    let name = if host.starts_with('[') {
        host.split(']')
            .next()
            .unwrap_or(host)
            .trim_start_matches('[')
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    let loopback = name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let scheme = scheme.unwrap_or(if loopback { "http" } else { "https" });
    Ok(format!("{scheme}://{host}/"))
}

/// `get`: a fresh token for `server_url`, as the JSON docker reads.
fn get(server_url: &str) -> anyhow::Result<String> {
    let url = endpoint_for(server_url)?;
    let client = crate::login::EcrClientArgs {
        registry: None,
        profile: std::env::var("AWS_PROFILE").ok(),
        region: std::env::var("AWS_REGION").ok(),
    };
    let (user, password) = crate::login::authorization_token(&url, &client)?;
    Ok(serde_json::json!({
        "ServerURL": server_url.trim(),
        "Username": user,
        "Secret": password.as_str(),
    })
    .to_string())
}

fn stdin() -> anyhow::Result<Vec<u8>> {
    let mut input = Vec::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_end(&mut input)
        .context("reading stdin")?;
    Ok(input)
}

fn act(action: &str) -> anyhow::Result<Option<String>> {
    match action {
        "get" => {
            let input = stdin()?;
            let server = String::from_utf8(input).context("the server URL is not UTF-8")?;
            get(&server).map(Some)
        }
        "store" => {
            let c = parse_store(&stdin()?)?;
            tracing::debug!(server = %c.server_url, user = %c.username, "store: nothing kept (tokens are minted per command)");
            Ok(None)
        }
        "erase" => {
            stdin()?;
            Ok(None)
        }
        "list" => Ok(Some("{}".into())),
        "version" => Ok(Some(format!(
            "docker-credential-berth {}",
            env!("CARGO_PKG_VERSION")
        ))),
        other => anyhow::bail!(
            "unknown action {other:?}: docker-credential-berth takes get, store, erase or list"
        ),
    }
}

/// Runs one action of the protocol and returns the process's exit status: 0, or 1 after
/// printing the error on stdout (where docker reads it).
pub fn main(action: Option<&str>) -> i32 {
    let r = match action {
        Some(a) => act(a),
        None => Err(anyhow::anyhow!(
            "usage: docker-credential-berth <get|store|erase|list> (run by docker for the \
             registries config.json's credHelpers names)"
        )),
    };
    let mut out = std::io::stdout();
    match r {
        Ok(Some(text)) => {
            let _ = writeln!(out, "{text}");
            0
        }
        Ok(None) => 0,
        Err(e) => {
            let _ = writeln!(out, "{e:#}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Docker passes `host[:port]` for a registry; loopback is plain HTTP (docker's own
    /// default for 127.0.0.0/8), anything else HTTPS unless the URL says otherwise.
    #[test]
    fn endpoint_follows_dockers_scheme_rules() {
        assert_eq!(
            endpoint_for("127.0.0.1:5000\n").unwrap(),
            "http://127.0.0.1:5000/"
        );
        assert_eq!(endpoint_for("localhost").unwrap(), "http://localhost/");
        assert_eq!(endpoint_for("[::1]:5000").unwrap(), "http://[::1]:5000/");
        assert_eq!(
            endpoint_for("registry.example.com").unwrap(),
            "https://registry.example.com/"
        );
        assert_eq!(
            endpoint_for("http://registry.example.com:8080/v2/").unwrap(),
            "http://registry.example.com:8080/"
        );
        assert!(endpoint_for("").is_err());
        assert!(endpoint_for("ftp://x").is_err());
        assert!(endpoint_for("a b").is_err());
    }

    #[test]
    fn store_input_is_dockers_credentials_object() {
        let c = parse_store(br#"{"ServerURL":"127.0.0.1:5000","Username":"AWS","Secret":"s"}"#)
            .unwrap();
        assert_eq!(c.server_url, "127.0.0.1:5000");
        assert!(parse_store(b"127.0.0.1:5000").is_err());
    }
}
