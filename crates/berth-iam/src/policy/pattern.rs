//! Compiled string patterns: IAM wildcards (`*`, `?`) and policy variables (`${key}`).
//!
//! One [`Pattern`] type serves every place IAM compares a policy string with a request
//! string: `Action` (wildcards, case-insensitive), `Resource` and the `Arn*` operators
//! (wildcards within each colon-separated ARN segment, case-sensitive, variables), the
//! `StringLike` family (wildcards, variables) and the `StringEquals` family (variables
//! only). Sources: IAM User Guide, "IAM JSON policy elements: Action", "…: Resource",
//! "Condition operators" and "IAM policy elements: Variables and tags".
//!
//! A pattern is split into tokens once, at parse time. Patterns without variables get a
//! fast path (`*`, exact, `prefix*`) so the common cases cost one comparison. Text that a
//! variable substitutes is literal: a `*` inside a user's tag value is not a wildcard.

use std::borrow::Cow;

/// Where variables get their values: the request context, by lowercased key.
pub(crate) trait Vars {
    /// The single value of `key_lc` as text, or `None` when the key is absent or has
    /// several values (multivalued keys cannot be variables, IAM User Guide, "Single-valued
    /// vs. multivalued context keys").
    fn var(&self, key_lc: &str) -> Option<Cow<'_, str>>;
}

/// What the compiler treats as special.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Syntax {
    /// `*` matches any run of characters and `?` exactly one.
    pub wildcards: bool,
    /// `${key}` / `${key, 'default'}` are variables (policy Version `2012-10-17` only), and
    /// `${*}`, `${?}`, `${$}` are the literal characters.
    pub variables: bool,
    /// Literal text compares ASCII-case-insensitively (actions).
    pub ignore_ascii_case: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(Box<str>),
    Var {
        /// Lowercased key: condition keys are case-insensitive.
        key: Box<str>,
        default: Option<Box<str>>,
    },
    Star,
    One,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    /// `*`.
    Any,
    /// No wildcard, no variable.
    Exact(Box<str>),
    /// `literal*`.
    Prefix(Box<str>),
    /// Anything else (including everything with variables).
    General,
}

/// A compiled pattern. Cheap to match; `Clone + Send + Sync`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    toks: Box<[Tok]>,
    shape: Shape,
    has_vars: bool,
    ignore_ascii_case: bool,
}

impl Pattern {
    /// Compiles `src`. Never fails: an unterminated `${` is literal text.
    pub(crate) fn compile(src: &str, syntax: Syntax) -> Pattern {
        let mut toks: Vec<Tok> = Vec::new();
        let mut lit = String::new();
        let flush = |lit: &mut String, toks: &mut Vec<Tok>| {
            if !lit.is_empty() {
                toks.push(Tok::Lit(std::mem::take(lit).into_boxed_str()));
            }
        };
        let mut rest = src;
        while let Some(c) = rest.chars().next() {
            if syntax.variables && rest.starts_with("${") {
                if let Some(end) = rest.find('}') {
                    let inner = &rest[2..end];
                    rest = &rest[end + 1..];
                    match inner {
                        "*" => lit.push('*'),
                        "?" => lit.push('?'),
                        "$" => lit.push('$'),
                        _ => match parse_var(inner) {
                            Some((key, default)) => {
                                flush(&mut lit, &mut toks);
                                toks.push(Tok::Var { key, default });
                            }
                            None => {
                                lit.push_str("${");
                                lit.push_str(inner);
                                lit.push('}');
                            }
                        },
                    }
                    continue;
                }
            }
            rest = &rest[c.len_utf8()..];
            match c {
                '*' if syntax.wildcards => {
                    flush(&mut lit, &mut toks);
                    // `**` is the same as `*`; collapsing keeps backtracking linear.
                    if toks.last() != Some(&Tok::Star) {
                        toks.push(Tok::Star);
                    }
                }
                '?' if syntax.wildcards => {
                    flush(&mut lit, &mut toks);
                    toks.push(Tok::One);
                }
                _ => lit.push(c),
            }
        }
        flush(&mut lit, &mut toks);

        let has_vars = toks.iter().any(|t| matches!(t, Tok::Var { .. }));
        let shape = match toks.as_slice() {
            _ if has_vars => Shape::General,
            [Tok::Star] => Shape::Any,
            [] => Shape::Exact("".into()),
            [Tok::Lit(l)] => Shape::Exact(l.clone()),
            [Tok::Lit(l), Tok::Star] => Shape::Prefix(l.clone()),
            _ => Shape::General,
        };
        Pattern {
            toks: toks.into_boxed_slice(),
            shape,
            has_vars,
            ignore_ascii_case: syntax.ignore_ascii_case,
        }
    }

