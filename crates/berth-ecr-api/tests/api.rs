//! The ECR adapter in process: protocol (ECR_REFERENCE §1), each supported operation's
//! behaviour and errors (§1.5, §2.1–2.4), authorisation before lookup (DESIGN.md
//! invariant 6). Real-client tests (aws CLI, boto3, docker) are in `crates/berth/tests`.

mod common;

use axum::body::Body;
use axum::http::Request;
use berth_ecr_api::{Operation, Support};
use common::*;
use serde_json::json;

// §1.4: errors are {"__type","message"}, 400, awsJson content type, request ID.
#[tokio::test]
async fn unknown_target_is_unknown_operation() {
    let env = Env::new().await;
    let req = Request::builder()
        .method("POST")
        .uri("/")
        .header("host", HOST)
        .header(
            "x-amz-target",
            "AmazonEC2ContainerRegistry_V20150921.MakeCoffee",
        )
        .body(Body::from("{}"))
        .unwrap();
    let a = env.send(req).await;
    assert_eq!(a.headers["content-type"], "application/x-amz-json-1.1");
    assert!(a.headers.contains_key("x-amzn-requestid"));
    let m = a.err("UnknownOperationException");
    assert!(m.contains("MakeCoffee"), "{m}");
}

// Issue 17: an answer given before the body is read keeps the connection usable the way
// the OCI adapter's do (berth_http::body, shared): a small unread body is drained and the
// connection kept; a large one gets `Connection: close`. Also for a body of a known
// operation announced over the limit.
#[tokio::test]
async fn early_answers_drain_small_bodies_and_close_after_large_ones() {
    let env = Env::new().await;
    let request = |target: &str, body: Vec<u8>| {
        Request::builder()
            .method("POST")
            .uri("/")
            .header("host", HOST)
            .header("x-amz-target", target)
            .body(Body::from(body))
            .unwrap()
    };
    let closes = |a: &Answer| a.headers.get("connection").is_some_and(|v| v == "close");
    let coffee = "AmazonEC2ContainerRegistry_V20150921.MakeCoffee";
    let a = env.send(request(coffee, vec![b' '; 1000])).await;
    assert!(!closes(&a), "{a:?}");
    a.err("UnknownOperationException");
    let a = env.send(request(coffee, vec![b' '; 2 << 20])).await;
    assert!(closes(&a), "{a:?}");
    a.err("UnknownOperationException");
    let big = vec![b' '; berth_ecr_api::MAX_BODY + 1];
    let a = env
        .send(request(
            "AmazonEC2ContainerRegistry_V20150921.PutImage",
            big,
        ))
        .await;
    assert!(closes(&a), "{a:?}");
    assert!(a.err("InvalidParameterException").contains("exceeds"));
}

// §1.2: SigV4 failures carry AWS's types and messages.
#[tokio::test]
async fn bad_signatures_are_refused_with_aws_types() {
    let env = Env::new().await;
    let wrong = Key {
        id: env.admin.id.clone(),
        secret: "not-the-secret".into(),
    };
    let m = env
        .call_as(&wrong, "DescribeRepositories", json!({}))
        .await
        .err("InvalidSignatureException");
    assert!(m.contains("signature we calculated does not match"), "{m}");
    let unknown = Key {
        id: "AKIAUNKNOWNUNKNOWN00".into(),
        secret: "x".into(),
    };
    let m = env
        .call_as(&unknown, "DescribeRepositories", json!({}))
        .await
        .err("UnrecognizedClientException");
    assert!(
        m.contains("security token included in the request is invalid"),
        "{m}"
    );
    let m = env
        .call_signed(&env.admin, "DescribeRepositories", "{}", minutes_ago(20))
        .await
        .err("InvalidSignatureException");
    assert!(m.starts_with("Signature expired"), "{m}");
    let req = Request::builder()
        .method("POST")
        .uri("/")
        .header("host", HOST)
        .header(
            "x-amz-target",
            "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories",
        )
        .body(Body::from("{}"))
        .unwrap();
    env.send(req)
        .await
        .err("MissingAuthenticationTokenException");
}

// §1.1: a body that is not JSON of the right types is a SerializationException.
#[tokio::test]
async fn malformed_bodies_are_serialization_errors() {
    let env = Env::new().await;
    env.call_signed(
        &env.admin,
        "CreateRepository",
        "{not json",
        std::time::SystemTime::now(),
    )
    .await
    .err("SerializationException");
    env.call("CreateRepository", json!({"repositoryName": 7}))
        .await
        .err("SerializationException");
}

