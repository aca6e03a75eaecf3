//! Request routing as a pure function: (method, path) → an [`Endpoint`].
//!
//! An endpoint is an (operation, method) pair of distribution-spec § Endpoints (end-1 …
//! end-13), so the ECR action a request needs ([`Endpoint::action`]) and the handler that
//! answers it (`dispatch` in the crate root) both match on the one enum and cannot
//! disagree (issue 16: `(Blob, PATCH)` used to be authorised as
//! `ecr:GetDownloadUrlForLayer` and then answered 405). A method a path does not take is
//! a parse result, [`RouteError::MethodNotAllowed`], answered 405 before authentication
//! decides anything about actions.
//!
//! Repository names contain any number of `/`, so routes cannot be matched by a fixed
//! pattern per depth; instead the path is split at the *last* API keyword whose remainder
//! has the right shape.

use berth_core::{Digest, NameError, Reference, RepositoryName};
use berth_iam::{Action, EcrAction};
use http::Method;

/// One operation of the OCI Distribution API: a path shape and a method, with its
/// validated path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET`/`HEAD /v2/` (end-1).
    Base,
    /// `GET /v2/_catalog`.
    Catalog,
    /// `GET /v2/<name>/tags/list` (end-8).
    ListTags(RepositoryName),
    /// `GET /v2/<name>/manifests/<reference>` (end-3).
    GetManifest(RepositoryName, Reference),
    /// `HEAD /v2/<name>/manifests/<reference>` (end-3).
    HeadManifest(RepositoryName, Reference),
    /// `PUT /v2/<name>/manifests/<reference>` (end-7).
    PutManifest(RepositoryName, Reference),
    /// `DELETE /v2/<name>/manifests/<reference>` (end-9).
    DeleteManifest(RepositoryName, Reference),
    /// `GET /v2/<name>/blobs/<digest>` (end-2).
    GetBlob(RepositoryName, Digest),
    /// `HEAD /v2/<name>/blobs/<digest>` (end-2).
    HeadBlob(RepositoryName, Digest),
    /// `DELETE /v2/<name>/blobs/<digest>` (end-10).
    DeleteBlob(RepositoryName, Digest),
    /// `POST /v2/<name>/blobs/uploads/` (end-4a, end-4b, end-11).
    StartUpload(RepositoryName),
    /// `GET /v2/<name>/blobs/uploads/<id>` (end-13).
    GetUploadStatus(RepositoryName, String),
    /// `PATCH /v2/<name>/blobs/uploads/<id>` (end-5).
    PatchUpload(RepositoryName, String),
    /// `PUT /v2/<name>/blobs/uploads/<id>` (end-6).
    PutUpload(RepositoryName, String),
    /// `DELETE /v2/<name>/blobs/uploads/<id>`.
    CancelUpload(RepositoryName, String),
    /// `GET /v2/<name>/referrers/<digest>` (end-12).
    Referrers(RepositoryName, Digest),
}