    /// Matches `text`. `None` when a variable has no value and no default: IAM says such a
    /// match "fails and causes the statement to be invalid" (IAM User Guide, "Policy
    /// variables", principal key values); callers decide what invalid means in their place.
    pub(crate) fn matches(&self, text: &str, vars: &dyn Vars) -> Option<bool> {
        let ci = self.ignore_ascii_case;
        match &self.shape {
            Shape::Any => Some(true),
            Shape::Exact(l) => Some(eq(l, text, ci)),
            Shape::Prefix(l) => Some(
                text.len() >= l.len()
                    && text.is_char_boundary(l.len())
                    && eq(l, &text[..l.len()], ci),
            ),
            Shape::General if !self.has_vars => Some(glob(&self.toks, text, ci)),
            Shape::General => {
                let resolved = self.resolve_tokens(vars)?;
                Some(glob(&resolved, text, ci))
            }
        }
    }

    /// The pattern as literal text with variables substituted; for patterns compiled
    /// without wildcards (the `StringEquals` family). `None` as in [`Pattern::matches`].
    pub(crate) fn resolve<'s>(&'s self, vars: &'s dyn Vars) -> Option<Cow<'s, str>> {
        if let Shape::Exact(l) = &self.shape {
            return Some(Cow::Borrowed(l));
        }
        let mut out = String::new();
        for t in self.toks.iter() {
            match t {
                Tok::Lit(l) => out.push_str(l),
                Tok::Var { key, default } => out.push_str(&var_value(vars, key, default)?),
                Tok::Star => out.push('*'),
                Tok::One => out.push('?'),
            }
        }
        Some(Cow::Owned(out))
    }

    fn resolve_tokens<'s>(&'s self, vars: &'s dyn Vars) -> Option<Vec<RTok<'s>>> {
        self.toks
            .iter()
            .map(|t| {
                Some(match t {
                    Tok::Lit(l) => RTok::Lit(Cow::Borrowed(l)),
                    Tok::Var { key, default } => RTok::Lit(var_value(vars, key, default)?),
                    Tok::Star => RTok::Star,
                    Tok::One => RTok::One,
                })
            })
            .collect()
    }
}

fn var_value<'s>(
    vars: &'s dyn Vars,
    key: &str,
    default: &'s Option<Box<str>>,
) -> Option<Cow<'s, str>> {
    vars.var(key)
        .or_else(|| default.as_deref().map(Cow::Borrowed))
}

/// `key` or `key, 'default'` (IAM User Guide, "Specifying default values").
fn parse_var(inner: &str) -> Option<(Box<str>, Option<Box<str>>)> {
    let (key, default) = match inner.split_once(',') {
        Some((k, d)) => {
            let d = d.trim();
            let d = d
                .strip_prefix('\'')
                .and_then(|d| d.strip_suffix('\''))
                .unwrap_or(d);
            (k.trim(), Some(d.into()))
        }
        None => (inner.trim(), None),
    };
    if key.is_empty() || key.contains(char::is_whitespace) {
        return None;
    }
    Some((key.to_ascii_lowercase().into_boxed_str(), default))
}

fn eq(a: &str, b: &str, ignore_ascii_case: bool) -> bool {
    if ignore_ascii_case {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

/// A token after variable substitution.
enum RTok<'s> {
    Lit(Cow<'s, str>),
    Star,
    One,
}

trait TokView {
    fn view(&self) -> View<'_>;
}

enum View<'a> {
    Lit(&'a str),
    Star,
    One,
}

impl TokView for Tok {
    fn view(&self) -> View<'_> {
        match self {
            Tok::Lit(l) => View::Lit(l),
            Tok::Star => View::Star,
            Tok::One => View::One,
            // `glob` runs on `Tok`s only when the pattern has no variables.
            Tok::Var { .. } => unreachable!("unresolved variable in glob"),
        }
    }
}

impl TokView for RTok<'_> {
    fn view(&self) -> View<'_> {
        match self {
            RTok::Lit(l) => View::Lit(l),
            RTok::Star => View::Star,
            RTok::One => View::One,
        }
    }
}

