//! OIDC federation: verifying the web identity tokens of trusted issuers, the first half of
//! `sts:AssumeRoleWithWebIdentity` (the second half, the role's trust policy, is
//! [`crate::service`]'s `sts` module).
//!
//! Sources: IAM User Guide, "Create an OpenID Connect (OIDC) identity provider in IAM" and
//! "Available keys for AWS OIDC federation" (condition keys `<provider>:aud`,
//! `<provider>:sub`); STS API Reference, "AssumeRoleWithWebIdentity" (its errors); OpenID
//! Connect Core 1.0 §2 (ID token claims) and RFC 7517 (JWK sets).
//!
//! A provider is configured (`[[federation.oidc_providers]]` in the config file) with its
//! issuer URL, the audiences (client IDs) it may issue tokens for, and where its JSON Web
//! Key Set is: a URL or a file, read through a [`JwksSource`] the binary supplies (this
//! crate makes no HTTP calls). The key set is cached and read again when a token names a
//! key ID it does not hold (issuers rotate keys), at most once per
//! [`JWKS_REFETCH_INTERVAL`], so a stream of tokens with made-up key IDs cannot make Berth
//! hammer the issuer.
//!
//! Verification is `jsonwebtoken`'s (signature, `exp`, `nbf`, `iss`, `aud`) for RS256 and
//! ES256 only — the algorithms IAM accepts from OIDC providers that matter here; anything
//! else (`none`, HMAC) is refused before a key is looked at. The only parsing done here is
//! reading the unverified `iss` to choose the provider (fuzzed: `fuzz_targets/sts_request.rs`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Least time between two reads of one provider's key set caused by unknown key IDs.
pub const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// Largest web identity token accepted: STS's `WebIdentityToken` is 4–20000 characters.
pub const MAX_TOKEN_LEN: usize = 20_000;

/// Reads a provider's JSON Web Key Set (the JSON text of RFC 7517 §5). Implemented by the
/// binary for a URL (an HTTP GET) and a file. Errors are messages for the log and the
/// caller's `InvalidIdentityToken`/`IDPCommunicationError`.
pub trait JwksSource: Send + Sync + 'static {
    /// The key set's JSON text. May block (it runs on the blocking pool).
    fn fetch(&self) -> Result<String, String>;
    /// Where the keys come from, for messages (`https://…/jwks` or a file path).
    fn describe(&self) -> String;
}

/// One trusted OIDC issuer.
#[derive(Clone)]
pub struct OidcProvider {
    /// The issuer URL exactly as tokens carry it in `iss`, e.g.
    /// `https://token.actions.githubusercontent.com`.
    pub issuer: String,
    /// The audiences (`aud`) accepted; a token must carry one of them (IAM's "client IDs").
    pub audiences: Vec<String>,
    /// Where the signing keys are.
    pub jwks: Arc<dyn JwksSource>,
}

impl OidcProvider {
    /// The provider's ID as IAM forms it: the issuer URL without `https://` (or `http://`)
    /// and without a trailing `/`, e.g. `token.actions.githubusercontent.com`. It prefixes
    /// the condition keys (`<id>:sub`, `<id>:aud`) and ends the provider's ARN.
    pub fn id(&self) -> &str {
        let s = self.issuer.as_str();
        let s = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .unwrap_or(s);
        s.trim_end_matches('/')
    }

    /// `arn:aws:iam::<account>:oidc-provider/<id>`: what a trust policy names in
    /// `"Principal": {"Federated": …}`.
    pub fn arn(&self, account: &str) -> String {
        format!("arn:aws:iam::{account}:oidc-provider/{}", self.id())
    }
}

/// The verified claims of a web identity token that trust policies and answers use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebIdentity {
    /// The provider's ID (see [`OidcProvider::id`]).
    pub provider_id: String,
    /// `sub`.
    pub subject: String,
    /// The accepted audience the token carried.
    pub audience: String,
}

