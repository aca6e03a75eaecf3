//! `berth login`: prints a password for `docker login -u AWS --password-stdin`, as
//! `aws ecr get-login-password` does (ECR_REFERENCE §4.1), by calling the registry's
//! ECR API operation GetAuthorizationToken signed with SigV4.
//!
//! Credentials come from where the AWS CLI finds them: `AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, else a web identity
//! (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, exchanged with STS
//! AssumeRoleWithWebIdentity at `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL` or the registry
//! itself), else the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default
//! `~/.aws/credentials`) and profile (`--profile`, `AWS_PROFILE`, default `default`).

use anyhow::Context;
use base64::Engine;
use clap::Args;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// The registry and the credentials every client subcommand (`berth login`, `berth
/// replication wait`, `berth scan gate`, `berth image digest`) calls the ECR API with;
/// flattened into each one's arguments.
#[derive(Debug, Clone, Args)]
pub struct EcrClientArgs {
    /// The registry's address. [default: http://127.0.0.1:5000]
    #[arg(long, env = "BERTH_REGISTRY", value_name = "URL")]
    pub registry: Option<String>,
    /// Profile in the shared credentials file.
    #[arg(long, env = "AWS_PROFILE")]
    pub profile: Option<String>,
    /// Region to sign for (must be the registry's). [default: us-east-1]
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
}

/// An image named by tag or digest in one repository: the ECR API's `imageId`.
#[derive(Debug, Clone, Args)]
pub struct ImageSelector {
    /// The repository.
    #[arg(long)]
    pub repository: String,
    /// The image's tag.
    #[arg(
        long,
        conflicts_with = "image_digest",
        required_unless_present = "image_digest"
    )]
    pub image_tag: Option<String>,
    /// The image's digest.
    #[arg(long)]
    pub image_digest: Option<String>,
}

impl ImageSelector {
    /// The `imageId` member: `{"imageTag": …}` or `{"imageDigest": …}`.
    pub fn image_id(&self) -> serde_json::Value {
        let mut id = serde_json::Map::new();
        if let Some(t) = &self.image_tag {
            id.insert("imageTag".into(), t.clone().into());
        }
        if let Some(d) = &self.image_digest {
            id.insert("imageDigest".into(), d.clone().into());
        }
        id.into()
    }

    /// `<repository>:<tag>` or `<repository>@<digest>`, for messages.
    pub fn display(&self) -> String {
        match (&self.image_tag, &self.image_digest) {
            (Some(t), _) => format!("{}:{t}", self.repository),
            (_, Some(d)) => format!("{}@{d}", self.repository),
            _ => self.repository.clone(),
        }
    }
}

/// `berth login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Where and as whom.
    #[command(flatten)]
    pub client: EcrClientArgs,
}

/// Where credentials come from, for the error that finds none (issue 17).
const WHERE_CREDENTIALS: &str = "berth login signs with AWS-style credentials, found where the \
AWS CLI finds them: the environment variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (plus \
AWS_SESSION_TOKEN for temporary credentials), else a web identity (AWS_WEB_IDENTITY_TOKEN_FILE \
and AWS_ROLE_ARN), else the shared credentials file \
AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials), profile --profile / AWS_PROFILE \
(default `default`). The registry's administrator key is written at first start to \
<data-dir>/admin-credentials: `AWS_SHARED_CREDENTIALS_FILE=<data-dir>/admin-credentials berth \
login`; other keys come from `berth admin key create`";

struct Creds {
    id: String,
    secret: Zeroizing<String>,
    token: Option<Zeroizing<String>>,
}

