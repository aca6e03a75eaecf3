//! In-process harness for the ECR adapter, on the shared fixture of `berth-test-support`:
//! a registry and an identity service over a temp directory, the whole app of
//! `berth serve` (which routes `POST /` to this adapter) driven with `oneshot`, requests
//! signed with SigV4 exactly as botocore signs them (`berth_test_support::ecr_request`).
#![allow(dead_code)]

use axum::body::Body;
use axum::http::Request;
use berth_iam::Iam;
use berth_registry::Registry;
pub use berth_test_support::{image_manifest, sha256, Key, ACCOUNT, HOST};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

/// The shared fixture (`berth-test-support`): a registry and an identity service over a
/// temp directory, the whole app of `berth serve`, and an administrator's key.
pub struct Env {
    pub registry: Registry,
    pub iam: Iam,
    pub admin: Key,
    env: berth_test_support::Env,
}

/// An answer: status, `__type` (errors), body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn error_type(&self) -> &str {
        self.body["__type"].as_str().unwrap_or("")
    }

    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or("")
    }

    /// Panics unless the call succeeded.
    pub fn ok(self) -> Value {
        assert_eq!(self.status, 200, "expected success, got {self:?}");
        self.body
    }

    /// Panics unless the call failed with `kind`; returns the message.
    pub fn err(self, kind: &str) -> String {
        assert_eq!(self.error_type(), kind, "expected {kind}, got {self:?}");
        assert_eq!(self.status, 400, "{self:?}");
        self.message().to_string()
    }
}

impl Env {
    pub async fn new() -> Env {
        let env = berth_test_support::Env::new().await;
        Env {
            registry: env.registry.clone(),
            iam: env.iam.clone(),
            admin: env.admin.clone(),
            env,
        }
    }

    /// Calls `op` as the admin.
    pub async fn call(&self, op: &str, body: Value) -> Answer {
        self.call_as(&self.admin, op, body).await
    }

    /// Calls `op` signed with `key`.
    pub async fn call_as(&self, key: &Key, op: &str, body: Value) -> Answer {
        self.call_signed(key, op, &body.to_string(), SystemTime::now())
            .await
    }

    /// Calls `op` with a raw body, signed at `time`.
    pub async fn call_signed(&self, key: &Key, op: &str, body: &str, time: SystemTime) -> Answer {
        self.send(berth_test_support::ecr_request(key, op, body, time))
            .await
    }

    pub async fn send(&self, req: Request<Body>) -> Answer {
        let resp = self.env.send(req).await;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn create_repo(&self, name: &str) -> Value {
        self.call("CreateRepository", json!({ "repositoryName": name }))
            .await
            .ok()
    }

    /// Uploads `data` as a layer through the layer API; returns its digest.
    pub async fn upload_layer(&self, repo: &str, data: &[u8]) -> String {
        use base64::Engine;
        let id = self
            .call("InitiateLayerUpload", json!({ "repositoryName": repo }))
            .await
            .ok()["uploadId"]
            .as_str()
            .unwrap()
            .to_string();
        let b64 = base64::engine::general_purpose::STANDARD.encode(data);
        let r = self
            .call(
                "UploadLayerPart",
                json!({"repositoryName": repo, "uploadId": id, "partFirstByte": 0,
                       "partLastByte": data.len() - 1, "layerPartBlob": b64}),
            )
            .await
            .ok();
        assert_eq!(r["lastByteReceived"], data.len() as u64 - 1);
        let digest = sha256(data);
        self.call(
            "CompleteLayerUpload",
            json!({"repositoryName": repo, "uploadId": id, "layerDigests": [digest]}),
        )
        .await
        .ok();
        digest
    }

    /// Pushes an image (config + one layer, both unique to `nonce`) with PutImage under
    /// `tag`; returns (manifest digest, manifest text, config+layer size).
    pub async fn put_image(
        &self,
        repo: &str,
        tag: Option<&str>,
        nonce: &str,
    ) -> (String, String, u64) {
        let config = format!(r#"{{"architecture":"amd64","os":"linux","nonce":"{nonce}"}}"#);
        let layer = format!("layer {nonce}");
        let c = self.upload_layer(repo, config.as_bytes()).await;
        let l = self.upload_layer(repo, layer.as_bytes()).await;
        let manifest = image_manifest(&c, config.len(), &l, layer.len());
        let mut body = json!({"repositoryName": repo, "imageManifest": manifest});
        if let Some(t) = tag {
            body["imageTag"] = t.into();
        }
        let r = self.call("PutImage", body).await.ok();
        let digest = r["image"]["imageId"]["imageDigest"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(digest, sha256(manifest.as_bytes()));
        (digest, manifest, (config.len() + layer.len()) as u64)
    }
}

/// A user with an inline identity policy `policy` and an access key.
pub async fn user(iam: &Iam, name: &str, policy: &str) -> Key {
    berth_test_support::user(iam, ACCOUNT, name, Some(policy)).await
}

pub fn minutes_ago(m: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(m * 60)
}
