//! The two byte-range headers of the data plane, parsed from their text alone so they
//! can be tested and fuzzed without a request (issue 19).
//!
//! - `Range` on blob GET (OCI distribution-spec § Pulling blobs, RFC 9110 § 14.1.2): one
//!   range `bytes=a-b`, `bytes=a-` or `bytes=-n` against a blob of known length.
//! - `Content-Range` on upload PATCH (OCI distribution-spec § Pushing a blob in chunks):
//!   `<start>-<end>`, also tolerating RFC 9110's `bytes ` prefix and a `/total` suffix.

/// A `Range` that is well formed but selects no byte of the blob (RFC 9110 § 15.5.17:
/// answered 416 with `Content-Range: bytes */<len>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsatisfiable;

/// Parses the value of a `Range` header against a blob of `len` bytes.
///
/// Returns `Ok(Some((first, last)))`, inclusive byte positions with `first <= last < len`;
/// `Ok(None)` when the header is not one usable range (not `bytes=`, several ranges,
/// non-numbers, `last < first`): RFC 9110 § 14.2 lets the server ignore it and serve the
/// whole blob; `Err(Unsatisfiable)` when it is well formed but selects nothing.
pub fn byte_range(value: &str, len: u64) -> Result<Option<(u64, u64)>, Unsatisfiable> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // multiple ranges: serve the whole blob, as RFC 9110 allows
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        // A suffix range: the last `n` bytes.
        let Ok(n) = b.parse::<u64>() else {
            return Ok(None);
        };
        if n == 0 || len == 0 {
            return Err(Unsatisfiable);
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let Ok(s) = a.parse::<u64>() else {
            return Ok(None);
        };
        let e = if b.is_empty() {
            u64::MAX
        } else {
            match b.parse::<u64>() {
                Ok(e) if e >= s => e,
                _ => return Ok(None),
            }
        };
        if s >= len {
            return Err(Unsatisfiable);
        }
        (s, e.min(len - 1))
    };
    Ok(Some((start, end)))
}

/// Parses the value of an upload `Content-Range` header and returns the first byte
/// position of the chunk. `None` when it is not `<start>-<end>` with `start <= end`
/// (the caller answers 416 `BLOB_UPLOAD_INVALID`).
pub fn content_range_start(value: &str) -> Option<u64> {
    let s = value.trim();
    let s = s.strip_prefix("bytes ").unwrap_or(s);
    let s = s.split('/').next().unwrap_or(s);
    let (a, b) = s.split_once('-')?;
    let start: u64 = a.trim().parse().ok()?;
    let end: u64 = b.trim().parse().ok()?;
    (end >= start).then_some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 9110 § 14.1.2 examples, against a 10,000-byte representation.
    #[test]
    fn rfc9110_range_examples() {
        assert_eq!(byte_range("bytes=0-499", 10_000), Ok(Some((0, 499))));
        assert_eq!(byte_range("bytes=500-999", 10_000), Ok(Some((500, 999))));
        assert_eq!(byte_range("bytes=-500", 10_000), Ok(Some((9_500, 9_999))));
        assert_eq!(byte_range("bytes=9500-", 10_000), Ok(Some((9_500, 9_999))));
        assert_eq!(byte_range("bytes=0-0,-1", 10_000), Ok(None));
        assert_eq!(byte_range("bytes=10000-", 10_000), Err(Unsatisfiable));
        assert_eq!(byte_range("bytes=-0", 10_000), Err(Unsatisfiable));
        assert_eq!(byte_range("bytes=5-4", 10_000), Ok(None));
        assert_eq!(byte_range("items=0-1", 10_000), Ok(None));
    }

    // distribution-spec § Pushing a blob in chunks: `Content-Range: <range>`.
    #[test]
    fn upload_content_range() {
        assert_eq!(content_range_start("0-1023"), Some(0));
        assert_eq!(content_range_start("bytes 1024-2047/4096"), Some(1024));
        assert_eq!(content_range_start("5-4"), None);
        assert_eq!(content_range_start("-4"), None);
        assert_eq!(content_range_start("x"), None);
    }
}
