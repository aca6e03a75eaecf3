//! Version ordering per ecosystem, as OSV's `ECOSYSTEM` and `SEMVER` ranges need it.
//!
//! - dpkg (Debian, Ubuntu): the `debversion` crate (epoch, upstream, revision; `~` sorts
//!   before everything, even the end of the string; deb-version(7)).
//! - PyPI: `pep440_rs` (PEP 440: epochs, pre-, post- and dev-releases, local versions).
//! - npm, crates.io, Go and OSV `SEMVER` ranges: `semver` (SemVer 2.0.0 precedence;
//!   pre-releases before their release). Go module versions lose their `v` first;
//!   versions with fewer than three numbers (`1.0`, which npm advisories do write) are
//!   padded with zeros.
//! - Alpine apk: our own [`ApkVersion`]. No well-kept crate implements apk-tools'
//!   ordering (the crates found compare pacman or parse APKBUILDs), so it is written
//!   here from apk-tools' `version.c` rules: numbers separated by `.`, an optional
//!   letter, suffixes (`_alpha` < `_beta` < `_pre` < `_rc` < release < `_cvs` < `_svn`
//!   < `_git` < `_hg` < `_p`) with optional numbers, an optional `~hash`, and `-r<N>`.
//! - Maven: our own [`MavenVersion`], Maven's `ComparableVersion` (maven-artifact,
//!   the ordering Maven and OSV's `Maven` ecosystem use). The one crate found
//!   (`mvn_version`) is a single 2021 release with no maintenance since, so the rules are
//!   written here from `ComparableVersion`'s documentation and source: the version is
//!   lower-cased and split into items at `.`, at `-` (which opens a sub-list) and at
//!   every change between digits and letters (which also opens a sub-list); numbers
//!   compare numerically; qualifiers order `alpha` < `beta` < `milestone` < `rc` =
//!   `cr` < `snapshot` < release (`""`, `ga`, `final`, `release`) < `sp` < any other
//!   qualifier (those alphabetically); `a1`, `b1`, `m1` are `alpha-1`, `beta-1`,
//!   `milestone-1`; trailing zeros and release qualifiers of each list are dropped
//!   (`1.0` = `1`, `1.0-ga` = `1`); a number sorts above a qualifier and above a
//!   sub-list, a sub-list above a qualifier. (Maven 3.9's "combination" items, e.g.
//!   `x1` after a dot, are not modelled: no OSV Maven range we have uses one.)
//! - RPM (Red Hat, Rocky Linux, AlmaLinux): our own [`RpmVersion`], `[epoch:]version
//!   [-release]` compared epoch first (numerically, absent = 0), then version, then
//!   release, each by rpm's `rpmvercmp` (`lib/rpmvercmp.c`): alphanumeric segments, digits
//!   numerically and above letters, `~` before everything (even the end), `^` after the
//!   end but before anything else. The `rpm` crate implements it too, but as part of a
//!   package reader and builder with its compression codecs; the rule is forty lines.
//!
//! OSV's `introduced: "0"` means "from the first version" in every ecosystem; it is
//! [`Bound::Zero`] here rather than a parse of `0`.

use std::cmp::Ordering;
use std::str::FromStr;

/// How an ecosystem orders versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// deb-version(7).
    Dpkg,
    /// apk-tools.
    Apk,
    /// PEP 440.
    Pep440,
    /// SemVer 2.0.0 (npm, crates.io, Go after its `v`).
    Semver,
    /// Maven's `ComparableVersion`.
    Maven,
    /// rpm's `rpmvercmp` over epoch, version, release.
    Rpm,
}

/// A version parsed under one [`Scheme`]; two versions compare only under the same one.
#[derive(Clone, Debug)]
pub enum Version {
    /// A dpkg version.
    Dpkg(debversion::Version),
    /// An apk version.
    Apk(ApkVersion),
    /// A PEP 440 version.
    Pep440(pep440_rs::Version),
    /// A semantic version.
    Semver(semver::Version),
    /// A Maven version.
    Maven(MavenVersion),
    /// An RPM version.
    Rpm(RpmVersion),
}

