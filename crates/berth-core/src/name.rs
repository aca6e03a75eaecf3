//! Repository names, tags and references (distribution-spec `spec.md` § Pulling manifests).
//!
//! The grammar is written out by hand rather than with a regex engine: it is the
//! registry's own semantics, it is checked on every request, and a byte loop is
//! both faster and gives better error messages.

use crate::digest::{Digest, DigestError};
use std::fmt;

/// Maximum repository name length Berth accepts, in characters (ECR's limit; the spec
/// recommends that clients keep host + name under 255).
pub const MAX_NAME_LEN: usize = 256;

/// Why a string is not a valid name, tag or reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The repository name does not match the spec's regex or is too long.
    #[error("invalid repository name {0:?}: must match [a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)* and be at most 256 characters")]
    Name(String),
    /// The tag does not match `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
    #[error("invalid tag {0:?}: must match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}")]
    Tag(String),
    /// A reference that looked like a digest but was not a valid one.
    #[error(transparent)]
    Digest(#[from] DigestError),
}

/// A validated repository name such as `team/app` (spec § Pulling manifests: `<name>`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName(String);

impl RepositoryName {
    /// Validates `s` against the distribution-spec name grammar.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() || s.len() > MAX_NAME_LEN || !s.split('/').all(valid_component) {
            return Err(NameError::Name(s.to_string()));
        }
        Ok(RepositoryName(s.to_string()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-".
        let start = i;
        let sep = b[i];
        while i < b.len() && !alnum(b[i]) {
            if b[i] != sep {
                return false;
            }
            i += 1;
        }
        let n = i - start;
        let ok = match sep {
            b'.' => n == 1,
            b'_' => n <= 2,
            b'-' => true,
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A validated tag (spec § Pulling manifests: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// Validates `s` against the tag grammar.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let b = s.as_bytes();
        let first = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
        let rest = |x: u8| x.is_ascii_alphanumeric() || x == b'_' || x == b'.' || x == b'-';
        if b.is_empty() || b.len() > 128 || !first(b[0]) || !b[1..].iter().all(|&x| rest(x)) {
            return Err(NameError::Tag(s.to_string()));
        }
        Ok(Tag(s.to_string()))
    }

    /// The tag as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A manifest reference: a tag or a digest (spec § Pulling manifests: `<reference>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    /// A tag such as `v1`.
    Tag(Tag),
    /// A digest such as `sha256:…`.
    Digest(Digest),
}

impl Reference {
    /// Parses a reference: anything containing `:` must be a digest, otherwise a tag.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.contains(':') {
            Ok(Reference::Digest(s.parse()?))
        } else {
            Ok(Reference::Tag(Tag::parse(s)?))
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // distribution-spec § Pulling manifests: the <name> regex.
    #[test]
    fn repository_names_follow_the_spec_regex() {
        for ok in [
            "a",
            "team/app",
            "a.b/c_d/e__f/g-h/i---j",
            "0/1/2/3/4/5/6/7/8/9",
        ] {
            RepositoryName::parse(ok).unwrap();
        }
        for bad in [
            "",
            "A",
            "team//app",
            "/app",
            "app/",
            "a..b",
            "a___b",
            "-a",
            "a-",
            "a_.b",
            "a:b",
            "a b",
        ] {
            assert!(RepositoryName::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(RepositoryName::parse(&"a".repeat(256)).is_ok());
        assert!(RepositoryName::parse(&"a".repeat(257)).is_err());
    }

    // distribution-spec § Pulling manifests: the <reference> tag regex.
    #[test]
    fn tags_follow_the_spec_regex() {
        for ok in ["latest", "v1.0.0-rc_1", "_x", "A"] {
            Tag::parse(ok).unwrap();
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", &"a".repeat(129)] {
            assert!(Tag::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Tag::parse(&"a".repeat(128)).is_ok());
    }

    #[test]
    fn references_are_tags_or_digests() {
        assert!(matches!(Reference::parse("v1").unwrap(), Reference::Tag(_)));
        assert!(matches!(
            Reference::parse(
                "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            )
            .unwrap(),
            Reference::Digest(_)
        ));
        assert!(matches!(
            Reference::parse("sha256:nothex"),
            Err(NameError::Digest(_))
        ));
    }
}
