//! Real clients against the registry: docker (dockerd), podman, buildah, skopeo, umoci
//! and the oras Python SDK push to and pull from a `berth serve` started for each
//! test, and each test asserts what a user of those tools would check.
//!
//! Sections cited are from the OCI Distribution Specification v1.1 (`spec.md`) and the
//! OCI Image Specification v1.1 (`manifest.md`, `image-index.md`).
//!
//! Run: `cargo test -p berth --test clients -- --test-threads=2`
//! Against CNCF distribution 2.8 instead of berth (to check the tests themselves):
//! `BERTH_TEST_TARGET=distribution cargo test -p berth --test clients`.
//! The clients are installed by `.ci/install-clients`; outside CI a test whose client
//! is missing prints `SKIPPED <test>: <tool> not installed` and passes.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;

use common::*;
use serde_json::Value;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

fn content_type(r: &Resp) -> String {
    r.header("content-type")
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key:?} in {v}"))
}

fn layer_digests(manifest: &Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .unwrap_or_else(|| panic!("no layers in {manifest}"))
        .iter()
        .map(|l| str_field(l, "digest").to_string())
        .collect()
}

/// GET a manifest that must exist (distribution-spec "Pulling manifests").
fn fetch_manifest(reg: &Registry, name: &str, reference: &str) -> (Resp, Value) {
    let r = get_manifest(reg, name, reference);
    assert_eq!(
        r.status,
        200,
        "GET manifest {name}:{reference} must be 200:\n{}",
        r.describe()
    );
    let v = r.json();
    (r, v)
}

// ---------------------------------------------------------------------------------
// 1. Push with docker, pull with podman and skopeo.
// ---------------------------------------------------------------------------------

/// distribution-spec "Push" (blob uploads, "Pushing Manifests") and "Pull" ("Pulling
/// manifests", "Pulling blobs"), Docker schema2 manifests: an image built and pushed by
/// `docker push` comes back through podman and skopeo as the same manifest digest (the
/// one docker printed), the same image (config digest = docker image ID) and
/// byte-identical layer blobs, whose tar holds the busybox that was copied in.
#[test]
fn docker_push_then_podman_and_skopeo_pull_same_digest_and_bytes() {
    const T: &str = "docker_push_then_podman_and_skopeo_pull_same_digest_and_bytes";
    if !require(T, &["docker", "busybox-static", "podman", "skopeo", "tar"]) {
        return;
    }
    let reg = Registry::start();
    let d = docker();
    let name = "team/busybox";
    let image = reg.image(&format!("{name}:v1"));

    let image_id = d.build_busybox_image(&image, &unique("push-pull"));
    let pushed = d.push(&image);

    // The registry serves, under the tag, the manifest docker pushed.
    let (m, manifest) = fetch_manifest(&reg, name, "v1");
    assert_eq!(
        sha256_digest(&m.body),
        pushed,
        "the manifest served for {name}:v1 does not hash to the digest docker push printed"
    );
    assert_eq!(
        m.header("docker-content-digest"),
        Some(pushed.as_str()),
        "Docker-Content-Digest of GET {name}:v1 (spec: SHOULD; docker uses it):\n{}",
        m.describe()
    );
    assert_eq!(content_type(&m), DOCKER_MANIFEST, "{}", m.describe());
    assert_eq!(str_field(&manifest["config"], "digest"), image_id);

    // podman pulls the same manifest and the same image.
    let c = Containers::new();
    run(
        c.podman().args(["pull", "--tls-verify=false", &image]),
        LONG,
    );
    let o = run(
        c.podman().args([
            "image",
            "inspect",
            "--format",
            "{{.Digest}} {{.Id}}",
            &image,
        ]),
        SHORT,
    );
    let mut f = o.stdout.split_whitespace();
    assert_eq!(
        f.next(),
        Some(pushed.as_str()),
        "podman's digest for {image}"
    );
    assert_eq!(
        f.next().map(|id| format!("sha256:{id}")),
        Some(image_id.clone()),
        "podman's image ID differs from docker's"
    );

    // skopeo sees the same digest...
    let o = run(
        skopeo()
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{image}")),
        SHORT,
    );
    assert_eq!(
        str_field(&parse_json(&o), "Digest"),
        pushed,
        "skopeo inspect"
    );
    let raw = run(
        skopeo()
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{image}")),
        SHORT,
    );
    assert_eq!(sha256_digest(raw.stdout.as_bytes()), pushed);
    let raw_manifest = parse_json(&raw);

    // ...and copies it, digests preserved, into an OCI layout.
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("oci");
    run(
        skopeo()
            .args(["copy", "--preserve-digests", "--src-tls-verify=false"])
            .arg(format!("docker://{image}"))
            .arg(format!("oci:{}:v1", layout.display())),
        LONG,
    );
    assert_eq!(layout_manifest_digest(&layout, "v1"), pushed);
    assert_eq!(layout_blob(&layout, &pushed), raw.stdout.as_bytes());

    // Every layer skopeo lists is byte-identical in the layout and in the registry.
    let layers = raw_manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "one COPY layer expected: {raw_manifest}");
    for l in layers {
        let digest = str_field(l, "digest");
        let bytes = layout_blob(&layout, digest);
        assert_eq!(sha256_digest(&bytes), digest, "layer in the OCI layout");
        assert_eq!(Some(bytes.len() as u64), l["size"].as_u64(), "layer size");
        let b = http(
            "GET",
            &reg.url(&format!("/v2/{name}/blobs/{digest}")),
            &[],
            None,
        );
        assert_eq!(b.status, 200, "GET blob {digest}:\n{}", b.describe());
        assert!(
            b.body == bytes,
            "GET /v2/{name}/blobs/{digest} is not byte-identical to what skopeo copied"
        );
    }

    // The layer holds the very busybox that was built in.
    let blob_path = layout
        .join("blobs/sha256")
        .join(&str_field(&layers[0], "digest")["sha256:".len()..]);
    let bb = Command::new("tar")
        .arg("-xzOf")
        .arg(&blob_path)
        .arg("bin/busybox")
        .output()
        .expect("tar");
    assert!(bb.status.success(), "tar: {:?}", bb);
    assert!(
        bb.stdout == fs::read(BUSYBOX).unwrap(),
        "bin/busybox in the pulled layer differs from {BUSYBOX}"
    );
}

