//! What an AWS-protocol adapter (ECR, EventBridge, STS) hands to SigV4 verification from
//! an HTTP request: the host it was sent to and the headers a signature may cover
//! (AWS Signature Version 4, "Create a canonical request": `host` is always signed).

use axum::http::{HeaderMap, Uri};

/// The host a request was sent to: its `Host` header, else the URI's authority (HTTP/2
/// carries the host in `:authority`), else `localhost`.
pub fn request_host(headers: &HeaderMap, uri: &Uri) -> String {
    headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".into())
}

/// The request's headers as `(lower-case name, value)` pairs for a signature check
/// (values that are not visible ASCII are left out: no signature can cover them), with
/// `host` = `host` added when the request has no `Host` header (HTTP/2).
pub fn signed_headers<'a>(headers: &'a HeaderMap, host: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut out: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
        .collect();
    if !out.iter().any(|(k, _)| *k == "host") {
        out.push(("host", host));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_comes_from_the_header_else_the_authority() {
        let uri: Uri = "http://registry.example:5000/".parse().unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(request_host(&h, &uri), "registry.example:5000");
        let host = request_host(&h, &uri);
        assert_eq!(
            signed_headers(&h, &host),
            [("host", "registry.example:5000")]
        );
        h.insert("host", "a.example".parse().unwrap());
        assert_eq!(request_host(&h, &uri), "a.example");
        assert_eq!(signed_headers(&h, "ignored"), [("host", "a.example")]);
        assert_eq!(
            request_host(&HeaderMap::new(), &"/x".parse().unwrap()),
            "localhost"
        );
    }
}
