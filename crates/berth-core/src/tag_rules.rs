//! Tag mutability rules (ECR "Image tag mutability"): which existing tags of a repository
//! may move to another image. A domain rule, so it lives here and every store applies it
//! through [`TagRules::is_immutable`]; the stores only persist the mode and filters.

/// How tags of a repository may move (ECR `imageTagMutability`). Default [`Self::Mutable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TagMutability {
    /// Every tag may be moved to another image.
    #[default]
    Mutable,
    /// No tag may be moved once it exists.
    Immutable,
    /// Tags are immutable except those matching an exclusion filter.
    ImmutableWithExclusion,
    /// Tags are mutable except those matching an exclusion filter.
    MutableWithExclusion,
}

impl TagMutability {
    /// Every value, in the ECR model's order.
    pub const ALL: [TagMutability; 4] = [
        TagMutability::Mutable,
        TagMutability::Immutable,
        TagMutability::ImmutableWithExclusion,
        TagMutability::MutableWithExclusion,
    ];

    /// The ECR enum name (`MUTABLE`, `IMMUTABLE`, …), also the stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            TagMutability::Mutable => "MUTABLE",
            TagMutability::Immutable => "IMMUTABLE",
            TagMutability::ImmutableWithExclusion => "IMMUTABLE_WITH_EXCLUSION",
            TagMutability::MutableWithExclusion => "MUTABLE_WITH_EXCLUSION",
        }
    }

    /// Parses an ECR enum name.
    pub fn parse(s: &str) -> Option<TagMutability> {
        TagMutability::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Whether this mode takes exclusion filters (the `*_WITH_EXCLUSION` ones need at
    /// least one; the others take none).
    pub fn takes_filters(self) -> bool {
        matches!(
            self,
            TagMutability::ImmutableWithExclusion | TagMutability::MutableWithExclusion
        )
    }
}

/// A repository's tag mutability with its exclusion filters (wildcard patterns where
/// `*` matches any run of characters, matched against the whole tag).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TagRules {
    /// The mode.
    pub mode: TagMutability,
    /// Exclusion filters (only for the `*_WITH_EXCLUSION` modes).
    pub exclusion_filters: Vec<String>,
}

impl TagRules {
    /// Whether an existing `tag` may not be moved to another image.
    pub fn is_immutable(&self, tag: &str) -> bool {
        let excluded = || {
            self.exclusion_filters
                .iter()
                .any(|f| wildcard_match(f, tag))
        };
        match self.mode {
            TagMutability::Mutable => false,
            TagMutability::Immutable => true,
            TagMutability::ImmutableWithExclusion => !excluded(),
            TagMutability::MutableWithExclusion => excluded(),
        }
    }
}

/// Whether `text` matches `pattern` in full, `*` matching any run of characters
/// (including none) and every other character itself.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Position of the last `*` seen and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            // Let the last `*` swallow one more character and retry.
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    // ECR "Image tag mutability": `*` matches any run of characters.
    #[test]
    fn wildcards_match_whole_tags() {
        for (p, t) in [
            ("latest", "latest"),
            ("*", ""),
            ("*", "anything"),
            ("dev-*", "dev-1"),
            ("dev-*", "dev-"),
            ("*-rc", "1.0-rc"),
            ("v*.*", "v1.2"),
            ("a*b*c", "aXbYbZc"),
            ("**", "x"),
        ] {
            assert!(wildcard_match(p, t), "{p:?} should match {t:?}");
        }
        for (p, t) in [
            ("latest", "latest2"),
            ("dev-*", "prod-dev-1"),
            ("*-rc", "1.0-rc1"),
            ("v*.*", "v12"),
            ("a*b*c", "aXbYbZ"),
            ("", "x"),
        ] {
            assert!(!wildcard_match(p, t), "{p:?} should not match {t:?}");
        }
    }

    #[test]
    fn exclusion_filters_invert_the_mode() {
        let rules = |mode, f: &[&str]| TagRules {
            mode,
            exclusion_filters: f.iter().map(|s| s.to_string()).collect(),
        };
        let r = rules(TagMutability::ImmutableWithExclusion, &["latest", "dev-*"]);
        assert!(!r.is_immutable("latest"));
        assert!(!r.is_immutable("dev-42"));
        assert!(r.is_immutable("v1.0"));
        let r = rules(TagMutability::MutableWithExclusion, &["release-*"]);
        assert!(r.is_immutable("release-1"));
        assert!(!r.is_immutable("latest"));
        assert!(rules(TagMutability::Immutable, &[]).is_immutable("x"));
        assert!(!rules(TagMutability::Mutable, &[]).is_immutable("x"));
    }
}
