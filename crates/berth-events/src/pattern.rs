//! EventBridge event patterns ("Event patterns" and "Content filtering in Amazon
//! EventBridge event patterns", EventBridge User Guide), complete for event buses.
//!
//! A pattern is a JSON object that mirrors the event's structure. Each field is either
//! an object (a pattern for the nested object) or an array of *matchers*; the event
//! matches when **every** field matches (AND) and, for a field, **any** matcher matches
//! (OR). `"$or": [p1, p2, …]` at any level matches when any of the sub-patterns does.
//! Where the event holds an array, the field matches when any element does; a nested
//! pattern must match within one element.
//!
//! | matcher | matches a leaf value that is |
//! | --- | --- |
//! | `"s"`, `5`, `true`, `null` | equal (numbers compared as numbers; `""` and `null` are values) |
//! | `{"prefix": "s"}`, `{"prefix": {"equals-ignore-case": "s"}}` | a string starting with s |
//! | `{"suffix": "s"}`, `{"suffix": {"equals-ignore-case": "s"}}` | a string ending with s |
//! | `{"equals-ignore-case": "s"}` | a string equal to s ignoring case |
//! | `{"wildcard": "a*b"}` | a string matching; `*` is any run of characters, `\*` a star |
//! | `{"anything-but": v \| [v…] \| {"prefix"\|"suffix"\|"equals-ignore-case"\|"wildcard": …}}` | present and not matching |
//! | `{"numeric": [">", 0, "<=", 5]}`, `{"numeric": ["=", 3]}` | a number in the range |
//! | `{"exists": true}` / `{"exists": false}` | a leaf present / absent |
//! | `{"cidr": "10.0.0.0/24"}` | an IPv4 or IPv6 address string in the block |
//!
//! Invalid patterns get [`PatternError`], whose text is what EventBridge's
//! `InvalidEventPatternException` says (`Event pattern is not valid. Reason: …`), without
//! the parser position suffix Jackson adds. [`parse`] never panics: the JSON reader caps
//! nesting at 128 levels, and matching recurses no deeper than the pattern.

use serde_json::{Map, Value};
use std::net::IpAddr;

/// An invalid event pattern: EventBridge's `InvalidEventPatternException`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Event pattern is not valid. Reason: {reason}")]
pub struct PatternError {
    /// What is wrong, in EventBridge's words.
    pub reason: String,
}

fn err<T>(reason: impl Into<String>) -> Result<T, PatternError> {
    Err(PatternError {
        reason: reason.into(),
    })
}

/// A parsed, valid event pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    root: Node,
}