// §1.5 CreateRepository / DescribeRepositories / DeleteRepository, §2.1 names.
#[tokio::test]
async fn repository_lifecycle() {
    let env = Env::new().await;
    let r = env
        .call(
            "CreateRepository",
            json!({"repositoryName": "team/app", "imageTagMutability": "IMMUTABLE",
                   "imageScanningConfiguration": {"scanOnPush": true},
                   "encryptionConfiguration": {"encryptionType": "KMS", "kmsKey": "arn:aws:kms:us-east-1:111111111111:key/k"},
                   "tags": [{"Key": "team", "Value": "a"}]}),
        )
        .await
        .ok();
    let repo = &r["repository"];
    assert_eq!(
        repo["repositoryArn"],
        format!("arn:aws:ecr:us-east-1:{ACCOUNT}:repository/team/app")
    );
    assert_eq!(repo["registryId"], ACCOUNT);
    assert_eq!(repo["repositoryUri"], format!("{HOST}/team/app"));
    assert_eq!(repo["imageTagMutability"], "IMMUTABLE");
    assert_eq!(repo["imageScanningConfiguration"]["scanOnPush"], true);
    assert_eq!(repo["encryptionConfiguration"]["encryptionType"], "KMS");
    assert!(repo["createdAt"].is_number());
    assert!(repo.get("imageTagMutabilityExclusionFilters").is_none());

    let m = env
        .call("CreateRepository", json!({"repositoryName": "team/app"}))
        .await
        .err("RepositoryAlreadyExistsException");
    assert_eq!(m, format!("The repository with name 'team/app' already exists in the registry with id '{ACCOUNT}'"));

    let d = env
        .call(
            "DescribeRepositories",
            json!({"repositoryNames": ["team/app"]}),
        )
        .await
        .ok();
    assert_eq!(d["repositories"][0]["repositoryName"], "team/app");
    let m = env
        .call(
            "DescribeRepositories",
            json!({"repositoryNames": ["nope/nope"]}),
        )
        .await
        .err("RepositoryNotFoundException");
    assert_eq!(m, format!("The repository with name 'nope/nope' does not exist in the registry with id '{ACCOUNT}'"));

    let t = env
        .call(
            "ListTagsForResource",
            json!({"resourceArn": repo["repositoryArn"]}),
        )
        .await
        .ok();
    assert_eq!(t["tags"], json!([{"Key": "team", "Value": "a"}]));

    env.put_image("team/app", Some("v1"), "lifecycle").await;
    let m = env
        .call("DeleteRepository", json!({"repositoryName": "team/app"}))
        .await
        .err("RepositoryNotEmptyException");
    assert!(
        m.contains("cannot be deleted because it still contains images"),
        "{m}"
    );
    let d = env
        .call(
            "DeleteRepository",
            json!({"repositoryName": "team/app", "force": true}),
        )
        .await
        .ok();
    assert_eq!(d["repository"]["repositoryName"], "team/app");
    env.call(
        "DescribeRepositories",
        json!({"repositoryNames": ["team/app"]}),
    )
    .await
    .err("RepositoryNotFoundException");
}

// §2.1: server-side validation with ECR's wording.
#[tokio::test]
async fn invalid_parameters_use_ecr_wording() {
    let env = Env::new().await;
    let m = env
        .call("CreateRepository", json!({"repositoryName": "Bad_Name"}))
        .await
        .err("InvalidParameterException");
    assert!(m.starts_with("Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular expression"), "{m}");
    let m = env
        .call(
            "CreateRepository",
            json!({"repositoryName": "a".repeat(257)}),
        )
        .await
        .err("InvalidParameterException");
    assert!(
        m.ends_with("'Member must have length less than or equal to 256'"),
        "{m}"
    );
    let m = env
        .call(
            "CreateRepository",
            json!({"repositoryName": "ok", "imageTagMutability": "SOMETIMES"}),
        )
        .await
        .err("InvalidParameterException");
    assert!(m.contains("Member must satisfy enum value set: [MUTABLE, IMMUTABLE, IMMUTABLE_WITH_EXCLUSION, MUTABLE_WITH_EXCLUSION]"), "{m}");
    let m = env
        .call(
            "CreateRepository",
            json!({"repositoryName": "ok", "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION"}),
        )
        .await
        .err("InvalidParameterException");
    assert!(m.contains("imageTagMutabilityExclusionFilters"), "{m}");
    env.create_repo("ok").await;
    let m = env
        .call(
            "PutImage",
            json!({"repositoryName": "ok", "imageManifest": "{}", "imageTag": "t".repeat(301)}),
        )
        .await
        .err("InvalidParameterException");
    assert!(
        m.ends_with("'Member must have length less than or equal to 300'"),
        "{m}"
    );
    let m = env
        .call(
            "DescribeRepositories",
            json!({"registryId": "222222222222"}),
        )
        .await
        .err("InvalidParameterException");
    assert!(
        m.contains(&format!("this Berth server hosts registry {ACCOUNT}")),
        "{m}"
    );
    let m = env
        .call("DescribeRepositories", json!({"nextToken": "garbage"}))
        .await
        .err("InvalidParameterException");
    assert!(m.contains("nextToken"), "{m}");
    env.call(
        "ListImages",
        json!({"repositoryName": "ok", "maxResults": 0}),
    )
    .await
    .err("InvalidParameterException");
}