impl Version {
    /// Parses `text` under `scheme`; `None` when it is not a version there.
    pub fn parse(scheme: Scheme, text: &str) -> Option<Version> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        match scheme {
            Scheme::Dpkg => debversion::Version::from_str(text).ok().map(Version::Dpkg),
            Scheme::Apk => ApkVersion::parse(text).map(Version::Apk),
            Scheme::Pep440 => pep440_rs::Version::from_str(text).ok().map(Version::Pep440),
            Scheme::Semver => parse_semver_lenient(text).map(Version::Semver),
            Scheme::Maven => MavenVersion::parse(text).map(Version::Maven),
            Scheme::Rpm => RpmVersion::parse(text).map(Version::Rpm),
        }
    }

    /// The order of two versions of one scheme; `None` across schemes.
    pub fn compare(&self, other: &Version) -> Option<Ordering> {
        match (self, other) {
            (Version::Dpkg(a), Version::Dpkg(b)) => Some(a.cmp(b)),
            (Version::Apk(a), Version::Apk(b)) => Some(a.cmp(b)),
            (Version::Pep440(a), Version::Pep440(b)) => Some(a.cmp(b)),
            (Version::Semver(a), Version::Semver(b)) => Some(a.cmp(b)),
            (Version::Maven(a), Version::Maven(b)) => Some(a.cmp(b)),
            (Version::Rpm(a), Version::Rpm(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

/// Compares two version strings under `scheme`; `None` when either does not parse.
pub fn compare(scheme: Scheme, a: &str, b: &str) -> Option<Ordering> {
    Version::parse(scheme, a)?.compare(&Version::parse(scheme, b)?)
}

fn parse_semver_lenient(text: &str) -> Option<semver::Version> {
    let text = text.strip_prefix('v').unwrap_or(text);
    if let Ok(v) = semver::Version::parse(text) {
        return Some(v);
    }
    // `1.0` or `1` (with an optional pre-release or build suffix): pad the numbers.
    let split = text.find(['-', '+']).unwrap_or(text.len());
    let (core, rest) = text.split_at(split);
    let dots = core.matches('.').count();
    if dots >= 2 || core.is_empty() {
        return None;
    }
    let padded = format!("{core}{}{rest}", ".0".repeat(2 - dots));
    semver::Version::parse(&padded).ok()
}

/// A lower or upper end of an OSV range event.
#[derive(Clone, Debug)]
pub enum Bound {
    /// `introduced: "0"`: before every version.
    Zero,
    /// A parsed version.
    At(Version),
}

impl Bound {
    /// Parses an event's version; `"0"` is [`Bound::Zero`].
    pub fn parse(scheme: Scheme, text: &str) -> Option<Bound> {
        if text == "0" {
            return Some(Bound::Zero);
        }
        Version::parse(scheme, text).map(Bound::At)
    }

    /// The order of `version` relative to this bound (`Greater` when it is above it).
    pub fn order_of(&self, version: &Version) -> Option<Ordering> {
        match self {
            Bound::Zero => Some(Ordering::Greater),
            Bound::At(b) => version.compare(b),
        }
    }

    fn cmp_bound(&self, other: &Bound) -> Ordering {
        match (self, other) {
            (Bound::Zero, Bound::Zero) => Ordering::Equal,
            (Bound::Zero, _) => Ordering::Less,
            (_, Bound::Zero) => Ordering::Greater,
            (Bound::At(a), Bound::At(b)) => a.compare(b).unwrap_or(Ordering::Equal),
        }
    }
}

/// Sorts bounds (with their payloads) ascending, as OSV's evaluation requires
/// ("sort the events by version"). Stable, so equal versions keep the record's order.
pub fn sort_bounds<T>(events: &mut [(Bound, T)]) {
    events.sort_by(|a, b| a.0.cmp_bound(&b.0));
}

/// An Alpine package version (apk-tools' ordering; see the module doc).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApkVersion {
    numbers: Vec<u64>,
    letter: Option<u8>,
    suffixes: Vec<(u8, u64)>,
    revision: u64,
}

/// Rank of "no suffix" among apk's suffixes: pre-release suffixes rank below, patch-level
/// suffixes above.
const APK_RELEASE: u8 = 4;

fn apk_suffix_rank(name: &str) -> Option<u8> {
    Some(match name {
        "alpha" => 0,
        "beta" => 1,
        "pre" => 2,
        "rc" => 3,
        "cvs" => 5,
        "svn" => 6,
        "git" => 7,
        "hg" => 8,
        "p" => 9,
        _ => return None,
    })
}

fn take_number(s: &str) -> Option<(u64, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    // More than 19 digits would overflow; such a "version" is not one apk writes.
    Some((s[..end].parse().ok()?, &s[end..]))
}

impl ApkVersion {
    /// Parses `1.2.3a_rc1_p2~abc-r4`; `None` for anything apk-tools would call invalid.
    pub fn parse(text: &str) -> Option<ApkVersion> {
        let (mut numbers, mut rest) = (Vec::new(), text);
        let (first, after) = take_number(rest)?;
        numbers.push(first);
        rest = after;
        while let Some(after_dot) = rest.strip_prefix('.') {
            let (n, after) = take_number(after_dot)?;
            numbers.push(n);
            rest = after;
        }
        let mut letter = None;
        if let Some(c) = rest.bytes().next().filter(u8::is_ascii_lowercase) {
            letter = Some(c);
            rest = &rest[1..];
        }
        let mut suffixes = Vec::new();
        while let Some(after) = rest.strip_prefix('_') {
            let end = after
                .find(|c: char| !c.is_ascii_lowercase())
                .unwrap_or(after.len());
            let rank = apk_suffix_rank(&after[..end])?;
            rest = &after[end..];
            let n = match take_number(rest) {
                Some((n, after)) => {
                    rest = after;
                    n
                }
                None => 0,
            };
            suffixes.push((rank, n));
        }
        if let Some(after) = rest.strip_prefix('~') {
            let end = after
                .find(|c: char| !c.is_ascii_hexdigit())
                .unwrap_or(after.len());
            if end == 0 {
                return None;
            }
            rest = &after[end..];
        }
        let mut revision = 0;
        if let Some(after) = rest.strip_prefix("-r") {
            let (n, after) = take_number(after)?;
            revision = n;
            rest = after;
        }
        rest.is_empty().then_some(ApkVersion {
            numbers,
            letter,
            suffixes,
            revision,
        })
    }
}

impl Ord for ApkVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        // More numbers is later (`1.2` < `1.2.0`), as in apk-tools.
        self.numbers
            .cmp(&other.numbers)
            .then_with(|| self.letter.cmp(&other.letter))
            .then_with(|| {
                let len = self.suffixes.len().max(other.suffixes.len());
                let pad = (APK_RELEASE, 0);
                (0..len)
                    .map(|i| {
                        let a = self.suffixes.get(i).unwrap_or(&pad);
                        let b = other.suffixes.get(i).unwrap_or(&pad);
                        a.cmp(b)
                    })
                    .find(|o| o.is_ne())
                    .unwrap_or(Ordering::Equal)
            })
            .then_with(|| self.revision.cmp(&other.revision))
    }
}

impl PartialOrd for ApkVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A Maven version, ordered by Maven's `ComparableVersion` rules (see the module doc).
#[derive(Clone, Debug)]
pub struct MavenVersion {
    items: Vec<MavenItem>,
}

#[derive(Clone, Debug)]
enum MavenItem {
    /// A number, its decimal digits without leading zeros (`""` is 0): any length.
    Int(String),
    /// A qualifier, aliases resolved (`ga` → `""`, `cr` → `rc`, `a1` → `alpha`).
    Str(String),
    /// A sub-list (opened by `-` or a digit/letter change).
    List(Vec<MavenItem>),
}

/// Maven's known qualifiers in order; `""` is the release.
const MAVEN_QUALIFIERS: [&str; 7] = ["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"];

/// A qualifier's rank: its index among the known ones, else after all of them and
/// ordered by its text (Maven compares `"7-" + qualifier` as a string).
fn maven_qualifier_rank(q: &str) -> (usize, &str) {
    match MAVEN_QUALIFIERS.iter().position(|k| *k == q) {
        Some(i) => (i, ""),
        None => (MAVEN_QUALIFIERS.len(), q),
    }
}

const MAVEN_RELEASE: usize = 5;

impl MavenItem {
    fn int(digits: &str) -> MavenItem {
        MavenItem::Int(digits.trim_start_matches('0').to_owned())
    }

    fn string(value: &str, followed_by_digit: bool) -> MavenItem {
        let value = match value {
            "a" if followed_by_digit => "alpha",
            "b" if followed_by_digit => "beta",
            "m" if followed_by_digit => "milestone",
            "ga" | "final" | "release" => "",
            "cr" => "rc",
            v => v,
        };
        MavenItem::Str(value.to_owned())
    }

    fn is_null(&self) -> bool {
        match self {
            MavenItem::Int(d) => d.is_empty(),
            MavenItem::Str(s) => s.is_empty(),
            MavenItem::List(l) => l.is_empty(),
        }
    }

    /// `ComparableVersion`'s `Item.compareTo`; `None` stands for a missing item.
    fn cmp_to(&self, other: Option<&MavenItem>) -> Ordering {
        use MavenItem::*;
        match (self, other) {
            (Int(d), None) => (!d.is_empty()).cmp(&false),
            (Int(a), Some(Int(b))) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
            (Int(_), Some(_)) => Ordering::Greater,
            (Str(s), None) => maven_qualifier_rank(s).cmp(&(MAVEN_RELEASE, "")),
            (Str(_), Some(Int(_))) | (Str(_), Some(List(_))) => Ordering::Less,
            (Str(a), Some(Str(b))) => maven_qualifier_rank(a).cmp(&maven_qualifier_rank(b)),
            (List(l), None) => l.first().map_or(Ordering::Equal, |f| f.cmp_to(None)),
            (List(_), Some(Int(_))) => Ordering::Less,
            (List(_), Some(Str(_))) => Ordering::Greater,
            (List(a), Some(List(b))) => cmp_maven_lists(a, b),
        }
    }
}

fn cmp_maven_lists(a: &[MavenItem], b: &[MavenItem]) -> Ordering {
    for i in 0..a.len().max(b.len()) {
        let order = match (a.get(i), b.get(i)) {
            (None, None) => Ordering::Equal,
            (None, Some(r)) => r.cmp_to(None).reverse(),
            (Some(l), r) => l.cmp_to(r),
        };
        if order.is_ne() {
            return order;
        }
    }
    Ordering::Equal
}

/// Drops a list's trailing null items (zeros, release qualifiers, empty lists), stopping
/// at the first other item that is not a list (`ListItem.normalize`).
fn normalize_maven_list(list: &mut Vec<MavenItem>) {
    let mut i = list.len();
    while i > 0 {
        i -= 1;
        if list[i].is_null() {
            list.remove(i);
        } else if !matches!(list[i], MavenItem::List(_)) {
            break;
        }
    }
}

/// The longest Maven version parsed. Every `-` and digit/letter change nests a list, and
/// comparing (and dropping) nested lists recurses, so a hostile version of thousands of
/// `-1` would exhaust the stack; real versions are a few dozen bytes.
pub const MAVEN_MAX_VERSION_BYTES: usize = 256;

impl MavenVersion {
    /// Parses any text of at most [`MAVEN_MAX_VERSION_BYTES`] (every such string is a
    /// Maven version); `None` for a longer one.
    pub fn parse(text: &str) -> Option<MavenVersion> {
        if text.len() > MAVEN_MAX_VERSION_BYTES {
            return None;
        }
        let version = text.to_lowercase();
        // The lists opened so far, outermost first; each new one is the last item of
        // the one before it, and items are only ever added to the innermost.
        let mut stack: Vec<Vec<MavenItem>> = vec![Vec::new()];
        let mut is_digit = false;
        let mut start = 0;
        let item = |digit: bool, s: &str| {
            if digit {
                MavenItem::int(s)
            } else {
                MavenItem::string(s, false)
            }
        };
        for (i, c) in version.char_indices() {
            let top = stack.len() - 1;
            if c == '.' || c == '-' {
                let it = if i == start {
                    MavenItem::Int(String::new())
                } else {
                    item(is_digit, &version[start..i])
                };
                stack[top].push(it);
                start = i + 1;
                if c == '-' {
                    stack.push(Vec::new());
                }
            } else if c.is_ascii_digit() {
                if !is_digit && i > start {
                    stack[top].push(MavenItem::string(&version[start..i], true));
                    start = i;
                    stack.push(Vec::new());
                }
                is_digit = true;
            } else {
                if is_digit && i > start {
                    stack[top].push(MavenItem::int(&version[start..i]));
                    start = i;
                    stack.push(Vec::new());
                }
                is_digit = false;
            }
        }
        if version.len() > start {
            let top = stack.len() - 1;
            stack[top].push(item(is_digit, &version[start..]));
        }
        // Normalise innermost first, then hang each list on its parent (as its last item).
        let mut child: Option<Vec<MavenItem>> = None;
        while let Some(mut list) = stack.pop() {
            if let Some(c) = child.take() {
                list.push(MavenItem::List(c));
            }
            normalize_maven_list(&mut list);
            child = Some(list);
        }
        Some(MavenVersion {
            items: child.unwrap_or_default(),
        })
    }
}

impl Ord for MavenVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_maven_lists(&self.items, &other.items)
    }
}