#[derive(Debug, Clone, PartialEq)]
struct Node {
    fields: Vec<(String, Field)>,
    ors: Vec<Vec<Node>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Field {
    Nested(Node),
    Leaf(Vec<Matcher>),
}

#[derive(Debug, Clone, PartialEq)]
enum Matcher {
    Exact(Value),
    Prefix(String, bool),
    Suffix(String, bool),
    EqualsIgnoreCase(String),
    Wildcard(Wildcard),
    AnythingBut(AnythingBut),
    Numeric(Vec<(Op, f64)>),
    Exists(bool),
    Cidr(IpAddr, u8),
}

#[derive(Debug, Clone, PartialEq)]
enum AnythingBut {
    Values(Vec<Value>),
    Prefix(String),
    Suffix(String),
    IgnoreCase(Vec<String>),
    Wildcard(Vec<Wildcard>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A wildcard pattern split at its unescaped `*`s.
#[derive(Debug, Clone, PartialEq)]
struct Wildcard(Vec<String>);

/// EventBridge's numeric range limit (event-ruler): ±5.0E9.
const NUMERIC_LIMIT: f64 = 5.0e9;

/// Parses and validates an event pattern. Never panics, whatever the input.
pub fn parse(text: &str) -> Result<Pattern, PatternError> {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return err(format!("{e}")),
    };
    let Value::Object(obj) = value else {
        return err("Filter is not an object");
    };
    Ok(Pattern { root: node(&obj)? })
}

fn node(obj: &Map<String, Value>) -> Result<Node, PatternError> {
    let mut n = Node {
        fields: Vec::new(),
        ors: Vec::new(),
    };
    for (name, v) in obj {
        if name == "$or" {
            let Value::Array(alts) = v else {
                return err("Or relationship value must be an array");
            };
            if alts.len() < 2 {
                return err("There must have at least 2 items in Or relationship array");
            }
            let mut group = Vec::new();
            for alt in alts {
                let Value::Object(o) = alt else {
                    return err("Or relationship array items must be objects");
                };
                group.push(node(o)?);
            }
            n.ors.push(group);
            continue;
        }
        let field = match v {
            Value::Object(o) => {
                if o.is_empty() {
                    return err(format!("Empty objects are not allowed for \"{name}\""));
                }
                Field::Nested(node(o)?)
            }
            Value::Array(items) => {
                if items.is_empty() {
                    return err("Empty arrays are not allowed");
                }
                Field::Leaf(items.iter().map(matcher).collect::<Result<_, _>>()?)
            }
            _ => return err(format!("\"{name}\" must be an object or an array")),
        };
        n.fields.push((name.clone(), field));
    }
    Ok(n)
}

fn matcher(v: &Value) -> Result<Matcher, PatternError> {
    match v {
        Value::String(_) | Value::Bool(_) | Value::Null => Ok(Matcher::Exact(v.clone())),
        Value::Number(n) => match n.as_f64() {
            Some(_) => Ok(Matcher::Exact(v.clone())),
            None => err("Match value must be String, number, true, false, or null"),
        },
        Value::Array(_) => err("Match value must be String, number, true, false, or null"),
        Value::Object(o) => {
            let mut it = o.iter();
            let (Some((key, arg)), None) = (it.next(), it.next()) else {
                return err("Only one key allowed in match expression");
            };
            match key.as_str() {
                "prefix" | "suffix" => {
                    let ci = match arg {
                        Value::String(s) => return Ok(affix(key, s.clone(), false)),
                        Value::Object(o) if o.len() == 1 => o.get("equals-ignore-case"),
                        _ => None,
                    };
                    match ci {
                        Some(Value::String(s)) => Ok(affix(key, s.to_lowercase(), true)),
                        _ => err(format!("{key} match pattern must be a string")),
                    }
                }
                "equals-ignore-case" => match arg {
                    Value::String(s) => Ok(Matcher::EqualsIgnoreCase(s.to_lowercase())),
                    _ => err("equals-ignore-case match pattern must be a string"),
                },
                "wildcard" => match arg {
                    Value::String(s) => Ok(Matcher::Wildcard(wildcard(s)?)),
                    _ => err("wildcard match pattern must be a string"),
                },
                "exists" => match arg {
                    Value::Bool(b) => Ok(Matcher::Exists(*b)),
                    _ => err("exists match pattern must be either true or false."),
                },
                "numeric" => numeric(arg),
                "anything-but" => anything_but(arg),
                "cidr" => match arg {
                    Value::String(s) => cidr(s),
                    _ => err("prefix match pattern must be a string"),
                },
                other => err(format!("Unrecognized match type {other}")),
            }
        }
    }
}

fn affix(key: &str, s: String, ci: bool) -> Matcher {
    if key == "prefix" {
        Matcher::Prefix(s, ci)
    } else {
        Matcher::Suffix(s, ci)
    }
}

fn wildcard(s: &str) -> Result<Wildcard, PatternError> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = s.chars().enumerate();
    let mut last_star = false;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, c @ ('*' | '\\'))) => current.push(c),
                _ => return err(format!("Invalid escape character at pos {i}")),
            },
            '*' if last_star => {
                return err(format!("Consecutive wildcard characters at pos {i}"));
            }
            '*' => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
        last_star = c == '*';
    }
    parts.push(current);
    Ok(Wildcard(parts))
}

impl Wildcard {
    /// Glob match: the first part is a prefix, the last a suffix, the middle ones occur
    /// in order (greedy-left is correct for `*`-only globs).
    fn matches(&self, s: &str) -> bool {
        let parts = &self.0;
        if parts.len() == 1 {
            return s == parts[0];
        }
        let (first, rest) = (&parts[0], &parts[1..]);
        let Some(mut tail) = s.strip_prefix(first.as_str()) else {
            return false;
        };
        let (last, middle) = match rest.split_last() {
            Some(x) => x,
            None => return true,
        };
        for m in middle {
            match tail.find(m.as_str()) {
                Some(i) => tail = &tail[i + m.len()..],
                None => return false,
            }
        }
        tail.len() >= last.len() && tail.ends_with(last.as_str())
    }
}