impl Endpoint {
    /// A short, low-cardinality name of the path shape (not the method), for metrics
    /// and logs.
    pub fn label(&self) -> &'static str {
        use Endpoint as E;
        match self {
            E::Base => Resource::Base.label(),
            E::Catalog => Resource::Catalog.label(),
            E::ListTags(_) => Resource::Tags.label(),
            E::GetManifest(..)
            | E::HeadManifest(..)
            | E::PutManifest(..)
            | E::DeleteManifest(..) => Resource::Manifest.label(),
            E::GetBlob(..) | E::HeadBlob(..) | E::DeleteBlob(..) => Resource::Blob.label(),
            E::StartUpload(_) => Resource::UploadStart.label(),
            E::GetUploadStatus(..)
            | E::PatchUpload(..)
            | E::PutUpload(..)
            | E::CancelUpload(..) => Resource::Upload.label(),
            E::Referrers(..) => Resource::Referrers.label(),
        }
    }

    /// The HTTP method of the operation (`GET` for [`Endpoint::Base`], which also takes
    /// `HEAD`).
    pub fn method(&self) -> Method {
        use Endpoint as E;
        match self {
            E::Base
            | E::Catalog
            | E::ListTags(_)
            | E::GetManifest(..)
            | E::GetBlob(..)
            | E::GetUploadStatus(..)
            | E::Referrers(..) => Method::GET,
            E::HeadManifest(..) | E::HeadBlob(..) => Method::HEAD,
            E::PutManifest(..) | E::PutUpload(..) => Method::PUT,
            E::DeleteManifest(..) | E::DeleteBlob(..) | E::CancelUpload(..) => Method::DELETE,
            E::StartUpload(_) => Method::POST,
            E::PatchUpload(..) => Method::PATCH,
        }
    }

    /// The canonical request path of the operation (no query), e.g.
    /// `/v2/team/app/manifests/latest`; [`parse`] of [`method`](Self::method) and this
    /// path gives the endpoint back.
    pub fn path(&self) -> String {
        use Endpoint as E;
        match self {
            E::Base => "/v2/".to_string(),
            E::Catalog => "/v2/_catalog".to_string(),
            E::ListTags(n) => format!("/v2/{n}/tags/list"),
            E::GetManifest(n, r)
            | E::HeadManifest(n, r)
            | E::PutManifest(n, r)
            | E::DeleteManifest(n, r) => format!("/v2/{n}/manifests/{r}"),
            E::GetBlob(n, d) | E::HeadBlob(n, d) | E::DeleteBlob(n, d) => {
                format!("/v2/{n}/blobs/{d}")
            }
            E::StartUpload(n) => format!("/v2/{n}/blobs/uploads/"),
            E::GetUploadStatus(n, id)
            | E::PatchUpload(n, id)
            | E::PutUpload(n, id)
            | E::CancelUpload(n, id) => format!("/v2/{n}/blobs/uploads/{id}"),
            E::Referrers(n, d) => format!("/v2/{n}/referrers/{d}"),
        }
    }

    /// The repository the endpoint addresses, if any.
    pub fn repository(&self) -> Option<&RepositoryName> {
        use Endpoint as E;
        match self {
            E::Base | E::Catalog => None,
            E::ListTags(n)
            | E::GetManifest(n, _)
            | E::HeadManifest(n, _)
            | E::PutManifest(n, _)
            | E::DeleteManifest(n, _)
            | E::GetBlob(n, _)
            | E::HeadBlob(n, _)
            | E::DeleteBlob(n, _)
            | E::StartUpload(n)
            | E::GetUploadStatus(n, _)
            | E::PatchUpload(n, _)
            | E::PutUpload(n, _)
            | E::CancelUpload(n, _)
            | E::Referrers(n, _) => Some(n),
        }
    }

    /// The ECR action that real ECR checks for this operation, on the repository's ARN
    /// (ECR_REFERENCE §4.2, issue 3's table). `None` for `/v2/` itself, which needs
    /// authentication only.
    pub fn action(&self) -> Option<Action> {
        use EcrAction as A;
        use Endpoint as E;
        Some(Action::Ecr(match self {
            E::Base => return None,
            E::Catalog => A::DescribeRepositories,
            E::ListTags(_) => A::ListImages,
            E::GetManifest(..) | E::HeadManifest(..) | E::Referrers(..) => A::BatchGetImage,
            E::PutManifest(..) => A::PutImage,
            E::DeleteManifest(..) | E::DeleteBlob(..) => A::BatchDeleteImage,
            E::GetBlob(..) => A::GetDownloadUrlForLayer,
            E::HeadBlob(..) => A::BatchCheckLayerAvailability,
            E::StartUpload(_) => A::InitiateLayerUpload,
            E::GetUploadStatus(..) | E::PatchUpload(..) | E::CancelUpload(..) => A::UploadLayerPart,
            E::PutUpload(..) => A::CompleteLayerUpload,
        }))
    }

    /// Whether the operation may create the repository (a push into a repository that
    /// does not exist yet also needs `ecr:CreateRepository`).
    pub fn pushes(&self) -> bool {
        matches!(self, Endpoint::PutManifest(..) | Endpoint::StartUpload(_))
    }
}

