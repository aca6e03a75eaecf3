//! Request routing as a pure function: a path under `/v2/` → an [`Endpoint`].
//!
//! Repository names contain any number of `/`, so routes cannot be matched by a fixed
//! pattern per depth; instead the path is split at the *last* API keyword whose remainder
//! has the right shape (distribution-spec § Endpoints, table of end-1 … end-13).

use berth_core::{Digest, NameError, Reference, RepositoryName};

/// One endpoint of the OCI Distribution API, with its validated path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v2/` (end-1).
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// `/v2/<name>/tags/list` (end-8).
    Tags(RepositoryName),
    /// `/v2/<name>/manifests/<reference>` (end-3, end-7, end-9).
    Manifest(RepositoryName, Reference),
    /// `/v2/<name>/blobs/<digest>` (end-2, end-10).
    Blob(RepositoryName, Digest),
    /// `/v2/<name>/blobs/uploads/` (end-4a, end-4b, end-11).
    UploadStart(RepositoryName),
    /// `/v2/<name>/blobs/uploads/<id>` (end-5, end-6, end-13).
    Upload(RepositoryName, String),
    /// `/v2/<name>/referrers/<digest>` (end-12).
    Referrers(RepositoryName, Digest),
}

impl Endpoint {
    /// A short, low-cardinality name for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Endpoint::Base => "base",
            Endpoint::Catalog => "catalog",
            Endpoint::Tags(_) => "tags",
            Endpoint::Manifest(..) => "manifest",
            Endpoint::Blob(..) => "blob",
            Endpoint::UploadStart(_) => "upload_start",
            Endpoint::Upload(..) => "upload",
            Endpoint::Referrers(..) => "referrers",
        }
    }

    /// The repository the endpoint addresses, if any.
    pub fn repository(&self) -> Option<&RepositoryName> {
        match self {
            Endpoint::Base | Endpoint::Catalog => None,
            Endpoint::Tags(n)
            | Endpoint::Manifest(n, _)
            | Endpoint::Blob(n, _)
            | Endpoint::UploadStart(n)
            | Endpoint::Upload(n, _)
            | Endpoint::Referrers(n, _) => Some(n),
        }
    }
}

/// Why a path is not an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// No endpoint has this shape (404).
    NotFound,
    /// The shape matched but a parameter is invalid.
    Invalid(NameError),
}

impl From<NameError> for RouteError {
    fn from(e: NameError) -> Self {
        RouteError::Invalid(e)
    }
}

/// Splits `s` at the last `sep` whose remainder contains no `/`.
fn split_last<'a>(s: &'a str, sep: &str) -> Option<(&'a str, &'a str)> {
    let i = s.rfind(sep)?;
    let rest = &s[i + sep.len()..];
    (!rest.contains('/')).then(|| (&s[..i], rest))
}

/// Parses the path after `/v2/` (percent-decoding is not needed: no valid name, tag or
/// digest contains an escaped character).
pub fn parse(path: &str) -> Result<Endpoint, RouteError> {
    let p = path.strip_prefix("/v2").ok_or(RouteError::NotFound)?;
    let p = p.strip_prefix('/').unwrap_or(p);
    if p.is_empty() {
        return Ok(Endpoint::Base);
    }
    if p == "_catalog" {
        return Ok(Endpoint::Catalog);
    }
    let name = |n: &str| RepositoryName::parse(n);
    if let Some(n) = p.strip_suffix("/tags/list") {
        return Ok(Endpoint::Tags(name(n)?));
    }
    if let Some(n) = p
        .strip_suffix("/blobs/uploads/")
        .or_else(|| p.strip_suffix("/blobs/uploads"))
    {
        return Ok(Endpoint::UploadStart(name(n)?));
    }
    if let Some((n, id)) = split_last(p, "/blobs/uploads/") {
        return Ok(Endpoint::Upload(name(n)?, id.to_string()));
    }
    if let Some((n, r)) = split_last(p, "/manifests/") {
        return Ok(Endpoint::Manifest(name(n)?, Reference::parse(r)?));
    }
    if let Some((n, d)) = split_last(p, "/blobs/") {
        return Ok(Endpoint::Blob(
            name(n)?,
            d.parse().map_err(NameError::Digest)?,
        ));
    }
    if let Some((n, d)) = split_last(p, "/referrers/") {
        return Ok(Endpoint::Referrers(
            name(n)?,
            d.parse().map_err(NameError::Digest)?,
        ));
    }
    Err(RouteError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    // distribution-spec § Endpoints: every endpoint, with names of any depth.
    #[test]
    fn parses_every_endpoint() {
        let n = |s: &str| RepositoryName::parse(s).unwrap();
        assert_eq!(parse("/v2/").unwrap(), Endpoint::Base);
        assert_eq!(parse("/v2").unwrap(), Endpoint::Base);
        assert_eq!(parse("/v2/_catalog").unwrap(), Endpoint::Catalog);
        assert_eq!(
            parse("/v2/a/b/c/tags/list").unwrap(),
            Endpoint::Tags(n("a/b/c"))
        );
        assert_eq!(
            parse("/v2/a/blobs/uploads/").unwrap(),
            Endpoint::UploadStart(n("a"))
        );
        assert_eq!(
            parse("/v2/a/blobs/uploads/xyz").unwrap(),
            Endpoint::Upload(n("a"), "xyz".into())
        );
        assert!(
            matches!(parse("/v2/x/manifests/y/manifests/v1").unwrap(), Endpoint::Manifest(r, _) if r == n("x/manifests/y"))
        );
        assert!(
            matches!(parse(&format!("/v2/blobs/blobs/{D}")).unwrap(), Endpoint::Blob(r, _) if r == n("blobs"))
        );
        assert!(matches!(
            parse(&format!("/v2/a/referrers/{D}")).unwrap(),
            Endpoint::Referrers(..)
        ));
        let deep = vec!["p"; 40].join("/");
        assert!(matches!(
            parse(&format!("/v2/{deep}/manifests/latest")).unwrap(),
            Endpoint::Manifest(..)
        ));
    }

    #[test]
    fn invalid_parameters_are_reported() {
        assert!(matches!(
            parse("/v2/UPPER/tags/list"),
            Err(RouteError::Invalid(NameError::Name(_)))
        ));
        assert!(matches!(
            parse("/v2/a/blobs/sha256:xyz"),
            Err(RouteError::Invalid(NameError::Digest(_)))
        ));
        assert!(matches!(
            parse("/v2/a/manifests/-bad"),
            Err(RouteError::Invalid(NameError::Tag(_)))
        ));
        assert_eq!(parse("/v2/a/unknown"), Err(RouteError::NotFound));
        assert_eq!(parse("/v3/"), Err(RouteError::NotFound));
    }
}
