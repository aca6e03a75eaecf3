//! OCI listing query strings (distribution-spec § Listing tags, § Listing referrers, and
//! `/v2/_catalog`): any raw query decodes without panicking; `n` is accepted exactly
//! when it is a decimal `u32`, and then means that number; a refused `n` is a 400; an
//! accepted page round-trips through the `Link: <…>; rel="next"` header Berth builds
//! for the next page (which is always a valid header value); `artifactType` is the
//! decoded value or no filter.
#![no_main]

use berth_oci_api::query::{artifact_type, next_link, pagination, params};
use http::{HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;

const PATHS: [&str; 3] = ["/v2/_catalog", "/v2/team/app/tags/list", "/v2/a/b/c/tags/list"];

fuzz_target!(|input: (u8, &str)| {
    let (which, raw) = input;
    let p = params(Some(raw));
    match pagination(&p) {
        Ok(page) => {
            // `n` accepted ⇔ absent, or a decimal number within u32 (and then that number).
            assert_eq!(page.n, p.get("n").map(|v| v.parse::<u32>().unwrap()));
            assert!(page.last.as_deref() != Some(""), "an empty last is no last");
            assert_eq!(page.last.as_ref(), p.get("last").filter(|l| !l.is_empty()));
            // The next page's link names the same page request.
            let n = page.n.unwrap_or(u32::from(which));
            if let Some(last) = &page.last {
                let path = PATHS[which as usize % PATHS.len()];
                let link = next_link(path, n, last);
                assert!(HeaderValue::from_str(&link).is_ok(), "{link:?}");
                let inner = link
                    .strip_prefix('<')
                    .and_then(|l| l.strip_suffix(">; rel=\"next\""))
                    .unwrap();
                let (lpath, q) = inner.split_once('?').unwrap();
                assert_eq!(lpath, path);
                let again = pagination(&params(Some(q))).unwrap();
                assert_eq!((again.n, again.last.as_ref()), (Some(n), Some(last)), "{link:?}");
            }
        }
        Err(e) => {
            let v = p.get("n").expect("only n is refused");
            assert!(v.parse::<u32>().is_err(), "n={v:?} was refused");
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
        }
    }
    match artifact_type(&p) {
        Some(a) => assert_eq!(Some(a), p.get("artifactType").map(String::as_str)),
        None => assert!(p.get("artifactType").is_none_or(|a| a.is_empty())),
    }
});
