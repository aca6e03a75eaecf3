//! In-process harness for the ECR adapter: a registry and an identity service over a
//! temp directory, the adapter's router driven with `oneshot`, requests signed with
//! SigV4 exactly as botocore signs them (`berth_iam::sigv4::sign`).
#![allow(dead_code)]

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use berth_iam::audit::AuditSink;
use berth_iam::secret::Keys;
use berth_iam::service::{StoredKind, ADMINISTRATOR_ACCESS};
use berth_iam::{AccountId, Iam, IamConfig};
use berth_meta::SqliteMeta;
use berth_registry::{Registry, RegistryConfig};
use berth_store::FsStore;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tower::ServiceExt;

pub const ACCOUNT: &str = "111111111111";
pub const HOST: &str = "127.0.0.1:5000";

/// Credentials of one principal.
#[derive(Clone)]
pub struct Key {
    pub id: String,
    pub secret: String,
}

pub struct Env {
    pub app: Router,
    pub registry: Registry,
    pub iam: Iam,
    pub admin: Key,
    _dir: tempfile::TempDir,
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
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let meta = Arc::new(
            SqliteMeta::open(&dir.path().join("metadata.db"))
                .await
                .unwrap(),
        );
        let registry = Registry::new(Arc::new(store), meta.clone(), RegistryConfig::default());
        let iam = Iam::open(
            meta,
            Keys::from_master(&[7u8; 32]),
            IamConfig {
                account_id: Some(AccountId::parse(ACCOUNT).unwrap()),
                ..IamConfig::default()
            },
            AuditSink::log_only(),
        )
        .await
        .unwrap();
        let admin = user(&iam, "admin", ADMINISTRATOR_ACCESS).await;
        let app = berth_ecr_api::router(registry.clone(), iam.clone());
        Env {
            app,
            registry,
            iam,
            admin,
            _dir: dir,
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
        let target = format!("AmazonEC2ContainerRegistry_V20150921.{op}");
        let headers = [
            ("host", HOST),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target.as_str()),
        ];
        let added = berth_iam::sigv4::sign(
            "POST",
            &format!("http://{HOST}/"),
            &headers,
            body.as_bytes(),
            &key.id,
            &key.secret,
            None,
            "us-east-1",
            "ecr",
            time,
        )
        .unwrap();
        let mut req = Request::builder().method("POST").uri("/");
        for (k, v) in headers {
            req = req.header(k, v);
        }
        for (k, v) in &added {
            req = req.header(k.as_str(), v.as_str());
        }
        self.send(req.body(Body::from(body.to_string())).unwrap())
            .await
    }

    pub async fn send(&self, req: Request<Body>) -> Answer {
        let resp = self.app.clone().oneshot(req).await.unwrap();
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

pub fn image_manifest(config: &str, config_size: usize, layer: &str, layer_size: usize) -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_size}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":{layer_size}}}]}}"#
    )
}

pub fn sha256(data: &[u8]) -> String {
    berth_core::Digest::sha256_of(data).to_string()
}

/// A user with an inline identity policy `policy` and an access key.
pub async fn user(iam: &Iam, name: &str, policy: &str) -> Key {
    iam.create_principal(ACCOUNT, StoredKind::User, name, BTreeMap::new())
        .await
        .unwrap();
    iam.put_identity_policy(ACCOUNT, StoredKind::User, name, "inline", policy)
        .await
        .unwrap();
    let k = iam
        .create_access_key(ACCOUNT, StoredKind::User, name)
        .await
        .unwrap();
    Key {
        id: k.access_key_id,
        secret: k.secret_access_key.to_string(),
    }
}

pub fn minutes_ago(m: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(m * 60)
}