impl PartialOrd for MavenVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for MavenVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for MavenVersion {}

/// An RPM version: `[epoch:]version[-release]` (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpmVersion {
    epoch: u64,
    version: String,
    release: Option<String>,
}

impl RpmVersion {
    /// Parses `1:3.0.7-24.el9`; `None` for an empty version or an epoch that is not a number.
    pub fn parse(text: &str) -> Option<RpmVersion> {
        let (epoch, rest) = match text.split_once(':') {
            Some((e, rest)) => (e.parse().ok()?, rest),
            None => (0, text),
        };
        let (version, release) = match rest.rsplit_once('-') {
            Some((v, r)) => (v, Some(r.to_owned())),
            None => (rest, None),
        };
        (!version.is_empty()).then(|| RpmVersion {
            epoch,
            version: version.to_owned(),
            release,
        })
    }
}

impl Ord for RpmVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| rpmvercmp(&self.version, &other.version))
            .then_with(|| match (&self.release, &other.release) {
                (Some(a), Some(b)) => rpmvercmp(a, b),
                // A version without a release (an advisory's bound) compares by version only.
                _ => Ordering::Equal,
            })
    }
}

impl PartialOrd for RpmVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// rpm's `rpmvercmp` (`lib/rpmvercmp.c`), segment by segment.
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (mut one, mut two) = (a.as_bytes(), b.as_bytes());
    let separator = |c: &u8| !c.is_ascii_alphanumeric() && *c != b'~' && *c != b'^';
    loop {
        while one.first().is_some_and(separator) {
            one = &one[1..];
        }
        while two.first().is_some_and(separator) {
            two = &two[1..];
        }
        // `~` sorts before everything, even the end.
        match (one.first() == Some(&b'~'), two.first() == Some(&b'~')) {
            (true, true) => {
                one = &one[1..];
                two = &two[1..];
                continue;
            }
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        // `^` sorts after the end but before anything else.
        if one.first() == Some(&b'^') || two.first() == Some(&b'^') {
            match (one.first(), two.first()) {
                (None, _) => return Ordering::Less,
                (_, None) => return Ordering::Greater,
                (Some(b'^'), Some(b'^')) => {
                    one = &one[1..];
                    two = &two[1..];
                    continue;
                }
                (Some(b'^'), _) => return Ordering::Greater,
                _ => return Ordering::Less,
            }
        }
        if one.is_empty() || two.is_empty() {
            break;
        }
        let numeric = one[0].is_ascii_digit();
        let class = |c: &u8| {
            if numeric {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        };
        let len1 = one.iter().take_while(|c| class(c)).count();
        let len2 = two.iter().take_while(|c| class(c)).count();
        let (seg1, seg2) = (&one[..len1], &two[..len2]);
        if seg2.is_empty() {
            // Different kinds of segment: a number is newer than letters.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let order = if numeric {
            let strip = |s: &[u8]| -> usize { s.iter().take_while(|c| **c == b'0').count() };
            let (n1, n2) = (&seg1[strip(seg1)..], &seg2[strip(seg2)..]);
            n1.len().cmp(&n2.len()).then_with(|| n1.cmp(n2))
        } else {
            seg1.cmp(seg2)
        };
        if order.is_ne() {
            return order;
        }
        one = &one[len1..];
        two = &two[len2..];
    }
    match (one.is_empty(), two.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    fn check(scheme: Scheme, cases: &[(&str, Ordering, &str)]) {
        for (a, expected, b) in cases {
            assert_eq!(
                compare(scheme, a, b),
                Some(*expected),
                "{scheme:?}: {a} vs {b}"
            );
            assert_eq!(
                compare(scheme, b, a),
                Some(expected.reverse()),
                "{scheme:?}: {b} vs {a}"
            );
        }
    }

    /// deb-version(7): the epoch dominates, `~` sorts before anything (even the end),
    /// the revision breaks ties, digits compare numerically.
    #[test]
    fn dpkg_epoch_tilde_revision() {
        check(
            Scheme::Dpkg,
            &[
                ("1:1.0-1", Greater, "2.0-1"),
                ("1.0~rc1-1", Less, "1.0-1"),
                ("1.0~~-1", Less, "1.0~-1"),
                ("1.0-1", Less, "1.0-2"),
                ("1.0-1~deb12u1", Less, "1.0-1"),
                ("2.36-9+deb12u3", Greater, "2.36-9+deb12u1"),
                ("1.10-1", Greater, "1.9-1"),
                ("0:1.0-1", Equal, "1.0-1"),
            ],
        );
    }

    /// apk-tools: pre-release suffixes before the release, patch suffixes after, letters
    /// after plain numbers, `-r` last, more components later.
    #[test]
    fn apk_suffixes_letters_revisions() {
        check(
            Scheme::Apk,
            &[
                ("1.2.3_rc1", Less, "1.2.3"),
                ("1.2.3_alpha", Less, "1.2.3_beta2"),
                ("1.2.3_p1", Greater, "1.2.3"),
                ("1.2.3a", Greater, "1.2.3"),
                ("1.2.3-r1", Greater, "1.2.3-r0"),
                ("1.2.10", Greater, "1.2.9"),
                ("1.2", Less, "1.2.0"),
                ("3.1.4-r5", Less, "3.1.4_p1-r0"),
                ("1.0_git20240101", Greater, "1.0"),
            ],
        );
        for bad in ["", "abc", "1..2", "1.2_foo", "1.2-r", "1.2 3"] {
            assert!(ApkVersion::parse(bad).is_none(), "{bad:?} parsed");
        }
    }

    /// PEP 440: dev < pre < release < post; epochs; `1.0` == `1.0.0`.
    #[test]
    fn pep440_pre_post_dev_epoch() {
        check(
            Scheme::Pep440,
            &[
                ("1.26.5", Less, "1.26.17"),
                ("2.0.0a1", Less, "2.0.0"),
                ("2.0.0.dev1", Less, "2.0.0a1"),
                ("2.0.0.post1", Greater, "2.0.0"),
                ("1!0.1", Greater, "2.0"),
                ("1.0", Equal, "1.0.0"),
                ("2.0.0rc1", Greater, "2.0.0b9"),
            ],
        );
    }

    /// SemVer 2.0.0 §11: pre-releases precede their release; Go's `v` and npm's short
    /// versions are accepted.
    #[test]
    fn semver_prereleases_go_and_short_versions() {
        check(
            Scheme::Semver,
            &[
                ("1.0.0-alpha", Less, "1.0.0"),
                ("1.0.0-alpha.1", Less, "1.0.0-beta"),
                ("3.0.0-beta.1", Less, "3.0.0-beta.9"),
                ("v1.6.0", Equal, "1.6.0"),
                ("1.0", Equal, "1.0.0"),
                ("0.0.0-20210101000000-abcdef123456", Less, "0.1.0"),
                ("4.17.15", Less, "4.17.21"),
            ],
        );
        assert!(Version::parse(Scheme::Semver, "1.x").is_none());
    }

    /// rpm's `rpmvercmp` and EVR order (rpm's own `tests/rpmvercmp.at` cases): digits
    /// numerically and newer than letters, separators only separate, `~` before all,
    /// `^` after the end, epoch first, a release compared only when both have one.
    #[test]
    fn rpm_rpmvercmp_and_epochs() {
        check(
            Scheme::Rpm,
            &[
                ("1.0", Equal, "1.0"),
                ("1.0", Less, "2.0"),
                ("2.0.1", Greater, "2.0"),
                ("5.5p1", Less, "5.5p2"),
                ("5.5p10", Greater, "5.5p1"),
                ("10xyz", Less, "10.1xyz"),
                ("xyz10", Less, "xyz10.1"),
                ("1.0aa", Less, "1.0aa.1"),
                ("10", Greater, "9"),
                ("1.010", Equal, "1.10"),
                ("2a", Less, "2.0"),
                ("1.0a", Greater, "1.0"),
                ("6.0.rc1", Greater, "6.0"),
                ("1.0~rc1", Less, "1.0"),
                ("1.0~rc1", Less, "1.0~rc2"),
                ("1.0~rc1~git123", Less, "1.0~rc1"),
                ("1.0^", Greater, "1.0"),
                ("1.0^git1", Less, "1.01"),
                ("1.0^git1~pre", Less, "1.0^git1"),
                ("1:1.0-1", Greater, "2.0-1"),
                ("0:1.0-1", Equal, "1.0-1"),
                ("3.0.7-24.el9", Less, "3.0.7-25.el9_3"),
                ("1:3.0.7-27.el9", Greater, "1:3.0.7-24.el9"),
                ("3.0.7", Equal, "3.0.7-24.el9"),
            ],
        );
        assert!(RpmVersion::parse("x:1.0").is_none());
        assert!(RpmVersion::parse("").is_none());
    }

    /// Maven's `ComparableVersion`: trailing zeros and release qualifiers are dropped,
    /// numbers compare as numbers (any length), qualifiers in Maven's order (unknown
    /// ones after `sp`, alphabetically), `a1`/`b1`/`m1` abbreviations, `cr` = `rc`,
    /// case-insensitive, a number above a qualifier after `-`.
    #[test]
    fn maven_comparable_version() {
        check(
            Scheme::Maven,
            &[
                ("1", Equal, "1.0"),
                ("1", Equal, "1.0.0"),
                ("1.0.0.RELEASE", Equal, "1"),
                ("1-ga", Equal, "1"),
                ("1-final", Equal, "1"),
                ("1cr1", Equal, "1-rc1"),
                ("1a1", Equal, "1-alpha-1"),
                ("1M3", Equal, "1-milestone-3"),
                ("1.0-alpha", Equal, "1-alpha"),
                ("1.2", Less, "1.2.17"),
                ("1.2.17", Less, "2.0"),
                ("1.9", Less, "1.10"),
                ("1.9", Less, "1.99999999999999999999999"),
                ("1-alpha-1", Less, "1-beta-1"),
                ("1-beta-1", Less, "1-milestone-1"),
                ("1-milestone-1", Less, "1-rc-1"),
                ("1-rc-1", Less, "1-snapshot"),
                ("1-SNAPSHOT", Less, "1"),
                ("1", Less, "1-sp"),
                ("1-sp", Less, "1-abc"),
                ("1-abc", Less, "1-def"),
                ("1-def", Less, "1-1"),
                ("1-1", Less, "1-2"),
                ("2.0.0-M1", Less, "2.0.0"),
                ("2.14.1", Less, "2.15.0"),
                ("2.0", Less, "2.0.a"),
                ("2-1", Less, "2.0.1"),
            ],
        );
        // Regression: a version nesting thousands of lists (a hostile `pom.properties`)
        // is refused rather than compared recursively.
        let deep = "1-".repeat(20_000);
        assert!(Version::parse(Scheme::Maven, &deep).is_none());
        assert_eq!(compare(Scheme::Maven, &deep, &deep), None);
    }
}