// §1.7: nextToken pages end without a token; maxResults bounds each page.
#[tokio::test]
async fn describe_repositories_paginates() {
    let env = Env::new().await;
    for i in 0..5 {
        env.create_repo(&format!("repo{i}")).await;
    }
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut body = json!({"maxResults": 2});
        if let Some(t) = &token {
            body["nextToken"] = t.clone().into();
        }
        let r = env.call("DescribeRepositories", body).await.ok();
        pages += 1;
        for repo in r["repositories"].as_array().unwrap() {
            names.push(repo["repositoryName"].as_str().unwrap().to_string());
        }
        match r.get("nextToken") {
            Some(t) => token = Some(t.as_str().unwrap().to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["repo0", "repo1", "repo2", "repo3", "repo4"]);
}

// §2.2: tag immutability with exclusion filters; identical re-push is ImageAlreadyExists.
#[tokio::test]
async fn immutable_tags_and_exclusion_filters() {
    let env = Env::new().await;
    env.call(
        "CreateRepository",
        json!({"repositoryName": "imm", "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
               "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "dev-*"}]}),
    )
    .await
    .ok();
    let (_, m1, _) = env.put_image("imm", Some("v1"), "a").await;
    let m = env
        .call(
            "PutImage",
            json!({"repositoryName": "imm", "imageManifest": m1, "imageTag": "v1"}),
        )
        .await
        .err("ImageAlreadyExistsException");
    assert!(
        m.contains("already exists in the repository with name 'imm'"),
        "{m}"
    );
    // Another image under v1: refused with ECR's immutability message.
    let (d2, m2, _) = env.put_image("imm", None, "b").await;
    let m = env
        .call(
            "PutImage",
            json!({"repositoryName": "imm", "imageManifest": m2, "imageTag": "v1"}),
        )
        .await
        .err("ImageTagAlreadyExistsException");
    // Issue 17: under IMMUTABLE_WITH_EXCLUSION the refusal says so.
    assert_eq!(m, "The image tag 'v1' already exists in the 'imm' repository and cannot be overwritten because the repository is immutable (IMMUTABLE_WITH_EXCLUSION) and the tag matches none of its exclusion filters.");
    // dev-* is excluded: it moves.
    env.call(
        "PutImage",
        json!({"repositoryName": "imm", "imageManifest": m1, "imageTag": "dev-1"}),
    )
    .await
    .ok();
    env.call(
        "PutImage",
        json!({"repositoryName": "imm", "imageManifest": m2, "imageTag": "dev-1"}),
    )
    .await
    .ok();
    // Making the repository mutable lets v1 move.
    let r = env
        .call(
            "PutImageTagMutability",
            json!({"repositoryName": "imm", "imageTagMutability": "MUTABLE"}),
        )
        .await
        .ok();
    assert_eq!(r["imageTagMutability"], "MUTABLE");
    assert!(r.get("imageTagMutabilityExclusionFilters").is_none());
    let r = env
        .call(
            "PutImage",
            json!({"repositoryName": "imm", "imageManifest": m2, "imageTag": "v1"}),
        )
        .await
        .ok();
    assert_eq!(r["image"]["imageId"]["imageDigest"], d2);
    // MUTABLE_WITH_EXCLUSION: matching tags are the immutable ones.
    env.call(
        "PutImageTagMutability",
        json!({"repositoryName": "imm", "imageTagMutability": "MUTABLE_WITH_EXCLUSION",
               "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "v*"}]}),
    )
    .await
    .ok();
    env.call(
        "PutImage",
        json!({"repositoryName": "imm", "imageManifest": m1, "imageTag": "v1"}),
    )
    .await
    .err("ImageTagAlreadyExistsException");
    let m = env
        .call(
            "PutImage",
            json!({"repositoryName": "imm", "imageManifest": m1, "imageTag": "v1"}),
        )
        .await
        .err("ImageTagAlreadyExistsException");
    assert!(m.contains("MUTABLE_WITH_EXCLUSION"), "{m}");
    env.call(
        "PutImage",
        json!({"repositoryName": "imm", "imageManifest": m1, "imageTag": "dev-1"}),
    )
    .await
    .ok();
    let d = env
        .call("DescribeRepositories", json!({"repositoryNames": ["imm"]}))
        .await
        .ok();
    assert_eq!(
        d["repositories"][0]["imageTagMutabilityExclusionFilters"],
        json!([{"filterType": "WILDCARD", "filter": "v*"}])
    );
}

// §1.5 PutImage errors.
#[tokio::test]
async fn put_image_errors() {
    let env = Env::new().await;
    env.create_repo("pi").await;
    let missing = sha256(b"missing");
    let m = env
        .call("PutImage", json!({"repositoryName": "pi", "imageManifest": image_manifest(&missing, 7, &missing, 7)}))
        .await
        .err("LayersNotFoundException");
    assert!(m.contains(&missing), "{m}");
    let (d, manifest, _) = env.put_image("pi", Some("a"), "x").await;
    let wrong = sha256(b"other");
    let m = env
        .call("PutImage", json!({"repositoryName": "pi", "imageManifest": manifest, "imageDigest": wrong, "imageTag": "b"}))
        .await
        .err("ImageDigestDoesNotMatchException");
    assert!(m.contains(&d), "{m}");
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{missing}","size":7}}]}}"#
    );
    env.call(
        "PutImage",
        json!({"repositoryName": "pi", "imageManifest": index}),
    )
    .await
    .err("ReferencedImagesNotFoundException");
    env.call(
        "PutImage",
        json!({"repositoryName": "nope", "imageManifest": manifest}),
    )
    .await
    .err("RepositoryNotFoundException");
    env.call(
        "PutImage",
        json!({"repositoryName": "pi", "imageManifest": "not json"}),
    )
    .await
    .err("InvalidParameterException");
    // ECR_REFERENCE §1.5: no `mediaType` in the manifest and no `imageManifestMediaType`
    // is ECR's InvalidParameterException, not a guess.
    let bare = manifest.replace(
        r#""mediaType":"application/vnd.oci.image.manifest.v1+json","#,
        "",
    );
    assert_ne!(bare, manifest);
    let m = env
        .call(
            "PutImage",
            json!({"repositoryName": "pi", "imageManifest": bare, "imageTag": "bare"}),
        )
        .await
        .err("InvalidParameterException");
    assert!(
        m.starts_with("Invalid parameter at 'imageManifestMediaType'"),
        "{m}"
    );
    // With the media type given, the same manifest is stored and the answer echoes it.
    let r = env
        .call("PutImage", json!({"repositoryName": "pi", "imageManifest": bare, "imageTag": "bare",
                                 "imageManifestMediaType": "application/vnd.oci.image.manifest.v1+json"}))
        .await
        .ok();
    assert_eq!(
        r["image"]["imageManifestMediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    // Without it, the answer's media type comes from the stored manifest, not a re-read.
    let r = env
        .call(
            "PutImage",
            json!({"repositoryName": "pi", "imageManifest": manifest, "imageTag": "c"}),
        )
        .await
        .ok();
    assert_eq!(
        r["image"]["imageManifestMediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
}

// §2.3: ListImages / DescribeImages / BatchGetImage / BatchDeleteImage.
#[tokio::test]
async fn image_listing_fetching_and_deleting() {
    let env = Env::new().await;
    env.create_repo("img").await;
    let (d1, m1, size1) = env.put_image("img", Some("v1"), "one").await;
    env.call(
        "PutImage",
        json!({"repositoryName": "img", "imageManifest": m1, "imageTag": "latest"}),
    )
    .await
    .ok();
    let (d2, _, _) = env.put_image("img", None, "two").await;

    let all = env
        .call("ListImages", json!({"repositoryName": "img"}))
        .await
        .ok();
    assert_eq!(all["imageIds"].as_array().unwrap().len(), 3);
    let untagged = env
        .call(
            "ListImages",
            json!({"repositoryName": "img", "filter": {"tagStatus": "UNTAGGED"}}),
        )
        .await
        .ok();
    assert_eq!(untagged["imageIds"], json!([{"imageDigest": d2}]));
    // Pages of one, each (digest, tag) once.
    let mut seen = Vec::new();
    let mut token = None::<String>;
    loop {
        let mut b = json!({"repositoryName": "img", "maxResults": 1});
        if let Some(t) = &token {
            b["nextToken"] = t.clone().into();
        }
        let r = env.call("ListImages", b).await.ok();
        seen.extend(r["imageIds"].as_array().unwrap().iter().cloned());
        match r.get("nextToken") {
            Some(t) => token = Some(t.as_str().unwrap().into()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 3);

    let d = env
        .call(
            "DescribeImages",
            json!({"repositoryName": "img", "imageIds": [{"imageTag": "v1"}]}),
        )
        .await
        .ok();
    let detail = &d["imageDetails"][0];
    assert_eq!(detail["imageDigest"], d1);
    assert_eq!(detail["imageTags"], json!(["latest", "v1"]));
    assert_eq!(detail["imageSizeInBytes"], size1);
    assert_eq!(
        detail["imageManifestMediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        detail["artifactMediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert!(detail["imagePushedAt"].is_number());
    assert!(detail.get("lastRecordedPullTime").is_none());
    let m = env
        .call(
            "DescribeImages",
            json!({"repositoryName": "img", "imageIds": [{"imageTag": "nope"}]}),
        )
        .await
        .err("ImageNotFoundException");
    assert!(m.contains("imageTag:'nope'"), "{m}");

    // BatchGetImage is a pull: lastRecordedPullTime appears.
    let g = env
        .call(
            "BatchGetImage",
            json!({"repositoryName": "img", "imageIds": [{"imageTag": "v1"}, {"imageDigest": d2}, {"imageTag": "gone"}, {}]}),
        )
        .await
        .ok();
    assert_eq!(g["images"][0]["imageManifest"], m1);
    assert_eq!(
        g["images"][0]["imageId"],
        json!({"imageDigest": d1, "imageTag": "v1"})
    );
    assert_eq!(g["images"][1]["imageId"], json!({"imageDigest": d2}));
    let codes: Vec<_> = g["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["failureCode"].clone())
        .collect();
    assert_eq!(
        codes,
        [json!("ImageNotFound"), json!("MissingDigestAndTag")]
    );
    let d = env
        .call(
            "DescribeImages",
            json!({"repositoryName": "img", "imageIds": [{"imageDigest": d1}]}),
        )
        .await
        .ok();
    assert!(d["imageDetails"][0]["lastRecordedPullTime"].is_number());
    // acceptedMediaTypes: a tag of another format is not served.
    let g = env
        .call(
            "BatchGetImage",
            json!({"repositoryName": "img", "imageIds": [{"imageTag": "v1"}],
                   "acceptedMediaTypes": ["application/vnd.docker.distribution.manifest.v2+json"]}),
        )
        .await
        .ok();
    assert_eq!(g["failures"][0]["failureCode"], "ImageNotFound");

    // Deleting one of two tags keeps the image; deleting the last tag deletes it.
    let r = env
        .call(
            "BatchDeleteImage",
            json!({"repositoryName": "img", "imageIds": [{"imageTag": "latest"}]}),
        )
        .await
        .ok();
    assert_eq!(
        r["imageIds"],
        json!([{"imageDigest": d1, "imageTag": "latest"}])
    );
    env.call(
        "BatchDeleteImage",
        json!({"repositoryName": "img", "imageIds": [{"imageTag": "v1"}]}),
    )
    .await
    .ok();
    let all = env
        .call("ListImages", json!({"repositoryName": "img"}))
        .await
        .ok();
    assert_eq!(all["imageIds"], json!([{"imageDigest": d2}]));
    let r = env
        .call(
            "BatchDeleteImage",
            json!({"repositoryName": "img", "imageIds": [{"imageDigest": d2}, {"imageDigest": "sha256:bad"}, {"imageTag": "nope"}]}),
        )
        .await
        .ok();
    assert_eq!(r["imageIds"], json!([{"imageDigest": d2}]));
    let codes: Vec<_> = r["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["failureCode"].clone())
        .collect();
    assert_eq!(codes, [json!("InvalidImageDigest"), json!("ImageNotFound")]);
}

// §2.4: the layer API, and its errors.
#[tokio::test]
async fn layer_upload_api() {
    use base64::Engine;
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let env = Env::new().await;
    env.create_repo("lay").await;
    let id = env
        .call("InitiateLayerUpload", json!({"repositoryName": "lay"}))
        .await
        .ok()["uploadId"]
        .as_str()
        .unwrap()
        .to_string();
    env.call(
        "UploadLayerPart",
        json!({"repositoryName": "lay", "uploadId": id, "partFirstByte": 0, "partLastByte": 2, "layerPartBlob": b64(b"abc")}),
    )
    .await
    .ok();
    // A part that does not continue the upload.
    let e = env
        .call(
            "UploadLayerPart",
            json!({"repositoryName": "lay", "uploadId": id, "partFirstByte": 5, "partLastByte": 6, "layerPartBlob": b64(b"fg")}),
        )
        .await;
    assert_eq!(e.body["lastValidByteReceived"], 2);
    e.err("InvalidLayerPartException");
    // A part whose range disagrees with its bytes.
    env.call(
        "UploadLayerPart",
        json!({"repositoryName": "lay", "uploadId": id, "partFirstByte": 3, "partLastByte": 9, "layerPartBlob": b64(b"de")}),
    )
    .await
    .err("InvalidLayerPartException");
    let r = env
        .call(
            "UploadLayerPart",
            json!({"repositoryName": "lay", "uploadId": id, "partFirstByte": 3, "partLastByte": 4, "layerPartBlob": b64(b"de")}),
        )
        .await
        .ok();
    assert_eq!(r["lastByteReceived"], 4);
    let good = sha256(b"abcde");
    let check = env
        .call(
            "BatchCheckLayerAvailability",
            json!({"repositoryName": "lay", "layerDigests": [good, "nonsense", ""]}),
        )
        .await
        .ok();
    assert_eq!(check["layers"][0]["layerAvailability"], "UNAVAILABLE");
    assert_eq!(check["failures"][0]["failureCode"], "InvalidLayerDigest");
    assert_eq!(check["failures"][1]["failureCode"], "MissingLayerDigest");
    let r = env
        .call(
            "CompleteLayerUpload",
            json!({"repositoryName": "lay", "uploadId": id, "layerDigests": [good]}),
        )
        .await
        .ok();
    assert_eq!(r["layerDigest"], good);
    let check = env
        .call(
            "BatchCheckLayerAvailability",
            json!({"repositoryName": "lay", "layerDigests": [good]}),
        )
        .await
        .ok();
    assert_eq!(
        check["layers"][0],
        json!({"layerDigest": good, "layerAvailability": "AVAILABLE", "layerSize": 5})
    );
    // The upload is gone.
    env.call(
        "CompleteLayerUpload",
        json!({"repositoryName": "lay", "uploadId": id, "layerDigests": [good]}),
    )
    .await
    .err("UploadNotFoundException");
    // Same layer again.
    let id2 = env
        .call("InitiateLayerUpload", json!({"repositoryName": "lay"}))
        .await
        .ok()["uploadId"]
        .clone();
    env.call("UploadLayerPart", json!({"repositoryName": "lay", "uploadId": id2, "partFirstByte": 0, "partLastByte": 4, "layerPartBlob": b64(b"abcde")}))
        .await
        .ok();
    env.call(
        "CompleteLayerUpload",
        json!({"repositoryName": "lay", "uploadId": id2, "layerDigests": [good]}),
    )
    .await
    .err("LayerAlreadyExistsException");
    // Wrong digest; empty upload.
    let id3 = env
        .call("InitiateLayerUpload", json!({"repositoryName": "lay"}))
        .await
        .ok()["uploadId"]
        .clone();
    env.call("UploadLayerPart", json!({"repositoryName": "lay", "uploadId": id3, "partFirstByte": 0, "partLastByte": 0, "layerPartBlob": b64(b"z")}))
        .await
        .ok();
    env.call(
        "CompleteLayerUpload",
        json!({"repositoryName": "lay", "uploadId": id3, "layerDigests": [sha256(b"y")]}),
    )
    .await
    .err("InvalidLayerException");
    let id4 = env
        .call("InitiateLayerUpload", json!({"repositoryName": "lay"}))
        .await
        .ok()["uploadId"]
        .clone();
    env.call(
        "CompleteLayerUpload",
        json!({"repositoryName": "lay", "uploadId": id4, "layerDigests": [good]}),
    )
    .await
    .err("EmptyUploadException");
    env.call("InitiateLayerUpload", json!({"repositoryName": "nope"}))
        .await
        .err("RepositoryNotFoundException");

    // Download URLs: only for layers of images.
    env.call(
        "GetDownloadUrlForLayer",
        json!({"repositoryName": "lay", "layerDigest": good}),
    )
    .await
    .err("LayerInaccessibleException");
    env.call(
        "GetDownloadUrlForLayer",
        json!({"repositoryName": "lay", "layerDigest": sha256(b"none")}),
    )
    .await
    .err("LayersNotFoundException");
    let (_, manifest, _) = env.put_image("lay", Some("v1"), "dl").await;
    let layer: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let layer_digest = layer["layers"][0]["digest"].as_str().unwrap();
    let r = env
        .call(
            "GetDownloadUrlForLayer",
            json!({"repositoryName": "lay", "layerDigest": layer_digest}),
        )
        .await
        .ok();
    let url = r["downloadUrl"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("http://{HOST}/v2/lay/blobs/{layer_digest}?")),
        "{url}"
    );
}

// DESIGN.md invariant 6: denied callers learn nothing about existence.
#[tokio::test]
async fn authorization_comes_before_lookup() {
    let env = Env::new().await;
    env.create_repo("team/a").await;
    env.create_repo("team/b").await;
    let reader = user(
        &env.iam,
        "reader",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:DescribeRepositories","ecr:DescribeImages"],"Resource":"arn:aws:ecr:us-east-1:111111111111:repository/team/a"}]}"#,
    )
    .await;
    let d = env
        .call_as(&reader, "DescribeRepositories", json!({}))
        .await
        .ok();
    let names: Vec<_> = d["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["repositoryName"].clone())
        .collect();
    assert_eq!(names, [json!("team/a")]);
    let m = env
        .call_as(
            &reader,
            "DescribeImages",
            json!({"repositoryName": "team/b"}),
        )
        .await
        .err("AccessDeniedException");
    assert!(
        m.contains("is not authorized to perform: ecr:DescribeImages"),
        "{m}"
    );
    // Issue 17: a DescribeRepositories denial names the repository's ARN, as ECR's does.
    let m = env
        .call_as(
            &reader,
            "DescribeRepositories",
            json!({"repositoryNames": ["team/b"]}),
        )
        .await
        .err("AccessDeniedException");
    assert_eq!(
        m,
        "User: arn:aws:iam::111111111111:user/reader is not authorized to perform: \
         ecr:DescribeRepositories on resource: \
         arn:aws:ecr:us-east-1:111111111111:repository/team/b because no identity-based \
         policy allows the ecr:DescribeRepositories action"
    );
    // A caller who may describe nothing is told so about the registry's repositories.
    let nobody = user(&env.iam, "lister", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:ListImages","Resource":"*"}]}"#).await;
    let m = env
        .call_as(&nobody, "DescribeRepositories", json!({}))
        .await
        .err("AccessDeniedException");
    assert!(
        m.contains("ecr:DescribeRepositories on resource: arn:aws:ecr:us-east-1:111111111111:repository/* "),
        "{m}"
    );
    // A repository that does not exist answers the same.
    env.call_as(
        &reader,
        "DescribeImages",
        json!({"repositoryName": "team/zzz"}),
    )
    .await
    .err("AccessDeniedException");
    env.call_as(
        &reader,
        "CreateRepository",
        json!({"repositoryName": "team/a2"}),
    )
    .await
    .err("AccessDeniedException");
    env.call_as(&reader, "GetAuthorizationToken", json!({}))
        .await
        .err("AccessDeniedException");
    let nobody = user(&env.iam, "nobody", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:ListImages","Resource":"*"}]}"#).await;
    env.call_as(&nobody, "DescribeRepositories", json!({}))
        .await
        .err("AccessDeniedException");
}

// §1.5 policies, §4.1 GetAuthorizationToken, DescribeRegistry.
#[tokio::test]
async fn policies_token_and_registry() {
    let env = Env::new().await;
    env.create_repo("pol").await;
    let m = env
        .call("GetRepositoryPolicy", json!({"repositoryName": "pol"}))
        .await
        .err("RepositoryPolicyNotFoundException");
    assert_eq!(m, format!("Repository policy does not exist for the repository with name 'pol' in the registry with id '{ACCOUNT}'"));
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Sid":"pull","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":["ecr:BatchGetImage"]}]}"#;
    let r = env
        .call(
            "SetRepositoryPolicy",
            json!({"repositoryName": "pol", "policyText": policy}),
        )
        .await
        .ok();
    assert_eq!(r["policyText"], policy);
    let r = env
        .call("GetRepositoryPolicy", json!({"repositoryName": "pol"}))
        .await
        .ok();
    assert_eq!(r["policyText"], policy);
    env.call(
        "SetRepositoryPolicy",
        json!({"repositoryName": "pol", "policyText": "{\"Statement\": 3}"}),
    )
    .await
    .err("InvalidParameterException");
    env.call(
        "SetRepositoryPolicy",
        json!({"repositoryName": "none", "policyText": policy}),
    )
    .await
    .err("RepositoryNotFoundException");
    // Deleting the repository deletes its policy.
    env.call("DeleteRepository", json!({"repositoryName": "pol"}))
        .await
        .ok();
    env.create_repo("pol").await;
    env.call("GetRepositoryPolicy", json!({"repositoryName": "pol"}))
        .await
        .err("RepositoryPolicyNotFoundException");
    env.call(
        "SetRepositoryPolicy",
        json!({"repositoryName": "pol", "policyText": policy}),
    )
    .await
    .ok();
    env.call("DeleteRepositoryPolicy", json!({"repositoryName": "pol"}))
        .await
        .ok();
    env.call("DeleteRepositoryPolicy", json!({"repositoryName": "pol"}))
        .await
        .err("RepositoryPolicyNotFoundException");

    env.call("GetRegistryPolicy", json!({}))
        .await
        .err("RegistryPolicyNotFoundException");
    let reg = r#"{"Version":"2012-10-17","Statement":[{"Sid":"repl","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:root"},"Action":["ecr:CreateRepository","ecr:ReplicateImage"],"Resource":"arn:aws:ecr:us-east-1:111111111111:repository/*"}]}"#;
    let r = env
        .call("PutRegistryPolicy", json!({"policyText": reg}))
        .await
        .ok();
    assert_eq!(r["registryId"], ACCOUNT);
    assert_eq!(
        env.call("GetRegistryPolicy", json!({})).await.ok()["policyText"],
        reg
    );
    env.call("DeleteRegistryPolicy", json!({})).await.ok();
    env.call("DeleteRegistryPolicy", json!({}))
        .await
        .err("RegistryPolicyNotFoundException");

    let r = env.call("DescribeRegistry", json!({})).await.ok();
    assert_eq!(
        r,
        json!({"registryId": ACCOUNT, "replicationConfiguration": {"rules": []}})
    );

    let t = env.call("GetAuthorizationToken", json!({})).await.ok();
    let data = &t["authorizationData"][0];
    assert_eq!(data["proxyEndpoint"], format!("http://{HOST}"));
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data["authorizationToken"].as_str().unwrap())
        .unwrap();
    let decoded = String::from_utf8(decoded).unwrap();
    assert!(
        decoded.starts_with("AWS:") && decoded.matches(':').count() == 1,
        "{decoded}"
    );
    assert!(data["expiresAt"].as_i64().unwrap() > 0);
}

// Resource tags: merge, remove, limit of 50.
#[tokio::test]
async fn resource_tags() {
    let env = Env::new().await;
    let arn = env.create_repo("tagged").await["repository"]["repositoryArn"].clone();
    env.call("TagResource", json!({"resourceArn": arn, "tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]}))
        .await
        .ok();
    env.call(
        "TagResource",
        json!({"resourceArn": arn, "tags": [{"Key": "a", "Value": "3"}]}),
    )
    .await
    .ok();
    env.call(
        "UntagResource",
        json!({"resourceArn": arn, "tagKeys": ["b"]}),
    )
    .await
    .ok();
    let t = env
        .call("ListTagsForResource", json!({"resourceArn": arn}))
        .await
        .ok();
    assert_eq!(t["tags"], json!([{"Key": "a", "Value": "3"}]));
    let many: Vec<_> = (0..50)
        .map(|i| json!({"Key": format!("k{i}"), "Value": "v"}))
        .collect();
    env.call("TagResource", json!({"resourceArn": arn, "tags": many}))
        .await
        .err("TooManyTagsException");
    env.call(
        "TagResource",
        json!({"resourceArn": arn, "tags": [{"Key": "", "Value": "v"}]}),
    )
    .await
    .err("InvalidTagParameterException");
    env.call(
        "TagResource",
        json!({"resourceArn": "arn:aws:ecr:eu-west-1:999999999999:repository/x", "tags": []}),
    )
    .await
    .err("InvalidParameterException");
    env.call(
        "ListTagsForResource",
        json!({"resourceArn": format!("arn:aws:ecr:us-east-1:{ACCOUNT}:repository/missing")}),
    )
    .await
    .err("RepositoryNotFoundException");
}

// Operations of later capabilities answer "not supported yet", never a fake success;
// every operation the table calls supported is dispatched. Issue 17: before refusing, an
// unbuilt operation that names a repository (botocore: required `repositoryName`)
// validates it and looks it up, as ECR would: no name is InvalidParameterException, a
// missing repository RepositoryNotFoundException, an invalid JSON body
// SerializationException.
#[tokio::test]
async fn dispatch_table_matches_support() {
    let env = Env::new().await;
    env.create_repo("present").await;
    for op in Operation::ALL {
        // Supported operations get an empty body (DeleteRepository must not delete it).
        let names_repository = berth_ecr_api::operation::names_repository(*op)
            && berth_ecr_api::support(*op) != Support::Supported;
        let body = if names_repository {
            json!({"repositoryName": "present"})
        } else {
            json!({})
        };
        let a = env.call(op.name(), body).await;
        match berth_ecr_api::support(*op) {
            Support::Supported => assert_ne!(
                a.error_type(),
                "UnsupportedOperationException",
                "{op} is marked supported but not dispatched"
            ),
            Support::NotYet(what) => {
                let m = a.err("UnsupportedOperationException");
                assert!(m.contains(what) && m.contains(op.name()), "{m}");
                if names_repository {
                    let m = env
                        .call(op.name(), json!({"repositoryName": "absent"}))
                        .await
                        .err("RepositoryNotFoundException");
                    assert_eq!(
                        m,
                        format!("The repository with name 'absent' does not exist in the registry with id '{ACCOUNT}'"),
                        "{op}"
                    );
                    let m = env
                        .call(op.name(), json!({}))
                        .await
                        .err("InvalidParameterException");
                    assert!(m.contains("'repositoryName'"), "{op}: {m}");
                }
            }
        }
    }
}

// Tryout regressions: AWS reserves the `aws:` tag prefix (InvalidTagParameterException);
// a nextToken issued for one repository's listing is refused for another's.
#[tokio::test]
async fn reserved_tag_prefix_and_tokens_bound_to_their_repository() {
    let env = Env::new().await;
    let arn = env.create_repo("tok-a").await["repository"]["repositoryArn"].clone();
    env.create_repo("tok-b").await;
    env.call(
        "TagResource",
        json!({"resourceArn": arn, "tags": [{"Key": "aws:x", "Value": "1"}]}),
    )
    .await
    .err("InvalidTagParameterException");
    for i in 0..3 {
        env.put_image("tok-a", Some(&format!("t{i}")), &format!("img{i}"))
            .await;
    }
    for op in ["ListImages", "DescribeImages"] {
        let page = env
            .call(op, json!({"repositoryName": "tok-a", "maxResults": 1}))
            .await
            .ok();
        let token = page["nextToken"].clone();
        assert!(token.is_string(), "{op}: {page}");
        env.call(
            op,
            json!({"repositoryName": "tok-b", "nextToken": token, "maxResults": 1}),
        )
        .await
        .err("InvalidParameterException");
    }
}

// §2.9 and the model's lifecycle operations: Put/Get/DeleteLifecyclePolicy round trip
// the text exactly; validation failures are InvalidParameterException with ECR's
// "Lifecycle policy validation failure" wording; missing policies and previews have
// their own exception types; a preview starts IN_PROGRESS (no job runner here, so it
// stays there) and a second start is LifecyclePolicyPreviewInProgressException; each
// operation is authorised as its own IAM action before the repository is looked up.
#[tokio::test]
async fn lifecycle_policy_operations() {
    let env = Env::new().await;
    let policy = r#"{"rules":[{"rulePriority":1,"description":"keep 5","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}}]}"#;
    let repo = json!({"repositoryName": "team/lc"});
    env.call("GetLifecyclePolicy", repo.clone())
        .await
        .err("RepositoryNotFoundException");
    env.create_repo("team/lc").await;
    let m = env
        .call("GetLifecyclePolicy", repo.clone())
        .await
        .err("LifecyclePolicyNotFoundException");
    assert_eq!(m, format!("Lifecycle policy does not exist for the repository with name 'team/lc' in the registry with id '{ACCOUNT}'"));
    let m = env
        .call("GetLifecyclePolicyPreview", repo.clone())
        .await
        .err("LifecyclePolicyPreviewNotFoundException");
    assert!(m.contains("There is no dry run for"), "{m}");
    env.call("StartLifecyclePolicyPreview", repo.clone())
        .await
        .err("LifecyclePolicyNotFoundException");

    let bad = policy.replace(r#""countNumber":5"#, r#""countNumber":0"#);
    let m = env
        .call(
            "PutLifecyclePolicy",
            json!({"repositoryName": "team/lc", "lifecyclePolicyText": bad}),
        )
        .await
        .err("InvalidParameterException");
    assert!(
        m.starts_with("Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: ")
            && m.contains("countNumber must be a positive integer"),
        "{m}"
    );
    let m = env
        .call(
            "PutLifecyclePolicy",
            json!({"repositoryName": "team/lc", "lifecyclePolicyText": "{}"}),
        )
        .await
        .err("InvalidParameterException");
    assert!(m.contains("lifecyclePolicyText"), "{m}");

    let put = env
        .call(
            "PutLifecyclePolicy",
            json!({"repositoryName": "team/lc", "lifecyclePolicyText": policy}),
        )
        .await
        .ok();
    assert_eq!(
        put,
        json!({"registryId": ACCOUNT, "repositoryName": "team/lc", "lifecyclePolicyText": policy})
    );
    let got = env.call("GetLifecyclePolicy", repo.clone()).await.ok();
    assert_eq!(got["lifecyclePolicyText"], policy);
    assert!(
        got.get("lastEvaluatedAt").is_none(),
        "never evaluated: {got}"
    );

    let started = env
        .call("StartLifecyclePolicyPreview", repo.clone())
        .await
        .ok();
    assert_eq!(started["status"], "IN_PROGRESS");
    assert_eq!(started["lifecyclePolicyText"], policy);
    env.call("StartLifecyclePolicyPreview", repo.clone())
        .await
        .err("LifecyclePolicyPreviewInProgressException");
    let p = env
        .call("GetLifecyclePolicyPreview", repo.clone())
        .await
        .ok();
    assert_eq!(p["status"], "IN_PROGRESS");
    assert_eq!(p["previewResults"], json!([]));
    env.call(
        "GetLifecyclePolicyPreview",
        json!({"repositoryName": "team/lc", "maxResults": 101}),
    )
    .await
    .err("InvalidParameterException");

    // IAM: ecr:PutLifecyclePolicy is its own action.
    let reader = user(&env.iam, "lc-reader", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:GetLifecyclePolicy","Resource":"*"}]}"#).await;
    env.call_as(&reader, "GetLifecyclePolicy", repo.clone())
        .await
        .ok();
    let m = env
        .call_as(
            &reader,
            "PutLifecyclePolicy",
            json!({"repositoryName": "team/lc", "lifecyclePolicyText": policy}),
        )
        .await
        .err("AccessDeniedException");
    assert!(m.contains("ecr:PutLifecyclePolicy"), "{m}");
    let m = env
        .call_as(
            &reader,
            "DeleteLifecyclePolicy",
            json!({"repositoryName": "team/none"}),
        )
        .await
        .err("AccessDeniedException");
    assert!(
        m.contains("ecr:DeleteLifecyclePolicy"),
        "denied before lookup: {m}"
    );

    let deleted = env.call("DeleteLifecyclePolicy", repo.clone()).await.ok();
    assert_eq!(deleted["lifecyclePolicyText"], policy);
    env.call("DeleteLifecyclePolicy", repo.clone())
        .await
        .err("LifecyclePolicyNotFoundException");
}

/// Issue 14, "the SQLite/disk and PostgreSQL/S3 pairs run the same tests": every other
/// test of this file again, in a child process on PostgreSQL metadata and S3 (SeaweedFS)
/// blob storage (`berth_test_support::Backends::PostgresS3`).
#[test]
fn every_test_of_this_file_on_postgres_and_s3() {
    berth_test_support::rerun_on_postgres_s3("every_test_of_this_file_on_postgres_and_s3");
}
