//! Query strings of the OCI listing endpoints (distribution-spec § Listing tags, §
//! Listing referrers; `/v2/_catalog` pages the same way): the `n` and `last` pagination
//! parameters, the referrers `artifactType` filter, and the `Link: <…>; rel="next"`
//! header that names the next page. Pure functions, fuzzed by `fuzz/fuzz_targets/oci_query.rs`.

use crate::error::{ErrorCode, OciError};
use axum::http::StatusCode;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::collections::HashMap;

/// A request's query parameters by name (`application/x-www-form-urlencoded`, as axum's
/// `Query` decodes them). A query that does not decode (e.g. bad percent-encoding of
/// non-UTF-8 bytes) is treated as empty, as before.
pub type Params = HashMap<String, String>;

/// What [`next_link`] leaves unencoded in `last`: RFC 3986 unreserved characters and `/`
/// (repository names have slashes; tags are `[A-Za-z0-9_.-]`, so stored names are
/// never changed). Everything else — `&`, `#`, `+`, `%`, `>`, spaces, non-ASCII — is
/// percent-encoded so the link parses back to the same `last`.
const LAST_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// The parameters of a raw query string (the part after `?`, without it).
pub fn params(query: Option<&str>) -> Params {
    query
        .and_then(|q| serde_urlencoded::from_str::<Params>(q).ok())
        .unwrap_or_default()
}

/// A listing's page request: at most `n` items (`None`: all), those after `last`
/// (exclusive, in the listing's lexical order; `None`: from the start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pagination {
    /// `n`: the page size, a non-negative integer within `u32`.
    pub n: Option<u32>,
    /// `last`: the last item of the previous page; an empty value is no value.
    pub last: Option<String>,
}

/// The `n` and `last` parameters (spec § Listing tags). Errors: `n` is present and not
/// a non-negative integer that fits in 32 bits → 400 with code `UNSUPPORTED` (the spec's
/// error codes have no pagination code; the message says what to fix).
pub fn pagination(params: &Params) -> Result<Pagination, OciError> {
    let n = match params.get("n") {
        None => None,
        Some(v) => Some(v.parse::<u32>().map_err(|_| {
            OciError::new(
                ErrorCode::Unsupported,
                format!("n={v:?} is not a non-negative integer"),
            )
            .with_status(StatusCode::BAD_REQUEST)
        })?),
    };
    let last = params.get("last").filter(|l| !l.is_empty()).cloned();
    Ok(Pagination { n, last })
}

/// The referrers `artifactType` filter (spec § Listing referrers); an empty value is no
/// filter.
pub fn artifact_type(params: &Params) -> Option<&str> {
    params
        .get("artifactType")
        .map(String::as_str)
        .filter(|s| !s.is_empty())
}

/// The `Link` header value naming the page after `last` of a listing at `path`:
/// `<path?n=N&last=LAST>; rel="next"` (spec § Listing tags), with `last`
/// percent-encoded where needed, so [`params`] and [`pagination`] of the link's query
/// give back `n` and `last`. Always a valid header value (visible ASCII) when `path` is.
pub fn next_link(path: &str, n: u32, last: &str) -> String {
    format!(
        "<{path}?n={n}&last={}>; rel=\"next\"",
        utf8_percent_encode(last, LAST_ENCODE)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_and_last_parse_and_bad_n_is_a_400() {
        let p = pagination(&params(Some("n=2&last=team%2Fapp"))).unwrap();
        assert_eq!(p.n, Some(2));
        assert_eq!(p.last.as_deref(), Some("team/app"));
        assert_eq!(pagination(&params(Some("last="))).unwrap().last, None);
        for bad in ["n=-1", "n=x", "n=4294967296", "n="] {
            let e = pagination(&params(Some(bad))).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn next_link_round_trips_any_last() {
        for last in ["v1.0", "team/app", "a&n=9", "x#y", "100%", "é z+"] {
            let link = next_link("/v2/_catalog", 7, last);
            assert!(axum::http::HeaderValue::from_str(&link).is_ok(), "{link}");
            let q = link.split_once('?').unwrap().1.split_once('>').unwrap().0;
            let p = pagination(&params(Some(q))).unwrap();
            assert_eq!((p.n, p.last.as_deref()), (Some(7), Some(last)), "{link}");
        }
        assert_eq!(
            next_link("/v2/a/tags/list", 2, "v1.0"),
            "</v2/a/tags/list?n=2&last=v1.0>; rel=\"next\""
        );
    }
}