/// Why a web identity token was refused; each maps to the STS error code that
/// AssumeRoleWithWebIdentity answers ([`FederationError::code`]), and `Display` is the
/// message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FederationError {
    /// Not a JWT, a JWT of an algorithm other than RS256/ES256, or a bad signature.
    #[error("{0}")]
    InvalidToken(String),
    /// The issuer is not a trusted provider.
    #[error("No OpenIDConnect provider found in your account for {0}")]
    UnknownIssuer(String),
    /// The token names a key the provider's key set does not hold.
    #[error("Unable to find the key {kid} in the JWKS of {issuer} ({source_})")]
    UnknownKey {
        /// The `kid` of the token's header (or `none`).
        kid: String,
        /// The issuer.
        issuer: String,
        /// Where the key set was read.
        source_: String,
    },
    /// None of the token's audiences is accepted.
    #[error("Incorrect token audience")]
    WrongAudience,
    /// Past `exp`.
    #[error("Token expired: current date/time must be before the expiration date/time {0}")]
    Expired(String),
    /// The key set could not be read.
    #[error("Couldn't retrieve verification key from your identity provider ({0})")]
    Jwks(String),
}

impl FederationError {
    /// STS's error code for this refusal (STS API Reference, AssumeRoleWithWebIdentity
    /// "Errors").
    pub fn code(&self) -> &'static str {
        match self {
            FederationError::Expired(_) => "ExpiredTokenException",
            FederationError::Jwks(_) => "IDPCommunicationError",
            _ => "InvalidIdentityToken",
        }
    }
}

struct Cached {
    keys: Option<JwkSet>,
    fetched: Option<Instant>,
}

struct ProviderState {
    provider: OidcProvider,
    cache: Mutex<Cached>,
}

/// The trusted providers with their cached key sets. Cheap to clone.
#[derive(Clone, Default)]
pub struct Federation {
    providers: Arc<Vec<ProviderState>>,
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.providers.iter().map(|p| &p.provider.issuer))
            .finish()
    }
}

/// The `iss` a compact JWT's payload claims, unverified; `None` when the text is not a
/// three-part JWT with a JSON object payload carrying a string `iss`.
pub fn unverified_issuer(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("iss")?.as_str().map(str::to_string)
}

impl Federation {
    /// Trusts `providers` (their key sets are read on first use).
    pub fn new(providers: Vec<OidcProvider>) -> Federation {
        Federation {
            providers: Arc::new(
                providers
                    .into_iter()
                    .map(|provider| ProviderState {
                        provider,
                        cache: Mutex::new(Cached {
                            keys: None,
                            fetched: None,
                        }),
                    })
                    .collect(),
            ),
        }
    }

    /// The trusted providers.
    pub fn providers(&self) -> impl Iterator<Item = &OidcProvider> {
        self.providers.iter().map(|p| &p.provider)
    }

