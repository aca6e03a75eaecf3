//! Opaque `nextToken`s (ECR_REFERENCE §1.7): base64url of the listing kind and the last
//! key returned, so that a token given to another kind of listing, or made up, is refused
//! with `InvalidParameterException` rather than misread. The last page never carries a
//! token (the AWS CLI paginates until there is none).

use crate::error::EcrError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Default page size when `maxResults` is absent (ECR's documented 100).
pub const DEFAULT_PAGE: u32 = 100;

/// A token continuing listing `kind` after `keys`.
pub fn encode(kind: &str, keys: &[&str]) -> String {
    let mut s = String::from("berth1\n");
    s.push_str(kind);
    for k in keys {
        s.push('\n');
        s.push_str(k);
    }
    URL_SAFE_NO_PAD.encode(s)
}

/// The keys of a token issued by [`encode`] for `kind` with `n` keys.
pub fn decode(token: &str, kind: &str, n: usize) -> Result<Vec<String>, EcrError> {
    let bad = || {
        EcrError::invalid_parameter(
            "nextToken",
            "the token was not issued by this operation; pass the nextToken of the previous \
             response unchanged",
        )
    };
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let mut parts = text.split('\n');
    if parts.next() != Some("berth1") || parts.next() != Some(kind) {
        return Err(bad());
    }
    let keys: Vec<String> = parts.map(str::to_owned).collect();
    if keys.len() != n {
        return Err(bad());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_are_bound_to_their_listing() {
        let t = encode("images", &["sha256:ab", "v1"]);
        assert_eq!(decode(&t, "images", 2).unwrap(), vec!["sha256:ab", "v1"]);
        assert!(decode(&t, "repositories", 2).is_err());
        assert!(decode("not a token", "images", 2).is_err());
        assert!(decode(&encode("images", &["x"]), "images", 2).is_err());
    }
}