fn credentials(profile: &str, registry_url: &str) -> anyhow::Result<Creds> {
    if let (Ok(id), Ok(secret)) = (
        std::env::var("AWS_ACCESS_KEY_ID"),
        std::env::var("AWS_SECRET_ACCESS_KEY"),
    ) {
        return Ok(Creds {
            id,
            secret: Zeroizing::new(secret),
            token: std::env::var("AWS_SESSION_TOKEN").ok().map(Zeroizing::new),
        });
    }
    if let (Some(token_file), Ok(role)) = (
        std::env::var_os("AWS_WEB_IDENTITY_TOKEN_FILE"),
        std::env::var("AWS_ROLE_ARN"),
    ) {
        return web_identity(&PathBuf::from(token_file), &role, registry_url);
    }
    let path = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".aws/credentials")))
        .with_context(|| format!("no credentials: {WHERE_CREDENTIALS}"))?;
    anyhow::ensure!(
        path.exists(),
        "no credentials: AWS_ACCESS_KEY_ID is not set and {} does not exist. {WHERE_CREDENTIALS}",
        path.display()
    );
    let ini = ini::Ini::load_from_file(&path)
        .with_context(|| format!("reading credentials file {}", path.display()))?;
    let sec = ini.section(Some(profile)).with_context(|| {
        format!(
            "profile [{profile}] is not in {}. {WHERE_CREDENTIALS}",
            path.display()
        )
    })?;
    let get = |k: &str| {
        sec.get(k)
            .map(str::to_string)
            .with_context(|| format!("profile [{profile}] in {} has no {k}", path.display()))
    };
    Ok(Creds {
        id: get("aws_access_key_id")?,
        secret: Zeroizing::new(get("aws_secret_access_key")?),
        token: sec
            .get("aws_session_token")
            .map(|t| Zeroizing::new(t.to_string())),
    })
}

/// The text between `<tag>` and `</tag>` in STS's XML answer, unescaped. STS's answers
/// are a fixed shape with unique element names, so finding the element is reading it.
fn xml_member(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    quick_xml::escape::unescape(&xml[start..end])
        .ok()
        .map(|s| s.into_owned())
}

/// Exchanges the web identity token in `token_file` for a session of `role` with STS's
/// AssumeRoleWithWebIdentity (unsigned, as the AWS CLI's provider does) at
/// `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`, else the registry (Berth serves STS on
/// its listener). The session name is `AWS_ROLE_SESSION_NAME` or `berth-<epoch seconds>`.
fn web_identity(
    token_file: &std::path::Path,
    role: &str,
    registry_url: &str,
) -> anyhow::Result<Creds> {
    let token = Zeroizing::new(std::fs::read_to_string(token_file).with_context(|| {
        format!(
            "reading AWS_WEB_IDENTITY_TOKEN_FILE {}",
            token_file.display()
        )
    })?);
    let sts = std::env::var("AWS_ENDPOINT_URL_STS")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .map(|u| format!("{}/", u.trim_end_matches('/')))
        .unwrap_or_else(|_| registry_url.to_string());
    let session = std::env::var("AWS_ROLE_SESSION_NAME").unwrap_or_else(|_| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        format!("berth-{now}")
    });
    let form = [
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", "2011-06-15"),
        ("RoleArn", role),
        ("RoleSessionName", session.as_str()),
        ("WebIdentityToken", token.trim()),
    ];
    let xml = match ureq::post(&sts).send_form(&form) {
        Ok(r) => r.into_string().context("reading STS's answer")?,
        Err(ureq::Error::Status(code, r)) => {
            let xml = r.into_string().unwrap_or_default();
            anyhow::bail!(
                "{sts} refused AssumeRoleWithWebIdentity for {role} ({code} {}): {}",
                xml_member(&xml, "Code").unwrap_or_else(|| "error".into()),
                xml_member(&xml, "Message").unwrap_or_else(|| "no message".into())
            );
        }
        Err(e) => return Err(e).with_context(|| format!("calling STS at {sts}")),
    };
    let get =
        |tag: &str| xml_member(&xml, tag).with_context(|| format!("STS's answer has no {tag}"));
    Ok(Creds {
        id: get("AccessKeyId")?,
        secret: Zeroizing::new(get("SecretAccessKey")?),
        token: Some(Zeroizing::new(get("SessionToken")?)),
    })
}

