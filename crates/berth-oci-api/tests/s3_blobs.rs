//! The OCI blob endpoints over the S3 blob backend (issue 14): the whole app of
//! `berth serve` in process, its blobs in a real SeaweedFS bucket
//! (`berth_test_support::seaweedfs`, one server for this file). Skips loudly without
//! `weed` outside CI.
//!
//! Checks distribution-spec v1.1 § Pushing a blob in chunks with the PATCHes of one
//! upload answered by two registries (two "nodes" sharing the bucket and the metadata
//! database), § Pulling blobs with and without `Range` (RFC 9110 § 14), and the
//! presigned-download redirect (`307` to the object, as ECR's and distribution's S3
//! storage answer), followed with a real HTTP client.

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use berth_registry::Registry;
use berth_store::{BlobStore, S3Options, S3Store};
use berth_test_support::{seaweedfs, sha256, Env};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Duration;

fn req(method: &str, uri: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Request<Body> {
    let mut r = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(Body::from(body)).unwrap()
}

async fn bytes(resp: Response<Body>) -> Vec<u8> {
    resp.into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec()
}

fn header<'a>(resp: &'a Response<Body>, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

/// A second node: another registry and app over the same metadata and another
/// `S3Store` client on the same bucket prefix.
fn second_node(env: &Env, store: Arc<dyn BlobStore>) -> axum::Router {
    let registry = Registry::new(store, env.meta.clone(), Default::default());
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .build_recorder()
        .handle();
    berth::serve::app(registry, env.iam.clone(), metrics)
}

// § Pushing a blob in chunks, across two nodes; § Pulling blobs, whole and by Range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_push_across_nodes_and_ranged_pull_from_s3() {
    use tower::ServiceExt;
    let Some(server) = seaweedfs::shared() else {
        return;
    };
    let prefix = seaweedfs::unique_prefix("oci");
    let env = Env::builder()
        .allow_anonymous(true)
        .store(Arc::new(server.store(&prefix)))
        .build()
        .await;
    let node2 = second_node(&env, Arc::new(server.store(&prefix)));
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let d = sha256(&data);

    let resp = env
        .send(req("POST", "/v2/team/app/blobs/uploads/", &[], vec![]))
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let location = header(&resp, "location").to_string();
    let resp = node2
        .clone()
        .oneshot(req(
            "PATCH",
            &location,
            &[
                ("content-range", "0-99999"),
                ("content-type", "application/octet-stream"),
            ],
            data[..100_000].to_vec(),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&resp, "range"), "0-99999");
    // The first node sees the chunk node 2 stored (spec § Getting the upload status).
    let resp = env.send(req("GET", &location, &[], vec![])).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&resp, "range"), "0-99999");
    // An out-of-order chunk is refused with 416 (§ Pushing a blob in chunks).
    let resp = env
        .send(req(
            "PATCH",
            &location,
            &[("content-range", "5-9")],
            b"xxxxx".to_vec(),
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let resp = env
        .send(req(
            "PATCH",
            &location,
            &[("content-range", "100000-299999")],
            data[100_000..].to_vec(),
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let sep = if location.contains('?') { '&' } else { '?' };
    let resp = node2
        .clone()
        .oneshot(req(
            "PUT",
            &format!("{location}{sep}digest={d}"),
            &[],
            vec![],
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "docker-content-digest"), d);

    let blob = format!("/v2/team/app/blobs/{d}");
    let resp = env.send(req("GET", &blob, &[], vec![])).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-length"), "300000");
    assert_eq!(sha256(&bytes(resp).await), d);
    let resp = node2
        .clone()
        .oneshot(req(
            "GET",
            &blob,
            &[("range", "bytes=99990-100009")],
            vec![],
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&resp, "content-range"), "bytes 99990-100009/300000");
    assert_eq!(bytes(resp).await, &data[99_990..100_010]);
    let resp = env
        .send(req("GET", &blob, &[("range", "bytes=300000-")], vec![]))
        .await;
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let resp = env.send(req("HEAD", &blob, &[], vec![])).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-length"), "300000");
}

// ECR's GetDownloadUrlForLayer / distribution's S3 `redirect`: with presigned downloads
// on, a blob GET answers 307 to a presigned URL that a plain HTTP client (reqwest, no
// credentials) follows to the blob's exact bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_download_redirect_serves_the_blob() {
    let Some(server) = seaweedfs::shared() else {
        return;
    };
    let prefix = seaweedfs::unique_prefix("presign");
    let store = S3Store::from_url(
        &server.url(&prefix),
        S3Options {
            presign_downloads: Some(Duration::from_secs(300)),
            ..server.options()
        },
    )
    .unwrap();
    let env = Env::builder()
        .allow_anonymous(true)
        .store(Arc::new(store))
        .build()
        .await;
    let data = b"presigned layer bytes".to_vec();
    let d = sha256(&data);
    let resp = env
        .send(req(
            "POST",
            &format!("/v2/team/app/blobs/uploads/?digest={d}"),
            &[],
            data.clone(),
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = env
        .send(req("GET", &format!("/v2/team/app/blobs/{d}"), &[], vec![]))
        .await;
    assert_eq!(resp.status(), StatusCode::TEMPORARY_REDIRECT);
    let url = header(&resp, "location").to_string();
    assert!(url.starts_with(&server.endpoint), "{url}");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let got = reqwest::get(&url).await.unwrap();
    assert_eq!(got.status(), reqwest::StatusCode::OK);
    assert_eq!(got.bytes().await.unwrap().to_vec(), data);
    // The signature covers the key: another key with the same query is refused.
    let other = url.replace(&d.replace("sha256:", ""), &"0".repeat(64));
    assert!(reqwest::get(&other)
        .await
        .unwrap()
        .status()
        .is_client_error());
}