// ---------------------------------------------------------------------------------
// 2. docker pull after docker rmi; docker manifest inspect.
// ---------------------------------------------------------------------------------

/// distribution-spec "Pulling manifests" / "Pulling blobs" as Docker does it (HEAD then
/// GET with Docker's Accept list; schema2): after `docker rmi` the daemon no longer
/// has the image, and `docker pull` downloads it again with the same digest and the
/// same image ID; `docker manifest inspect --insecure` shows the pushed manifest.
#[test]
fn docker_pull_after_rmi_gives_same_image_id() {
    const T: &str = "docker_pull_after_rmi_gives_same_image_id";
    if !require(T, &["docker", "busybox-static"]) {
        return;
    }
    let reg = Registry::start();
    let d = docker();
    let name = "team/roundtrip";
    let image = reg.image(&format!("{name}:v1"));

    let image_id = d.build_busybox_image(&image, &unique("rmi"));
    let pushed = d.push(&image);

    run(d.cmd().args(["rmi", &image]), SHORT);
    let gone = run_unchecked(d.cmd().args(["image", "inspect", &image]), SHORT);
    assert!(
        !gone.success(),
        "image still present after docker rmi:\n{}",
        gone.describe()
    );

    let o = run(d.cmd().args(["pull", &image]), LONG);
    assert!(
        o.stdout.contains("Pull complete"),
        "docker pull did not download the layer:\n{}",
        o.describe()
    );
    assert_eq!(
        digest_after(&o.stdout, "Digest: ").as_deref(),
        Some(pushed.as_str()),
        "docker pull printed another digest than docker push:\n{}",
        o.describe()
    );
    assert_eq!(d.image_id(&image), image_id, "image ID after pull");

    // docker manifest inspect, by tag and by digest.
    let (_, served) = fetch_manifest(&reg, name, "v1");
    for reference in [image.clone(), reg.image(&format!("{name}@{pushed}"))] {
        let o = run(
            d.cmd()
                .args(["manifest", "inspect", "--insecure", &reference]),
            SHORT,
        );
        let m = parse_json(&o);
        assert_eq!(str_field(&m, "mediaType"), DOCKER_MANIFEST, "{reference}");
        assert_eq!(str_field(&m["config"], "digest"), image_id, "{reference}");
        assert_eq!(layer_digests(&m), layer_digests(&served), "{reference}");
    }
}

// ---------------------------------------------------------------------------------
// 3. Multi-arch: an index, and platform selection by three clients.
// ---------------------------------------------------------------------------------