fn numeric(arg: &Value) -> Result<Matcher, PatternError> {
    let Value::Array(items) = arg else {
        return err("Value of numeric must be an array.");
    };
    let mut conds = Vec::new();
    let mut it = items.iter();
    while let Some(op) = it.next() {
        let op = match op.as_str() {
            Some("=") => Op::Eq,
            Some("<") => Op::Lt,
            Some("<=") => Op::Le,
            Some(">") => Op::Gt,
            Some(">=") => Op::Ge,
            _ => return err(format!("Unrecognized numeric range operator: {op}")),
        };
        let Some(n) = it.next().and_then(Value::as_f64) else {
            return err("Value of numeric range must be a number");
        };
        if !(-NUMERIC_LIMIT..=NUMERIC_LIMIT).contains(&n) {
            return err("Value must be between -5.0E9 and 5.0E9, inclusive");
        }
        conds.push((op, n));
    }
    match conds.as_slice() {
        [] => err("Invalid member in numeric match: ]"),
        [(Op::Eq, _)] | [(_, _)] => Ok(Matcher::Numeric(conds)),
        [(Op::Gt | Op::Ge, lo), (Op::Lt | Op::Le, hi)] => {
            if lo >= hi {
                err("Bottom must be less than top")
            } else {
                Ok(Matcher::Numeric(conds))
            }
        }
        [(Op::Eq, _), ..] | [_, (Op::Eq, _)] => err("Equality cannot be combined with a range"),
        [(Op::Lt | Op::Le, _), _] => err("Bad numeric range: the lower bound must come first"),
        [_, _] => err("Bad numeric range: two lower bounds"),
        _ => err("Too many elements in numeric expression"),
    }
}

fn anything_but(arg: &Value) -> Result<Matcher, PatternError> {
    let scalar = |v: &Value| -> Result<Value, PatternError> {
        match v {
            Value::String(_) => Ok(v.clone()),
            Value::Number(n) if n.as_f64().is_some() => Ok(v.clone()),
            _ => err("Inside anything but list, start|null|boolean is not supported."),
        }
    };
    match arg {
        Value::String(_) | Value::Number(_) => {
            Ok(Matcher::AnythingBut(AnythingBut::Values(vec![scalar(
                arg,
            )?])))
        }
        Value::Array(items) => {
            if items.is_empty() {
                return err("Empty arrays are not allowed");
            }
            let vals = items.iter().map(scalar).collect::<Result<Vec<_>, _>>()?;
            let strings = vals.iter().filter(|v| v.is_string()).count();
            if strings != 0 && strings != vals.len() {
                return err("Inside anything but list, all values must be strings or all numbers");
            }
            Ok(Matcher::AnythingBut(AnythingBut::Values(vals)))
        }
        Value::Object(o) => {
            let mut it = o.iter();
            let (Some((key, v)), None) = (it.next(), it.next()) else {
                return err("Only one key allowed in match expression");
            };
            let strings = |what: &str| -> Result<Vec<String>, PatternError> {
                match v {
                    Value::String(s) => Ok(vec![s.clone()]),
                    Value::Array(a) if !a.is_empty() => a
                        .iter()
                        .map(|x| match x {
                            Value::String(s) => Ok(s.clone()),
                            _ => err(format!(
                                "Inside {what} list, number|start|null|boolean is not supported."
                            )),
                        })
                        .collect(),
                    _ => err(format!(
                        "{what} match pattern must be a string or a non-empty array of strings"
                    )),
                }
            };
            let out = match key.as_str() {
                "prefix" | "suffix" => {
                    let Value::String(s) = v else {
                        return err(format!("{key} match pattern must be a string"));
                    };
                    if key == "prefix" {
                        AnythingBut::Prefix(s.clone())
                    } else {
                        AnythingBut::Suffix(s.clone())
                    }
                }
                "equals-ignore-case" => AnythingBut::IgnoreCase(
                    strings("equals-ignore-case")?
                        .into_iter()
                        .map(|s| s.to_lowercase())
                        .collect(),
                ),
                "wildcard" => AnythingBut::Wildcard(
                    strings("wildcard")?
                        .iter()
                        .map(|s| wildcard(s))
                        .collect::<Result<_, _>>()?,
                ),
                other => return err(format!("Unsupported anything-but pattern: {other}")),
            };
            Ok(Matcher::AnythingBut(out))
        }
        _ => err("Value of anything-but must be an array or single string/number value."),
    }
}