/// A path shape of the API, before the method is considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `/v2/`.
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// `/v2/<name>/tags/list`.
    Tags,
    /// `/v2/<name>/manifests/<reference>`.
    Manifest,
    /// `/v2/<name>/blobs/<digest>`.
    Blob,
    /// `/v2/<name>/blobs/uploads/`.
    UploadStart,
    /// `/v2/<name>/blobs/uploads/<id>`.
    Upload,
    /// `/v2/<name>/referrers/<digest>`.
    Referrers,
}

impl Resource {
    /// The metrics label of the path shape.
    pub fn label(self) -> &'static str {
        match self {
            Resource::Base => "base",
            Resource::Catalog => "catalog",
            Resource::Tags => "tags",
            Resource::Manifest => "manifest",
            Resource::Blob => "blob",
            Resource::UploadStart => "upload_start",
            Resource::Upload => "upload",
            Resource::Referrers => "referrers",
        }
    }

    /// The methods the path takes, as an `Allow` header value (RFC 9110 § 10.2.1).
    pub fn allow(self) -> &'static str {
        match self {
            Resource::Base => "GET, HEAD",
            Resource::Catalog | Resource::Tags | Resource::Referrers => "GET",
            Resource::Manifest => "GET, HEAD, PUT, DELETE",
            Resource::Blob => "GET, HEAD, DELETE",
            Resource::UploadStart => "POST",
            Resource::Upload => "GET, PATCH, PUT, DELETE",
        }
    }
}

/// Why a request is not an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// No endpoint has this shape (404).
    NotFound,
    /// The path has a known shape but does not take this method (405 with `Allow`).
    MethodNotAllowed(Resource),
    /// A read or delete of a manifest whose reference is not a valid tag: no such
    /// manifest can exist, so it is unknown (404 `MANIFEST_UNKNOWN`, as the spec's
    /// conformance tests expect); a PUT to it stays [`RouteError::Invalid`].
    ManifestUnknown(String),
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

/// The path shape and its raw parameters (name, last segment).
fn shape(path: &str) -> Option<(Resource, &str, &str)> {
    let p = path.strip_prefix("/v2")?;
    if !(p.is_empty() || p.starts_with('/')) {
        return None;
    }
    let p = p.strip_prefix('/').unwrap_or(p);
    if p.is_empty() {
        return Some((Resource::Base, "", ""));
    }
    if p == "_catalog" {
        return Some((Resource::Catalog, "", ""));
    }
    if let Some(n) = p.strip_suffix("/tags/list") {
        return Some((Resource::Tags, n, ""));
    }
    if let Some(n) = p
        .strip_suffix("/blobs/uploads/")
        .or_else(|| p.strip_suffix("/blobs/uploads"))
    {
        return Some((Resource::UploadStart, n, ""));
    }
    for (sep, r) in [
        ("/blobs/uploads/", Resource::Upload),
        ("/manifests/", Resource::Manifest),
        ("/blobs/", Resource::Blob),
        ("/referrers/", Resource::Referrers),
    ] {
        if let Some((n, last)) = split_last(p, sep) {
            return Some((r, n, last));
        }
    }
    None
}