    /// Verifies `token` (a compact JWT): a trusted issuer, a key of its key set (read
    /// again once if the `kid` is unknown), RS256 or ES256, `exp` (and `nbf`) against now
    /// with 60 s leeway, and one of the provider's audiences.
    pub async fn verify(&self, token: &str) -> Result<WebIdentity, FederationError> {
        let bad = |m: &str| FederationError::InvalidToken(m.to_string());
        if token.len() > MAX_TOKEN_LEN {
            return Err(bad("WebIdentityToken is longer than 20000 characters"));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| bad("The ID token provided is not a valid JSON Web Token"))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(FederationError::InvalidToken(format!(
                "The ID token is signed with {:?}; only RS256 and ES256 are accepted",
                header.alg
            )));
        }
        let iss = unverified_issuer(token)
            .ok_or_else(|| bad("The ID token provided has no issuer (iss)"))?;
        let state = self
            .providers
            .iter()
            .find(|p| p.provider.issuer == iss)
            .ok_or_else(|| FederationError::UnknownIssuer(iss.clone()))?;
        let kid = header.kid.clone();
        let jwk = match self.find_key(state, kid.as_deref(), false).await? {
            Some(k) => k,
            None => self
                .find_key(state, kid.as_deref(), true)
                .await?
                .ok_or_else(|| FederationError::UnknownKey {
                    kid: kid.clone().unwrap_or_else(|| "none".into()),
                    issuer: iss.clone(),
                    source_: state.provider.jwks.describe(),
                })?,
        };
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| {
            FederationError::InvalidToken(format!("the provider's key {kid:?} is unusable: {e}"))
        })?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[iss.as_str()]);
        v.set_audience(&state.provider.audiences);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => {
                    FederationError::Expired(unverified_exp(token).unwrap_or_default())
                }
                K::InvalidAudience => FederationError::WrongAudience,
                K::InvalidSignature => {
                    bad("The signature of the ID token does not verify with the provider's key")
                }
                K::ImmatureSignature => bad("The ID token is not valid yet (nbf)"),
                K::MissingRequiredClaim(c) => {
                    FederationError::InvalidToken(format!("The ID token has no {c} claim"))
                }
                other => {
                    FederationError::InvalidToken(format!("The ID token is invalid: {other:?}"))
                }
            }
        })?;
        let subject = data.claims["sub"]
            .as_str()
            .ok_or_else(|| bad("The ID token's sub is not a string"))?
            .to_string();
        let audience = match &data.claims["aud"] {
            serde_json::Value::String(a) => Some(a.clone()),
            serde_json::Value::Array(list) => list
                .iter()
                .filter_map(|a| a.as_str())
                .find(|a| state.provider.audiences.iter().any(|x| x == a))
                .map(str::to_string),
            _ => None,
        }
        .ok_or(FederationError::WrongAudience)?;
        Ok(WebIdentity {
            provider_id: state.provider.id().to_string(),
            subject,
            audience,
        })
    }

    /// The key named `kid` (or the only key, for a token without `kid`) from the cached
    /// set; with `refetch`, reads the set again first unless that happened less than
    /// [`JWKS_REFETCH_INTERVAL`] ago.
    async fn find_key(
        &self,
        state: &ProviderState,
        kid: Option<&str>,
        refetch: bool,
    ) -> Result<Option<jsonwebtoken::jwk::Jwk>, FederationError> {
        let need_fetch = {
            let c = state.cache.lock().expect("jwks cache lock");
            match (&c.keys, c.fetched) {
                (None, _) => true,
                (Some(_), Some(t)) if refetch => t.elapsed() >= JWKS_REFETCH_INTERVAL,
                _ => false,
            }
        };
        if need_fetch {
            let source = state.provider.jwks.clone();
            let text = tokio::task::spawn_blocking(move || source.fetch())
                .await
                .map_err(|e| FederationError::Jwks(e.to_string()))?
                .map_err(FederationError::Jwks)?;
            let set: JwkSet = serde_json::from_str(&text).map_err(|e| {
                FederationError::Jwks(format!(
                    "{} is not a JSON Web Key Set: {e}",
                    state.provider.jwks.describe()
                ))
            })?;
            let mut c = state.cache.lock().expect("jwks cache lock");
            c.keys = Some(set);
            c.fetched = Some(Instant::now());
        }
        let c = state.cache.lock().expect("jwks cache lock");
        let Some(set) = &c.keys else { return Ok(None) };
        Ok(match kid {
            Some(k) => set.find(k).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        })
    }
}

/// The token's `exp` as RFC 3339, for the expiry message (the token verified up to its
/// expiry, so reading it unverified here only words the error).
fn unverified_exp(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = v.get("exp")?.as_i64()?;
    time::OffsetDateTime::from_unix_timestamp(exp)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_id_and_arn_follow_iam() {
        struct None_;
        impl JwksSource for None_ {
            fn fetch(&self) -> Result<String, String> {
                Err("none".into())
            }
            fn describe(&self) -> String {
                "none".into()
            }
        }
        let p = OidcProvider {
            issuer: "https://token.actions.githubusercontent.com/".into(),
            audiences: vec!["sts.amazonaws.com".into()],
            jwks: Arc::new(None_),
        };
        assert_eq!(p.id(), "token.actions.githubusercontent.com");
        assert_eq!(
            p.arn("111111111111"),
            "arn:aws:iam::111111111111:oidc-provider/token.actions.githubusercontent.com"
        );
    }

    #[test]
    fn unverified_issuer_reads_only_well_formed_tokens() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"iss":"https://i.example"}"#);
        assert_eq!(
            unverified_issuer(&format!("e30.{payload}.sig")).as_deref(),
            Some("https://i.example")
        );
        assert_eq!(unverified_issuer("a.b"), None);
        assert_eq!(unverified_issuer(&format!("e30.{payload}.s.x")), None);
        assert_eq!(unverified_issuer("e30.e30.s"), None);
    }
}