/// Wildcard match with single-star backtracking: linear in practice, O(n·m) worst case.
/// `?` consumes one character (not byte).
fn glob<T: TokView>(toks: &[T], text: &str, ci: bool) -> bool {
    let bytes = text.as_bytes();
    let (mut t, mut s) = (0usize, 0usize);
    // (token index after the last `*`, text position that `*` currently stops at)
    let mut star: Option<(usize, usize)> = None;
    loop {
        if t < toks.len() {
            match toks[t].view() {
                View::Star => {
                    star = Some((t + 1, s));
                    t += 1;
                    continue;
                }
                View::One if s < bytes.len() => {
                    s += char_len(text, s);
                    t += 1;
                    continue;
                }
                View::Lit(l) if bytes.len() - s >= l.len() => {
                    let cand = &bytes[s..s + l.len()];
                    let hit = if ci {
                        cand.eq_ignore_ascii_case(l.as_bytes())
                    } else {
                        cand == l.as_bytes()
                    };
                    if hit {
                        s += l.len();
                        t += 1;
                        continue;
                    }
                }
                _ => {}
            }
        } else if s == bytes.len() {
            return true;
        }
        // Mismatch: let the last `*` swallow one more character and retry.
        match star {
            Some((after, pos)) if pos < bytes.len() => {
                let next = pos + char_len(text, pos);
                star = Some((after, next));
                t = after;
                s = next;
            }
            _ => return false,
        }
    }
}

fn char_len(text: &str, at: usize) -> usize {
    text[at..].chars().next().map_or(1, char::len_utf8)
}

/// Splits an ARN (or ARN pattern) into its six colon-separated segments
/// `arn:partition:service:region:account:resource`; the resource segment keeps any further
/// colons. Colons inside `${…}` do not split, so `${aws:username}` survives. `None` when
/// there are fewer than six segments.
pub(crate) fn split_arn(s: &str, variables: bool) -> Option<[&str; 6]> {
    let mut out = [""; 6];
    let mut start = 0;
    let mut n = 0;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() && n < 5 {
        if variables && bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'{') {
            if let Some(end) = s[i..].find('}') {
                i += end + 1;
                continue;
            }
        }
        if bytes[i] == b':' {
            out[n] = &s[start..i];
            n += 1;
            start = i + 1;
        }
        i += 1;
    }
    if n < 5 {
        return None;
    }
    out[5] = &s[start..];
    Some(out)
}

/// An ARN pattern: `*`, or six segments each matched on its own, case-sensitively, so a
/// wildcard never crosses the colons between the first five segments (IAM User Guide,
/// "IAM JSON policy elements: Resource": "wildcard characters … within any ARN segment";
/// "Condition operators", `ArnLike`: "each part of the ARN across each colon-delimited
/// component").
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ArnPattern {
    /// `*`: every resource.
    Any,
    /// `arn:partition:service:region:account:resource`, one pattern per segment.
    Segments(Box<[Pattern; 6]>),
}

impl ArnPattern {
    /// Compiles `src`; the error says what is wrong with it.
    pub(crate) fn compile(src: &str, variables: bool) -> Result<ArnPattern, String> {
        if src == "*" {
            return Ok(ArnPattern::Any);
        }
        let parts = split_arn(src, variables)
            .filter(|p| p[0] == "arn")
            .ok_or_else(|| {
                format!(
                    "\"{src}\" must be \"*\" or an ARN of the form \
                     arn:partition:service:region:account:resource"
                )
            })?;
        let syntax = Syntax {
            wildcards: true,
            variables,
            ignore_ascii_case: false,
        };
        Ok(ArnPattern::Segments(Box::new(
            parts.map(|p| Pattern::compile(p, syntax)),
        )))
    }