fn cidr(s: &str) -> Result<Matcher, PatternError> {
    let bad = || err(format!("Nonstandard IP address: {s}"));
    let Some((addr, bits)) = s.split_once('/') else {
        return bad();
    };
    let (Ok(addr), Ok(bits)) = (addr.parse::<IpAddr>(), bits.parse::<u8>()) else {
        return bad();
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if bits > max {
        return bad();
    }
    Ok(Matcher::Cidr(addr, bits))
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - bits as u32).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - bits as u32).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The leaf values at `name` in `obj`: arrays expanded (at any depth), objects skipped.
fn leaves<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| leaves(x, out)),
        Value::Object(_) => {}
        _ => out.push(v),
    }
}

/// The objects at a nested field: an object, or the objects of an array (any depth).
fn objects<'a>(v: &'a Value, out: &mut Vec<&'a Map<String, Value>>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| objects(x, out)),
        Value::Object(o) => out.push(o),
        _ => {}
    }
}

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

impl Pattern {
    /// Whether `event` (any JSON value; an event is an object) matches.
    pub fn matches(&self, event: &Value) -> bool {
        match event {
            Value::Object(o) => self.root.matches(o),
            _ => self.root.matches(&EMPTY),
        }
    }

    /// Parses `event` as JSON and matches it (what `TestEventPattern` does). Errors: the
    /// event is not JSON (serde's message).
    pub fn matches_json(&self, event: &str) -> Result<bool, serde_json::Error> {
        Ok(self.matches(&serde_json::from_str(event)?))
    }
}

impl Node {
    fn matches(&self, obj: &Map<String, Value>) -> bool {
        self.fields.iter().all(|(name, f)| match f {
            Field::Nested(child) => {
                let mut objs = Vec::new();
                if let Some(v) = obj.get(name) {
                    objects(v, &mut objs);
                }
                if objs.is_empty() {
                    // Absent: only patterns made of `exists: false` can match.
                    child.matches(&EMPTY)
                } else {
                    objs.iter().any(|o| child.matches(o))
                }
            }
            Field::Leaf(ms) => {
                let mut vals = Vec::new();
                if let Some(v) = obj.get(name) {
                    leaves(v, &mut vals);
                }
                ms.iter().any(|m| m.matches(&vals))
            }
        }) && self
            .ors
            .iter()
            .all(|group| group.iter().any(|alt| alt.matches(obj)))
    }
}

fn num_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

impl Matcher {
    fn matches(&self, vals: &[&Value]) -> bool {
        match self {
            Matcher::Exists(want) => vals.is_empty() != *want,
            _ => vals.iter().any(|v| self.matches_one(v)),
        }
    }

    fn matches_one(&self, v: &Value) -> bool {
        let s = v.as_str();
        match self {
            Matcher::Exact(p) => num_eq(p, v),
            Matcher::Prefix(p, false) => s.is_some_and(|s| s.starts_with(p.as_str())),
            Matcher::Prefix(p, true) => s.is_some_and(|s| s.to_lowercase().starts_with(p.as_str())),
            Matcher::Suffix(p, false) => s.is_some_and(|s| s.ends_with(p.as_str())),
            Matcher::Suffix(p, true) => s.is_some_and(|s| s.to_lowercase().ends_with(p.as_str())),
            Matcher::EqualsIgnoreCase(p) => s.is_some_and(|s| s.to_lowercase() == *p),
            Matcher::Wildcard(w) => s.is_some_and(|s| w.matches(s)),
            Matcher::Numeric(conds) => v.as_f64().is_some_and(|x| {
                conds.iter().all(|(op, n)| match op {
                    Op::Eq => x == *n,
                    Op::Lt => x < *n,
                    Op::Le => x <= *n,
                    Op::Gt => x > *n,
                    Op::Ge => x >= *n,
                })
            }),
            Matcher::Cidr(net, bits) => s
                .and_then(|s| s.parse::<IpAddr>().ok())
                .is_some_and(|ip| in_cidr(ip, *net, *bits)),
            Matcher::Exists(_) => true,
            Matcher::AnythingBut(ab) => match ab {
                AnythingBut::Values(vs) => !vs.iter().any(|p| num_eq(p, v)),
                AnythingBut::Prefix(p) => s.is_some_and(|s| !s.starts_with(p.as_str())),
                AnythingBut::Suffix(p) => s.is_some_and(|s| !s.ends_with(p.as_str())),
                AnythingBut::IgnoreCase(ps) => s.is_some_and(|s| !ps.contains(&s.to_lowercase())),
                AnythingBut::Wildcard(ws) => s.is_some_and(|s| !ws.iter().any(|w| w.matches(s))),
            },
        }
    }
}