fn config_of(reg: &Registry, name: &str, manifest: &Value) -> Value {
    let digest = str_field(&manifest["config"], "digest");
    let r = http(
        "GET",
        &reg.url(&format!("/v2/{name}/blobs/{digest}")),
        &[],
        None,
    );
    assert_eq!(r.status, 200, "GET config blob:\n{}", r.describe());
    assert_eq!(sha256_digest(&r.body), digest);
    r.json()
}

/// Checks an index in the registry: it hashes to `digest`, is served as an OCI index,
/// and lists exactly the two children with their platforms.
fn assert_index(
    reg: &Registry,
    name: &str,
    reference: &str,
    digest: &str,
    children: &[(&str, &str)],
) {
    let (r, index) = fetch_manifest(reg, name, reference);
    assert_eq!(sha256_digest(&r.body), digest, "{name}:{reference}");
    assert_eq!(content_type(&r), OCI_INDEX, "{}", r.describe());
    let listed: BTreeSet<(String, String)> = index["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("no manifests in {index}"))
        .iter()
        .map(|m| {
            (
                str_field(m, "digest").to_string(),
                str_field(&m["platform"], "architecture").to_string(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String)> = children
        .iter()
        .map(|(d, a)| (d.to_string(), a.to_string()))
        .collect();
    assert_eq!(listed, want, "children of {name}:{reference}: {index}");
}

/// image-index.md (platform) and distribution-spec "Pushing Manifests" (an index whose
/// children are pushed first) and "Pulling manifests" by digest: two single-platform
/// images (umoci, pushed by skopeo) merged into an index by `podman manifest push
/// --all`; `docker pull --platform linux/arm64`, `podman pull --arch arm64` and
/// `skopeo inspect --override-arch arm64` each get the arm64 child (by digest and by
/// the config's architecture); `skopeo copy --all` to another repository and back keeps
/// every digest; `buildah manifest push --all` makes an equivalent index.
#[test]
fn multi_arch_index_each_client_gets_the_platform_it_asks_for() {
    const T: &str = "multi_arch_index_each_client_gets_the_platform_it_asks_for";
    if !require(T, &["docker", "podman", "buildah", "skopeo", "umoci"]) {
        return;
    }
    let reg = Registry::start();
    let name = "team/multi";
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let nonce = unique("multi");
    let amd = umoci_image(
        &layout,
        "amd64",
        "amd64",
        &[("/etc/arch", b"amd64\n"), ("/etc/nonce", nonce.as_bytes())],
    );
    let arm = umoci_image(
        &layout,
        "arm64",
        "arm64",
        &[("/etc/arch", b"arm64\n"), ("/etc/nonce", nonce.as_bytes())],
    );
    assert_eq!(
        skopeo_push_layout(&layout, "amd64", &reg.image(&format!("{name}:amd64"))),
        amd
    );
    assert_eq!(
        skopeo_push_layout(&layout, "arm64", &reg.image(&format!("{name}:arm64"))),
        arm
    );
    let (_, arm_manifest) = fetch_manifest(&reg, name, &arm);
    let (_, amd_manifest) = fetch_manifest(&reg, name, &amd);
    let arm_config = str_field(&arm_manifest["config"], "digest").to_string();
    assert_eq!(
        str_field(&config_of(&reg, name, &arm_manifest), "architecture"),
        "arm64"
    );
    assert_eq!(
        str_field(&config_of(&reg, name, &amd_manifest), "architecture"),
        "amd64"
    );

    // podman manifest create/add/push --all -> name:latest
    let c = Containers::new();
    let digest_file = dir.path().join("podman.digest");
    run(
        c.podman().args(["manifest", "create", "berth-test-list"]),
        SHORT,
    );
    for arch in ["amd64", "arm64"] {
        run(
            c.podman()
                .args(["manifest", "add", "--tls-verify=false", "--arch", arch])
                .arg("berth-test-list")
                .arg(format!("docker://{}", reg.image(&format!("{name}:{arch}")))),
            SHORT,
        );
    }
    run(
        c.podman()
            .args([
                "manifest",
                "push",
                "--all",
                "--tls-verify=false",
                "--format",
                "oci",
            ])
            .arg("--digestfile")
            .arg(&digest_file)
            .arg("berth-test-list")
            .arg(format!("docker://{}", reg.image(&format!("{name}:latest")))),
        LONG,
    );
    let index = fs::read_to_string(&digest_file).unwrap().trim().to_string();
    let children = [(amd.as_str(), "amd64"), (arm.as_str(), "arm64")];
    assert_index(&reg, name, "latest", &index, &children);
    let latest = reg.image(&format!("{name}:latest"));

    // docker pull --platform linux/arm64
    let d = docker();
    let o = run(
        d.cmd().args(["pull", "--platform", "linux/arm64", &latest]),
        LONG,
    );
    assert_eq!(
        digest_after(&o.stdout, "Digest: ").as_deref(),
        Some(index.as_str()),
        "docker pull by tag reports the index digest:\n{}",
        o.describe()
    );
    let o = run(
        d.cmd().args([
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{.Os}}/{{.Architecture}}",
            &latest,
        ]),
        SHORT,
    );
    assert_eq!(
        o.stdout.trim(),
        format!("{arm_config} linux/arm64"),
        "docker pull --platform linux/arm64 got another image"
    );

    // podman pull --arch arm64
    run(
        c.podman()
            .args(["pull", "--tls-verify=false", "--arch", "arm64", &latest]),
        LONG,
    );
    let o = run(
        c.podman().args([
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{.Architecture}} {{json .RepoDigests}}",
            &latest,
        ]),
        SHORT,
    );
    let mut f = o.stdout.splitn(3, ' ');
    assert_eq!(
        f.next().map(|id| format!("sha256:{id}")),
        Some(arm_config.clone()),
        "podman pull --arch arm64: image ID\n{}",
        o.describe()
    );
    assert_eq!(
        f.next(),
        Some("arm64"),
        "podman pull --arch arm64: architecture"
    );
    let repo_digests: Vec<String> =
        serde_json::from_str(f.next().unwrap_or("[]").trim()).unwrap_or_default();
    let want = reg.image(&format!("{name}@{arm}"));
    assert!(
        repo_digests.contains(&want),
        "podman pull --arch arm64: RepoDigests {repo_digests:?} lack {want}"
    );

    // skopeo inspect --override-arch, both ways (the choice really follows the arch).
    for (arch, manifest, child) in [
        ("arm64", &arm_manifest, &arm),
        ("amd64", &amd_manifest, &amd),
    ] {
        let o = run(
            skopeo()
                .args(["inspect", "--tls-verify=false", "--override-arch", arch])
                .arg(format!("docker://{latest}")),
            SHORT,
        );
        let v = parse_json(&o);
        assert_eq!(
            str_field(&v, "Architecture"),
            arch,
            "skopeo --override-arch {arch}"
        );
        let layers: Vec<String> = v["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            layers,
            layer_digests(manifest),
            "skopeo --override-arch {arch}: layers of {child}"
        );
        let o = run(
            skopeo()
                .args([
                    "inspect",
                    "--tls-verify=false",
                    "--config",
                    "--raw",
                    "--override-arch",
                    arch,
                ])
                .arg(format!("docker://{latest}")),
            SHORT,
        );
        assert_eq!(
            sha256_digest(o.stdout.as_bytes()),
            str_field(&manifest["config"], "digest"),
            "skopeo --override-arch {arch} --config: another config"
        );
    }

    // skopeo copy --all to another repository and back: every digest is kept.
    let copy = "team/multi-copy";
    for (from, to) in [
        (latest.clone(), reg.image(&format!("{copy}:latest"))),
        (
            reg.image(&format!("{copy}:latest")),
            reg.image(&format!("{name}:back")),
        ),
    ] {
        let df = dir.path().join("copy.digest");
        run(
            skopeo()
                .args(["copy", "--all", "--preserve-digests"])
                .args([
                    "--src-tls-verify=false",
                    "--dest-tls-verify=false",
                    "--digestfile",
                ])
                .arg(&df)
                .arg(format!("docker://{from}"))
                .arg(format!("docker://{to}")),
            LONG,
        );
        assert_eq!(
            fs::read_to_string(&df).unwrap().trim(),
            index,
            "skopeo copy --all {from} -> {to} changed the index digest"
        );
    }
    assert_index(&reg, copy, "latest", &index, &children);
    assert_index(&reg, name, "back", &index, &children);
    for child in [&amd, &arm] {
        let r = http(
            "HEAD",
            &reg.url(&format!("/v2/{copy}/manifests/{child}")),
            &[("Accept", MANIFEST_ACCEPT)],
            None,
        );
        assert_eq!(r.status, 200, "child copied with --all:\n{}", r.describe());
        assert_eq!(r.header("docker-content-digest"), Some(child.as_str()));
    }

    // buildah manifest create/add/push --all
    let bname = "team/multi-buildah";
    let bdf = dir.path().join("buildah.digest");
    run(
        c.buildah().args(["manifest", "create", "berth-test-blist"]),
        SHORT,
    );
    for child in ["amd64", "arm64"] {
        run(
            c.buildah()
                .args(["manifest", "add", "--tls-verify=false", "berth-test-blist"])
                .arg(format!(
                    "docker://{}",
                    reg.image(&format!("{name}:{child}"))
                )),
            SHORT,
        );
    }
    run(
        c.buildah()
            .args([
                "manifest",
                "push",
                "--all",
                "--tls-verify=false",
                "--format",
                "oci",
            ])
            .arg("--digestfile")
            .arg(&bdf)
            .arg("berth-test-blist")
            .arg(format!(
                "docker://{}",
                reg.image(&format!("{bname}:latest"))
            )),
        LONG,
    );
    let bindex = fs::read_to_string(&bdf).unwrap().trim().to_string();
    assert_index(&reg, bname, "latest", &bindex, &children);
    let o = run(
        skopeo()
            .args(["inspect", "--tls-verify=false", "--override-arch", "arm64"])
            .arg(format!(
                "docker://{}",
                reg.image(&format!("{bname}:latest"))
            )),
        SHORT,
    );
    let v = parse_json(&o);
    assert_eq!(str_field(&v, "Architecture"), "arm64");
    assert_eq!(
        v["Layers"],
        serde_json::json!(layer_digests(&arm_manifest)),
        "arm64 child of the buildah index"
    );
}

// ---------------------------------------------------------------------------------
// 4. Delete by digest.
// ---------------------------------------------------------------------------------

/// distribution-spec "Content Management" / "Deleting Manifests": `skopeo delete` by
/// digest succeeds, and afterwards pulling that digest is 404 with code
/// MANIFEST_UNKNOWN (and skopeo says "manifest unknown").
#[test]
fn delete_manifest_by_digest_then_pull_by_digest_is_manifest_unknown() {
    const T: &str = "delete_manifest_by_digest_then_pull_by_digest_is_manifest_unknown";
    if !require(T, &["skopeo", "umoci"]) {
        return;
    }
    let reg = Registry::start();
    let name = "team/deleteme";
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let nonce = unique("delete");
    let digest = umoci_image(&layout, "v1", "amd64", &[("/etc/nonce", nonce.as_bytes())]);
    assert_eq!(
        skopeo_push_layout(&layout, "v1", &reg.image(&format!("{name}:v1"))),
        digest
    );
    let by_digest = reg.image(&format!("{name}@{digest}"));
    run(
        skopeo()
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{by_digest}")),
        SHORT,
    );

    run(
        skopeo()
            .args(["delete", "--tls-verify=false"])
            .arg(format!("docker://{by_digest}")),
        SHORT,
    );

    for method in ["GET", "HEAD"] {
        let r = http(
            method,
            &reg.url(&format!("/v2/{name}/manifests/{digest}")),
            &[("Accept", MANIFEST_ACCEPT)],
            None,
        );
        assert_eq!(
            r.status,
            404,
            "{method} of a deleted manifest must be 404:\n{}",
            r.describe()
        );
        if method == "GET" {
            assert!(
                r.oci_error_codes().iter().any(|c| c == "MANIFEST_UNKNOWN"),
                "GET of a deleted manifest must carry code MANIFEST_UNKNOWN:\n{}",
                r.describe()
            );
        }
    }
    let o = run_unchecked(
        skopeo()
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{by_digest}")),
        SHORT,
    );
    assert!(
        !o.success(),
        "skopeo still reads the deleted manifest:\n{}",
        o.describe()
    );
    assert!(
        o.stderr.to_ascii_lowercase().contains("manifest unknown"),
        "skopeo's error should say \"manifest unknown\":\n{}",
        o.describe()
    );
}

// ---------------------------------------------------------------------------------
// 5. Referrers with the oras Python SDK.
// ---------------------------------------------------------------------------------

/// distribution-spec "Listing Referrers" (and image-spec manifest.md `subject`,
/// `artifactType`): artifacts pushed by the oras SDK with a `subject` are listed by
/// `GET /v2/<name>/referrers/<digest>` as an OCI index of descriptors carrying
/// mediaType, digest, size, artifactType (the manifest's, else its config.mediaType)
/// and the manifest's annotations; `?artifactType=` filters and says so with
/// `OCI-Filters-Applied: artifactType`; a digest nothing refers to gives an empty list.
#[test]
fn oras_artifacts_with_subject_are_listed_by_referrers_api() {
    const T: &str = "oras_artifacts_with_subject_are_listed_by_referrers_api";
    if !require(T, &["oras", "skopeo", "umoci"]) {
        return;
    }
    let reg = Registry::start();
    let name = "team/app";
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let nonce = unique("referrers");
    let subject = umoci_image(&layout, "v1", "amd64", &[("/etc/nonce", nonce.as_bytes())]);
    assert_eq!(
        skopeo_push_layout(&layout, "v1", &reg.image(&format!("{name}:v1"))),
        subject
    );
    let (sm, _) = fetch_manifest(&reg, name, &subject);
    let referrers_url = |query: &str| reg.url(&format!("/v2/{name}/referrers/{subject}{query}"));

    if !reg.is_distribution() {
        // "If a query results in no matching referrers, an empty manifest list MUST be
        // returned."
        let r = http("GET", &referrers_url(""), &[], None);
        assert_eq!(
            r.status,
            200,
            "referrers before any artifact:\n{}",
            r.describe()
        );
        assert_eq!(
            r.json()["manifests"],
            serde_json::json!([]),
            "referrers before any artifact:\n{}",
            r.describe()
        );
    }

    let work = dir.path().join("oras");
    fs::create_dir_all(&work).unwrap();
    let o = run(
        Command::new(oras_python())
            .arg(fixture("oras_referrers.py"))
            .arg(&reg.host)
            .arg(name)
            .arg(&subject)
            .arg(sm.body.len().to_string())
            .arg(content_type(&sm))
            .arg(&work),
        LONG,
    );
    let pushed: Value = serde_json::from_str(o.stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("oras script output ({e}):\n{}", o.describe()));

    // What the SDK pushed, as stored: each artifact points at the subject.
    let mut expected = Vec::new();
    for key in ["sbom", "sig"] {
        let a = &pushed[key];
        let (r, m) = fetch_manifest(&reg, name, str_field(a, "tag"));
        assert_eq!(str_field(&m["subject"], "digest"), subject, "{key}: {m}");
        expected.push(serde_json::json!({
            "mediaType": OCI_MANIFEST,
            "digest": sha256_digest(&r.body),
            "size": r.body.len(),
            "artifactType": a["artifactType"],
            "annotations": a["annotations"],
        }));
    }

    if reg.is_distribution() {
        note(
            T,
            "distribution 2.8 has no referrers API; checked only that oras pushed and \
             pulled the artifacts with their subject",
        );
        return;
    }

    // The fields the spec requires of each descriptor; any others are allowed.
    let by_digest = |v: &Value| -> Vec<Value> {
        let mut list: Vec<Value> = v["manifests"]
            .as_array()
            .unwrap_or_else(|| panic!("no manifests in {v}"))
            .iter()
            .map(|d| {
                serde_json::json!({
                    "mediaType": d["mediaType"],
                    "digest": d["digest"],
                    "size": d["size"],
                    "artifactType": d["artifactType"],
                    "annotations": d["annotations"],
                })
            })
            .collect();
        list.sort_by_key(|d| d["digest"].as_str().unwrap_or_default().to_string());
        list
    };
    let mut want_all = expected.clone();
    want_all.sort_by_key(|d| d["digest"].as_str().unwrap_or_default().to_string());

    let r = http("GET", &referrers_url(""), &[], None);
    assert_eq!(r.status, 200, "GET referrers:\n{}", r.describe());
    assert_eq!(
        content_type(&r),
        OCI_INDEX,
        "referrers Content-Type:\n{}",
        r.describe()
    );
    let v = r.json();
    assert_eq!(v["schemaVersion"], 2, "{}", r.describe());
    assert_eq!(v["mediaType"], OCI_INDEX, "{}", r.describe());
    assert_eq!(
        by_digest(&v),
        want_all,
        "referrers of {subject} (want the SBOM and the signature, with artifactType and \
         annotations):\n{}",
        r.describe()
    );
    assert!(
        r.header("oci-filters-applied").is_none(),
        "OCI-Filters-Applied on an unfiltered listing:\n{}",
        r.describe()
    );

    for want in &expected {
        let at = str_field(want, "artifactType");
        let r = http(
            "GET",
            &referrers_url(&format!("?artifactType={}", query_escape(at))),
            &[],
            None,
        );
        assert_eq!(
            r.status,
            200,
            "GET referrers?artifactType={at}:\n{}",
            r.describe()
        );
        assert_eq!(
            r.header("oci-filters-applied"),
            Some("artifactType"),
            "a filtered listing must say OCI-Filters-Applied: artifactType:\n{}",
            r.describe()
        );
        assert_eq!(
            by_digest(&r.json()),
            vec![want.clone()],
            "referrers?artifactType={at} must list exactly that artifact:\n{}",
            r.describe()
        );
    }
}

// ---------------------------------------------------------------------------------
// 6. Tag listing with pagination.
// ---------------------------------------------------------------------------------

/// distribution-spec "Listing Tags" (pagination with `n`, RFC 5988 `Link` with
/// rel="next"): one image under 25 tags, walked 7 at a time by following the Link
/// header, lists every tag exactly once, in lexical order, and the last page has no
/// Link.
#[test]
fn tag_list_pagination_follows_link_header_in_lexical_order() {
    const T: &str = "tag_list_pagination_follows_link_header_in_lexical_order";
    if !require(T, &["skopeo", "umoci"]) {
        return;
    }
    // Lower-case only, so "lexical" (case-insensitive) and byte order agree; chosen so
    // that numeric or length order would differ from lexical order.
    let tags = [
        "v2", "v10", "v1", "latest", "1.10", "1.9", "1.2", "a_b", "a-b", "a.b", "alpha", "b",
        "beta", "rc", "stable", "v0", "v1.0", "v1.0.1", "v1-rc", "v20", "v3", "x", "z9", "0", "00",
    ];
    assert_eq!(tags.len(), 25);
    let reg = Registry::start();
    let name = "team/tags";
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let nonce = unique("tags");
    let digest = umoci_image(&layout, "img", "amd64", &[("/etc/nonce", nonce.as_bytes())]);
    assert_eq!(
        skopeo_push_layout(&layout, "img", &reg.image(&format!("{name}:{}", tags[0]))),
        digest
    );
    let manifest = layout_blob(&layout, &digest);
    for tag in &tags[1..] {
        let r = http(
            "PUT",
            &reg.url(&format!("/v2/{name}/manifests/{tag}")),
            &[("Content-Type", OCI_MANIFEST)],
            Some(&manifest),
        );
        assert_eq!(
            r.status,
            201,
            "PUT manifest as tag {tag}:\n{}",
            r.describe()
        );
    }

    let mut url = reg.url(&format!("/v2/{name}/tags/list?n=7"));
    let mut listed: Vec<String> = Vec::new();
    let mut pages: Vec<usize> = Vec::new();
    loop {
        assert!(pages.len() < 30, "Link chain does not end: pages {pages:?}");
        let r = http("GET", &url, &[], None);
        assert_eq!(r.status, 200, "{}", r.describe());
        let v = r.json();
        assert_eq!(v["name"], name, "{}", r.describe());
        let page: Vec<String> = v["tags"]
            .as_array()
            .unwrap_or_else(|| panic!("no tags array:\n{}", r.describe()))
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        pages.push(page.len());
        listed.extend(page);
        match r.header("link").and_then(link_next) {
            Some(next) => url = absolute(&reg, &next),
            None => break,
        }
    }

    let mut want: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    want.sort();
    let mut got_sorted = listed.clone();
    got_sorted.sort();
    assert_eq!(
        got_sorted, want,
        "every tag exactly once (pages of {pages:?}); listed {listed:?}"
    );

    if reg.is_distribution() {
        note(
            T,
            "distribution 2.8 ignores n and does not sort tags; checked only that every \
             tag is listed exactly once",
        );
        return;
    }
    assert!(
        pages.iter().all(|&p| p <= 7),
        "with n=7 no page may hold more than 7 tags: pages {pages:?}"
    );
    assert_eq!(
        pages[0], 7,
        "the first page of n=7 must hold 7 tags: pages {pages:?}"
    );
    assert_eq!(listed, want, "tags must come in lexical order across pages");

    // "When n is zero, this endpoint MUST return an empty list, and MUST NOT include
    // a Link header."
    let r = http(
        "GET",
        &reg.url(&format!("/v2/{name}/tags/list?n=0")),
        &[],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(
        r.json()["tags"],
        serde_json::json!([]),
        "n=0:\n{}",
        r.describe()
    );
    assert!(
        r.header("link").is_none(),
        "n=0 must have no Link:\n{}",
        r.describe()
    );
}

// ---------------------------------------------------------------------------------
// 7. A blob whose digest does not match is refused.
// ---------------------------------------------------------------------------------

/// distribution-spec "Pushing a blob monolithically" (POST then PUT `?digest=`, and
/// the single POST `?digest=`) and error code DIGEST_INVALID: content that does not
/// hash to the given digest is refused with 400 and code DIGEST_INVALID in the OCI
/// error body, and nothing becomes readable under either digest; the same bytes with
/// the right digest are then accepted (201) and served back.
#[test]
fn monolithic_upload_with_wrong_digest_is_digest_invalid() {
    const T: &str = "monolithic_upload_with_wrong_digest_is_digest_invalid";
    if !require(T, &[]) {
        return;
    }
    let reg = Registry::start();
    let name = "team/digests";
    let content = format!("berth test blob {}\n", unique("blob")).into_bytes();
    let right = sha256_digest(&content);
    let wrong = sha256_digest(b"some other content");
    let octets = [("Content-Type", "application/octet-stream")];

    let assert_digest_invalid = |r: &Resp, what: &str| {
        assert_eq!(r.status, 400, "{what} must be 400:\n{}", r.describe());
        assert!(
            r.oci_error_codes().iter().any(|c| c == "DIGEST_INVALID"),
            "{what} must carry code DIGEST_INVALID in {{\"errors\":[...]}}:\n{}",
            r.describe()
        );
    };
    let start_upload = || {
        let r = http(
            "POST",
            &reg.url(&format!("/v2/{name}/blobs/uploads/")),
            &[],
            None,
        );
        assert_eq!(r.status, 202, "POST blobs/uploads/:\n{}", r.describe());
        let loc = r
            .header("location")
            .unwrap_or_else(|| panic!("202 without Location:\n{}", r.describe()));
        absolute(&reg, loc)
    };
    let with_digest = |loc: &str, d: &str| {
        let sep = if loc.contains('?') { '&' } else { '?' };
        format!("{loc}{sep}digest={}", query_escape(d))
    };

    // POST, then PUT with the whole body and a digest it does not hash to.
    let loc = start_upload();
    let r = http("PUT", &with_digest(&loc, &wrong), &octets, Some(&content));
    assert_digest_invalid(&r, "PUT upload?digest=<wrong digest>");

    // Single POST with ?digest= (a registry MAY instead answer 202 and a session).
    let r = http(
        "POST",
        &reg.url(&format!(
            "/v2/{name}/blobs/uploads/?digest={}",
            query_escape(&wrong)
        )),
        &octets,
        Some(&content),
    );
    match r.status {
        400 => assert_digest_invalid(&r, "POST blobs/uploads/?digest=<wrong digest>"),
        202 => note(
            T,
            "single-POST upload not supported (202): the spec allows that",
        ),
        _ => panic!(
            "POST blobs/uploads/?digest=<wrong digest> must be 400 DIGEST_INVALID (or 202 \
             when single POST is unsupported):\n{}",
            r.describe()
        ),
    }

    for d in [&wrong, &right] {
        let r = http(
            "HEAD",
            &reg.url(&format!("/v2/{name}/blobs/{d}")),
            &[],
            None,
        );
        assert_eq!(
            r.status,
            404,
            "after refused uploads no blob may exist under {d}:\n{}",
            r.describe()
        );
    }

    // The same bytes with the right digest are accepted and served.
    let loc = start_upload();
    let r = http("PUT", &with_digest(&loc, &right), &octets, Some(&content));
    assert_eq!(
        r.status,
        201,
        "PUT upload?digest=<right digest>:\n{}",
        r.describe()
    );
    let r = http(
        "GET",
        &reg.url(&format!("/v2/{name}/blobs/{right}")),
        &[],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(r.body == content, "GET blob returned other bytes");
}

/// Issue 14, "the full existing client tests pass on the PostgreSQL + S3 pair": every
/// other test of this file again, in a child process whose servers run on a fresh
/// PostgreSQL database and S3 (SeaweedFS) prefix each (`common::scale_out_backends`).
#[test]
fn every_test_of_this_file_on_postgres_and_s3() {
    berth_test_support::rerun_on_postgres_s3("every_test_of_this_file_on_postgres_and_s3");
}