/// The registry's base URL from `--registry` (default `http://127.0.0.1:5000`; a bare
/// `host:port` means `http://`). Errors: an `https://` URL (this client is built without
/// TLS: it talks to the registry's own listener; behind a TLS-terminating proxy use the
/// AWS CLI).
pub(crate) fn registry_url(registry: Option<String>, instead: &str) -> anyhow::Result<String> {
    let registry = registry.unwrap_or_else(|| "http://127.0.0.1:5000".into());
    let registry = if registry.contains("://") {
        registry
    } else {
        format!("http://{registry}")
    };
    anyhow::ensure!(
        !registry.starts_with("https://"),
        "this berth client speaks plain HTTP only; for {registry} use          `{instead} --endpoint-url {registry}`, which does the same"
    );
    Ok(format!("{}/", registry.trim_end_matches('/')))
}

/// The signing region: `--region`, else `AWS_DEFAULT_REGION`, else `us-east-1`.
pub(crate) fn signing_region(region: Option<String>) -> String {
    region
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .unwrap_or_else(|| "us-east-1".into())
}

/// Calls the ECR API operation `operation` at `url` with the JSON `body`, signed with
/// SigV4 for `region` with the credentials of `profile` (found as the AWS CLI finds
/// them). Errors: no credentials, the call failed, or the registry answered an error
/// (its `__type` and `message`).
pub(crate) fn call_ecr(
    url: &str,
    region: &str,
    profile: Option<&str>,
    operation: &str,
    body: &[u8],
) -> anyhow::Result<serde_json::Value> {
    let creds = credentials(profile.unwrap_or("default"), url)?;
    let target = format!("AmazonEC2ContainerRegistry_V20150921.{operation}");
    let base = [
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", target.as_str()),
    ];
    let signed = berth_iam::sigv4::sign(
        "POST",
        url,
        &base,
        body,
        &creds.id,
        &creds.secret,
        creds.token.as_deref().map(|t| t.as_str()),
        region,
        "ecr",
        std::time::SystemTime::now(),
    )
    .map_err(anyhow::Error::msg)?;
    let mut req = ureq::post(url);
    for (k, v) in base {
        req = req.set(k, v);
    }
    for (k, v) in &signed {
        req = req.set(k, v);
    }
    let resp = match req.send_bytes(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            let v: serde_json::Value = r.into_json().unwrap_or_default();
            anyhow::bail!(
                "{url} refused {operation} ({code} {}): {}",
                v["__type"].as_str().unwrap_or("error"),
                v["message"].as_str().unwrap_or("no message")
            );
        }
        Err(e) => return Err(e).with_context(|| format!("calling {url}")),
    };
    resp.into_json().context("reading the answer")
}

/// `(user, password)` of a GetAuthorizationToken answer's first `authorizationToken`
/// (base64 of `AWS:<password>`, ECR_REFERENCE §4.1).
pub(crate) fn token_credentials(
    answer: &serde_json::Value,
) -> anyhow::Result<(String, Zeroizing<String>)> {
    let token = answer["authorizationData"][0]["authorizationToken"]
        .as_str()
        .context("the answer has no authorizationData[0].authorizationToken")?;
    let decoded = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(token)
            .context("authorizationToken is not base64")?,
    );
    let decoded = std::str::from_utf8(&decoded).context("authorizationToken is not UTF-8")?;
    let (user, password) = decoded
        .split_once(':')
        .context("authorizationToken is not user:password")?;
    Ok((user.to_string(), Zeroizing::new(password.to_string())))
}

/// Calls GetAuthorizationToken at `url` with the credentials `client` names.
pub(crate) fn authorization_token(
    url: &str,
    client: &EcrClientArgs,
) -> anyhow::Result<(String, Zeroizing<String>)> {
    let region = signing_region(client.region.clone());
    let v = call_ecr(
        url,
        &region,
        client.profile.as_deref(),
        "GetAuthorizationToken",
        b"{}",
    )?;
    token_credentials(&v)
}

/// Runs `berth login`: prints the password on stdout.
pub fn run(args: LoginArgs) -> anyhow::Result<()> {
    let url = registry_url(args.client.registry.clone(), "aws ecr get-login-password")?;
    let (_, password) = authorization_token(&url, &args.client)?;
    println!("{}", password.as_str());
    Ok(())
}