    /// Matches an ARN; text that is not a six-segment ARN matches only `*`. `None` when a
    /// variable cannot be resolved.
    pub(crate) fn matches(&self, arn: &str, vars: &dyn Vars) -> Option<bool> {
        match self {
            ArnPattern::Any => Some(true),
            ArnPattern::Segments(segs) => {
                let Some(parts) = split_arn(arn, false) else {
                    return Some(false);
                };
                let mut unresolved = false;
                for (p, text) in segs.iter().zip(parts) {
                    match p.matches(text, vars) {
                        Some(true) => {}
                        Some(false) => return Some(false),
                        None => unresolved = true,
                    }
                }
                if unresolved {
                    None
                } else {
                    Some(true)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Map(HashMap<&'static str, &'static str>);
    impl Vars for Map {
        fn var(&self, key_lc: &str) -> Option<Cow<'_, str>> {
            self.0.get(key_lc).map(|v| Cow::Borrowed(*v))
        }
    }
    fn none() -> Map {
        Map(HashMap::new())
    }

    const GLOB: Syntax = Syntax {
        wildcards: true,
        variables: true,
        ignore_ascii_case: false,
    };
    const ACTION: Syntax = Syntax {
        wildcards: true,
        variables: false,
        ignore_ascii_case: true,
    };

    fn m(p: &str, t: &str) -> bool {
        Pattern::compile(p, GLOB).matches(t, &none()).unwrap()
    }

    #[test]
    fn wildcards() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("abc", "abc"));
        assert!(!m("abc", "abcd"));
        assert!(m("ab*", "abcd"));
        assert!(m("ab*", "ab"));
        assert!(!m("ab*", "a"));
        assert!(m("*cd", "abcd"));
        assert!(m("a*c*e", "abcde"));
        assert!(m("a*c*e", "ace"));
        assert!(!m("a*c*e", "acd"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("a?c", "aéc"), "? is one character, not one byte");
        assert!(m("*a*a*a*b", "aaaaaaaaab"));
        assert!(!m("*a*a*a*b", "aaaaaaaaaa"));
        assert!(m("a**b", "ab"));
    }

    #[test]
    fn actions_are_case_insensitive() {
        let p = Pattern::compile("ecr:Get?ownloadUrlForLayer", ACTION);
        assert!(p.matches("ECR:GETDOWNLOADURLFORLAYER", &none()).unwrap());
        let p = Pattern::compile("ecr:batch*", ACTION);
        assert!(p.matches("ecr:BatchGetImage", &none()).unwrap());
        assert!(!p.matches("ecr:PutImage", &none()).unwrap());
    }

    #[test]
    fn variables_and_escapes() {
        let vars = Map(HashMap::from([("aws:username", "alice")]));
        let p = Pattern::compile("home/${aws:UserName}/*", GLOB);
        assert!(p.matches("home/alice/x", &vars).unwrap());
        assert!(!p.matches("home/bob/x", &vars).unwrap());
        assert_eq!(p.matches("home/alice/x", &none()), None);

        let p = Pattern::compile("${aws:userid, 'anonymous'}", GLOB);
        assert!(p.matches("anonymous", &none()).unwrap());

        let p = Pattern::compile("a${*}b", GLOB);
        assert!(p.matches("a*b", &none()).unwrap());
        assert!(!p.matches("axb", &none()).unwrap());

        let p = Pattern::compile(
            "${aws:username}",
            Syntax {
                variables: false,
                ..GLOB
            },
        );
        assert!(p.matches("${aws:username}", &vars).unwrap());
    }

    #[test]
    fn substituted_text_is_literal() {
        let vars = Map(HashMap::from([("aws:principaltag/team", "a*")]));
        let p = Pattern::compile("${aws:PrincipalTag/team}", GLOB);
        assert!(p.matches("a*", &vars).unwrap());
        assert!(!p.matches("abc", &vars).unwrap());
    }

    #[test]
    fn arn_segments() {
        let p = ArnPattern::compile("arn:aws:ecr:*:111111111111:repository/*", true).unwrap();
        assert!(p
            .matches("arn:aws:ecr:us-east-1:111111111111:repository/a/b", &none())
            .unwrap());
        assert!(!p
            .matches("arn:aws:ecr:us-east-1:222222222222:repository/a", &none())
            .unwrap());
        // A `*` in the region segment does not reach across the account segment.
        let p = ArnPattern::compile("arn:aws:ecr:*:repository/x", true);
        assert!(p.is_err());
        let p = ArnPattern::compile("arn:aws:ecr:us-*:1111:repo", true).unwrap();
        assert!(!p.matches("arn:aws:ecr:us-x:y:1111:repo", &none()).unwrap());
        assert!(ArnPattern::compile("ecr:foo", true).is_err());
        let vars = Map(HashMap::from([("aws:username", "al:ice")]));
        let p = ArnPattern::compile("arn:aws:iam::1:user/${aws:username}", true).unwrap();
        assert!(p.matches("arn:aws:iam::1:user/al:ice", &vars).unwrap());
    }
}