/// Parses a request's method and path (percent-decoding is not needed: no valid name,
/// tag or digest contains an escaped character). The method is checked before the
/// parameters, so a method a path never takes is 405 whatever its parameters.
pub fn parse(method: &Method, path: &str) -> Result<Endpoint, RouteError> {
    use Endpoint as E;
    let (res, n, last) = shape(path).ok_or(RouteError::NotFound)?;
    let m = method.clone();
    // One list per path shape: the same one `Allow` announces.
    let allowed = res.allow().split(", ").any(|a| a == m.as_str());
    if !allowed {
        return Err(RouteError::MethodNotAllowed(res));
    }
    let name = || RepositoryName::parse(n);
    let digest = || last.parse::<Digest>().map_err(NameError::Digest);
    Ok(match res {
        Resource::Base => E::Base,
        Resource::Catalog => E::Catalog,
        Resource::Tags => E::ListTags(name()?),
        Resource::Manifest => {
            let n = name()?;
            let r = match Reference::parse(last) {
                Ok(r) => r,
                Err(NameError::Tag(t)) if m != Method::PUT => {
                    return Err(RouteError::ManifestUnknown(t))
                }
                Err(e) => return Err(e.into()),
            };
            match m {
                Method::GET => E::GetManifest(n, r),
                Method::HEAD => E::HeadManifest(n, r),
                Method::PUT => E::PutManifest(n, r),
                _ => E::DeleteManifest(n, r),
            }
        }
        Resource::Blob => {
            let (n, d) = (name()?, digest()?);
            match m {
                Method::GET => E::GetBlob(n, d),
                Method::HEAD => E::HeadBlob(n, d),
                _ => E::DeleteBlob(n, d),
            }
        }
        Resource::UploadStart => E::StartUpload(name()?),
        Resource::Upload => {
            let (n, id) = (name()?, last.to_string());
            match m {
                Method::GET => E::GetUploadStatus(n, id),
                Method::PATCH => E::PatchUpload(n, id),
                Method::PUT => E::PutUpload(n, id),
                _ => E::CancelUpload(n, id),
            }
        }
        Resource::Referrers => E::Referrers(name()?, digest()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn n(s: &str) -> RepositoryName {
        RepositoryName::parse(s).unwrap()
    }
    fn t(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }
    fn d() -> Digest {
        D.parse().unwrap()
    }

    // distribution-spec § Endpoints: every (method, path) pair, with names of any depth
    // and names containing the API keywords themselves.
    #[test]
    fn parses_every_endpoint() {
        use Endpoint as E;
        use Method as M;
        let deep = vec!["p"; 40].join("/");
        let table: Vec<(Method, String, Endpoint)> = vec![
            (M::GET, "/v2/".into(), E::Base),
            (M::HEAD, "/v2/".into(), E::Base),
            (M::GET, "/v2".into(), E::Base),
            (M::GET, "/v2/_catalog".into(), E::Catalog),
            (
                M::GET,
                "/v2/a/b/c/tags/list".into(),
                E::ListTags(n("a/b/c")),
            ),
            (
                M::GET,
                "/v2/a/tags/list/tags/list".into(),
                E::ListTags(n("a/tags/list")),
            ),
            (
                M::GET,
                "/v2/x/manifests/y/manifests/v1".into(),
                E::GetManifest(n("x/manifests/y"), t("v1")),
            ),
            (
                M::HEAD,
                "/v2/a/b/manifests/latest".into(),
                E::HeadManifest(n("a/b"), t("latest")),
            ),
            (
                M::PUT,
                format!("/v2/{deep}/manifests/latest"),
                E::PutManifest(n(&deep), t("latest")),
            ),
            (
                M::DELETE,
                format!("/v2/a/manifests/{D}"),
                E::DeleteManifest(n("a"), t(D)),
            ),
            (
                M::GET,
                format!("/v2/blobs/blobs/{D}"),
                E::GetBlob(n("blobs"), d()),
            ),
            (
                M::HEAD,
                format!("/v2/a/b/c/d/blobs/{D}"),
                E::HeadBlob(n("a/b/c/d"), d()),
            ),
            (
                M::DELETE,
                format!("/v2/a/blobs/{D}"),
                E::DeleteBlob(n("a"), d()),
            ),
            (
                M::POST,
                "/v2/a/blobs/uploads/".into(),
                E::StartUpload(n("a")),
            ),
            (
                M::POST,
                "/v2/a/blobs/uploads/b/blobs/uploads".into(),
                E::StartUpload(n("a/blobs/uploads/b")),
            ),
            (
                M::GET,
                "/v2/a/blobs/uploads/xyz".into(),
                E::GetUploadStatus(n("a"), "xyz".into()),
            ),
            (
                M::PATCH,
                "/v2/a/b/blobs/uploads/xyz".into(),
                E::PatchUpload(n("a/b"), "xyz".into()),
            ),
            (
                M::PUT,
                "/v2/a/blobs/uploads/xyz".into(),
                E::PutUpload(n("a"), "xyz".into()),
            ),
            (
                M::DELETE,
                "/v2/a/blobs/uploads/xyz".into(),
                E::CancelUpload(n("a"), "xyz".into()),
            ),
            (
                M::GET,
                format!("/v2/a/referrers/b/referrers/{D}"),
                E::Referrers(n("a/referrers/b"), d()),
            ),
        ];
        for (m, path, want) in table {
            assert_eq!(parse(&m, &path), Ok(want.clone()), "{m} {path}");
            // Issue 19: an endpoint that parses round-trips through its method and path.
            assert_eq!(parse(&m, &want.path()), Ok(want.clone()), "{m} {path}");
            assert_eq!(parse(&want.method(), &want.path()), Ok(want), "{m} {path}");
        }
    }

    // Issue 16: a method a path does not take is a parse result (405), never an action.
    #[test]
    fn methods_a_path_does_not_take_are_405() {
        use Method as M;
        for (m, path, res) in [
            (M::PATCH, format!("/v2/a/blobs/{D}"), Resource::Blob),
            (M::PUT, format!("/v2/a/blobs/{D}"), Resource::Blob),
            (M::PATCH, "/v2/a/manifests/v1".into(), Resource::Manifest),
            (M::POST, "/v2/a/tags/list".into(), Resource::Tags),
            (M::HEAD, "/v2/a/tags/list".into(), Resource::Tags),
            (M::DELETE, "/v2/_catalog".into(), Resource::Catalog),
            (M::POST, "/v2/".into(), Resource::Base),
            (M::GET, "/v2/a/blobs/uploads/".into(), Resource::UploadStart),
            (M::POST, "/v2/a/blobs/uploads/x".into(), Resource::Upload),
            (
                M::DELETE,
                format!("/v2/a/referrers/{D}"),
                Resource::Referrers,
            ),
            // The method is checked first: bad parameters do not turn a 405 into a 400.
            (
                M::PATCH,
                "/v2/UPPER/blobs/sha256:xyz".into(),
                Resource::Blob,
            ),
        ] {
            assert_eq!(
                parse(&m, &path),
                Err(RouteError::MethodNotAllowed(res)),
                "{m} {path}"
            );
        }
    }

    #[test]
    fn invalid_parameters_are_reported() {
        let get = Method::GET;
        assert!(matches!(
            parse(&get, "/v2/UPPER/tags/list"),
            Err(RouteError::Invalid(NameError::Name(_)))
        ));
        assert!(matches!(
            parse(&get, "/v2/a/blobs/sha256:xyz"),
            Err(RouteError::Invalid(NameError::Digest(_)))
        ));
        assert!(matches!(
            parse(&Method::PUT, "/v2/a/manifests/-bad"),
            Err(RouteError::Invalid(NameError::Tag(_)))
        ));
        assert_eq!(parse(&get, "/v2/a/unknown"), Err(RouteError::NotFound));
        assert_eq!(parse(&get, "/v3/"), Err(RouteError::NotFound));
        assert_eq!(parse(&get, "/v2x/a/tags/list"), Err(RouteError::NotFound));
    }

    // Issue 17 / the conformance suite: reading or deleting a manifest under a reference
    // that is not a valid tag is "unknown" (no such manifest can exist); PUT stays invalid.
    #[test]
    fn invalid_tag_reads_are_manifest_unknown() {
        for m in [Method::GET, Method::HEAD, Method::DELETE] {
            assert!(matches!(
                parse(&m, "/v2/a/manifests/.INVALID_MANIFEST_NAME"),
                Err(RouteError::ManifestUnknown(_))
            ));
        }
        assert!(matches!(
            parse(&Method::PUT, "/v2/a/manifests/.INVALID_MANIFEST_NAME"),
            Err(RouteError::Invalid(NameError::Tag(_)))
        ));
    }

    #[test]
    fn every_endpoint_has_its_action() {
        use EcrAction as A;
        let a = |m: Method, p: &str| parse(&m, p).unwrap().action();
        assert_eq!(a(Method::GET, "/v2/"), None);
        assert_eq!(
            a(Method::GET, &format!("/v2/a/blobs/{D}")),
            Some(A::GetDownloadUrlForLayer.into())
        );
        assert_eq!(
            a(Method::HEAD, &format!("/v2/a/blobs/{D}")),
            Some(A::BatchCheckLayerAvailability.into())
        );
        assert_eq!(
            a(Method::PUT, "/v2/a/blobs/uploads/x"),
            Some(A::CompleteLayerUpload.into())
        );
        assert_eq!(
            a(Method::PUT, "/v2/a/manifests/v1"),
            Some(A::PutImage.into())
        );
    }
}
