//! Reading request members and checking them against the botocore `events` model's
//! constraints (lengths, patterns, ranges), with AWS's wording. A member of the wrong
//! JSON type is a `SerializationException`, as AWS's JSON protocol answers it.

use crate::error::{EventsError, EventsErrorType};
use serde_json::{Map, Value};

/// The request body as a JSON object. Errors: not JSON, or not an object.
pub fn body(bytes: &[u8]) -> Result<Map<String, Value>, EventsError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(serialization("the request body is not a JSON object")),
        Err(e) => Err(serialization(format!("the request body is not JSON: {e}"))),
    }
}

fn serialization(msg: impl Into<String>) -> EventsError {
    EventsError::new(EventsErrorType::SerializationException, msg)
}

/// An optional string member. Errors: present but not a string.
pub fn opt_str<'a>(m: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, EventsError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(serialization(format!("member {key} must be a string"))),
    }
}

/// A required string member. Errors: absent (`ValidationException`, AWS's wording), or
/// not a string.
pub fn req_str<'a>(m: &'a Map<String, Value>, key: &str) -> Result<&'a str, EventsError> {
    opt_str(m, key)?.ok_or_else(|| missing(key))
}

/// `ValidationException` for a missing required member.
pub fn missing(key: &str) -> EventsError {
    EventsError::constraint(key, "null", "Member must not be null")
}

/// An optional integer member. Errors: present but not an integer.
pub fn opt_int(m: &Map<String, Value>, key: &str) -> Result<Option<i64>, EventsError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| serialization(format!("member {key} must be an integer"))),
    }
}

/// An optional boolean member. Errors: present but not a boolean.
pub fn opt_bool(m: &Map<String, Value>, key: &str) -> Result<Option<bool>, EventsError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(serialization(format!("member {key} must be a boolean"))),
    }
}

/// An optional object member. Errors: present but not an object.
pub fn opt_obj<'a>(
    m: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a Map<String, Value>>, EventsError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(serialization(format!("member {key} must be an object"))),
    }
}

/// An optional list member. Errors: present but not a list.
pub fn opt_list<'a>(
    m: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a Vec<Value>>, EventsError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(_) => Err(serialization(format!("member {key} must be a list"))),
    }
}

/// Checks a string's length in characters against `min..=max`.
pub fn length(member: &str, value: &str, min: usize, max: usize) -> Result<(), EventsError> {
    let n = value.chars().count();
    if n < min {
        return Err(EventsError::constraint(
            member,
            value,
            &format!("Member must have length greater than or equal to {min}"),
        ));
    }
    if n > max {
        return Err(EventsError::constraint(
            member,
            value,
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    Ok(())
}

/// A name of the model's `RuleName`, `TargetId`, `ConnectionName` or
/// `ApiDestinationName` shape: 1 to `max` characters of `[\.\-_A-Za-z0-9]+`.
pub fn name(member: &str, value: &str, max: usize) -> Result<(), EventsError> {
    length(member, value, 1, max)?;
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(EventsError::constraint(
            member,
            value,
            "Member must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+",
        ));
    }
    Ok(())
}

/// An integer in `min..=max`.
pub fn range(member: &str, value: i64, min: i64, max: i64) -> Result<(), EventsError> {
    if value < min {
        return Err(EventsError::constraint(
            member,
            &value.to_string(),
            &format!("Member must have value greater than or equal to {min}"),
        ));
    }
    if value > max {
        return Err(EventsError::constraint(
            member,
            &value.to_string(),
            &format!("Member must have value less than or equal to {max}"),
        ));
    }
    Ok(())
}

/// One of `allowed`.
pub fn one_of(member: &str, value: &str, allowed: &[&str]) -> Result<(), EventsError> {
    if allowed.contains(&value) {
        return Ok(());
    }
    Err(EventsError::constraint(
        member,
        value,
        &format!(
            "Member must satisfy enum value set: [{}]",
            allowed.join(", ")
        ),
    ))
}
