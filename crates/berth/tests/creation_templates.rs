//! Repository creation templates end to end (issue 10; ECR_REFERENCE.md §2.7 and the
//! botocore shapes `RepositoryCreationTemplate`, `RCTAppliedFor`), on one secured server:
//!
//! - the real AWS CLI manages templates: `create-repository-creation-template` (ROOT and
//!   a prefix with a trailing `/`, every member), `TemplateAlreadyExistsException` for a
//!   second template with one prefix, `InvalidParameterException` for a prefix off the
//!   model's pattern, an `appliedFor` outside the enum, and a lifecycle policy that ECR's
//!   grammar refuses; `describe-repository-creation-templates` (all, by prefix, paged);
//!   `update-repository-creation-template` changes the given members and keeps the
//!   others; `TemplateNotFoundException` for a missing prefix; `delete-…` returns it;
//! - a skopeo push to a missing repository (create on push, `CREATE_ON_PUSH`) creates it
//!   with the longest matching template's settings, resource tags, repository policy and
//!   lifecycle policy, visible through `describe-repositories`,
//!   `list-tags-for-resource`, `get-repository-policy` and `get-lifecycle-policy`; the
//!   template's tag immutability holds for the next push; a repository no prefix names
//!   gets the `ROOT` template;
//! - a push that another registry's replication sends (`X-Berth-Replication-Source`,
//!   how a destination receives replicated images, see tests/replication.rs) creates the
//!   repository with the templates applied for `REPLICATION` only: a `CREATE_ON_PUSH`-only
//!   template with a longer prefix does not apply to it;
//! - templates apply only at creation: after `delete-…`, an existing repository keeps its
//!   settings and a new one gets the fallback.
//!
//! Run: `cargo test -p berth --test creation_templates`. The AWS CLI, skopeo and umoci come
//! from `.ci/install-clients`; outside CI a missing client makes the test print `SKIPPED`.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::process::Command;

const LIFECYCLE: &str = r#"{"rules":[{"rulePriority":1,"description":"keep ten","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":10},"action":{"type":"expire"}}]}"#;

/// A repository policy letting the registry's own account pull.
fn policy(account: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"pull","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":["ecr:BatchGetImage"]}}]}}"#
    )
}

fn aws(reg: &Registry, args: &[&str]) -> Output {
    let mut c = Command::new(aws_cli());
    aws_admin_env(reg, &mut c);
    c.args(["--endpoint-url", &reg.url(""), "--output", "json", "ecr"])
        .args(args);
    run_unchecked(&mut c, SHORT)
}

fn ok(reg: &Registry, args: &[&str]) -> Value {
    let o = aws(reg, args);
    assert!(o.success(), "{}\n{}", o.describe(), reg.log_tail());
    if o.stdout.trim().is_empty() {
        Value::Null
    } else {
        parse_json(&o)
    }
}

fn fails(reg: &Registry, args: &[&str], kind: &str) -> String {
    let o = aws(reg, args);
    assert!(
        !o.success() && o.stderr.contains(&format!("An error occurred ({kind})")),
        "expected {kind}:\n{}",
        o.describe()
    );
    o.stderr
}

fn admin_key(reg: &Registry) -> (String, String) {
    access_key(&fs::read_to_string(reg.data_dir().join("admin-credentials")).unwrap())
}

/// skopeo copy of `layout:tag` to `repo:tag` with the administrator's key.
fn skopeo_push(reg: &Registry, layout: &Path, tag: &str, repo: &str) -> Output {
    skopeo_copy_tag(reg, layout, tag, repo, tag)
}

/// Pushes `layout:tag` to `repo:tag` as a destination receives replicated images: the
/// OCI API with `X-Berth-Replication-Source` (the administrator may `ecr:ReplicateImage`).
fn push_as_replication(reg: &Registry, layout: &Path, tag: &str, repo: &str) {
    let auth = basic_auth(&admin_key(reg));
    let source = ("X-Berth-Replication-Source", "us-west-2/222222222222");
    let digest = layout_manifest_digest(layout, tag);
    let manifest = layout_blob(layout, &digest);
    let parsed: Value = serde_json::from_slice(&manifest).unwrap();
    let blobs = std::iter::once(&parsed["config"]).chain(parsed["layers"].as_array().unwrap());
    for b in blobs {
        let d = b["digest"].as_str().unwrap();
        let r = http(
            "POST",
            &reg.url(&format!("/v2/{repo}/blobs/uploads/?digest={d}")),
            &[
                ("Authorization", &auth),
                source,
                ("Content-Type", "application/octet-stream"),
            ],
            Some(&layout_blob(layout, d)),
        );
        assert_eq!(r.status, 201, "{}", r.describe());
    }
    let r = http(
        "PUT",
        &reg.url(&format!("/v2/{repo}/manifests/{tag}")),
        &[
            ("Authorization", &auth),
            source,
            (
                "Content-Type",
                parsed["mediaType"]
                    .as_str()
                    .unwrap_or("application/vnd.oci.image.manifest.v1+json"),
            ),
        ],
        Some(&manifest),
    );
    assert_eq!(r.status, 201, "{}\n{}", r.describe(), reg.log_tail());
}

fn repository(reg: &Registry, name: &str) -> Value {
    ok(reg, &["describe-repositories", "--repository-names", name])["repositories"][0].clone()
}

fn resource_tags(reg: &Registry, name: &str) -> Value {
    let arn = repository(reg, name)["repositoryArn"]
        .as_str()
        .unwrap()
        .to_string();
    ok(reg, &["list-tags-for-resource", "--resource-arn", &arn])["tags"].clone()
}

#[test]
fn templates_apply_when_push_or_replication_creates_a_repository() {
    const T: &str = "templates_apply_when_push_or_replication_creates_a_repository";
    if !require(T, &["aws", "skopeo", "umoci"]) {
        return;
    }
    let reg = Registry::start_secured(&[]);
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    umoci_image(&layout, "v1", "amd64", &[("/etc/one", b"one")]);
    umoci_image(&layout, "v2", "amd64", &[("/etc/two", b"two")]);
    umoci_image(&layout, "dev-1", "amd64", &[("/etc/dev", b"dev")]);

    // CreateRepositoryCreationTemplate: ROOT for pushes and replication, `team/` (the
    // trailing slash is implied and dropped) with every member for pushes only.
    let root = ok(
        &reg,
        &[
            "create-repository-creation-template",
            "--prefix",
            "ROOT",
            "--applied-for",
            "CREATE_ON_PUSH",
            "REPLICATION",
            "--image-tag-mutability",
            "IMMUTABLE",
            "--resource-tags",
            "Key=origin,Value=root",
        ],
    );
    let account = root["registryId"].as_str().unwrap().to_string();
    assert_eq!(account.len(), 12, "{root}");
    let policy = policy(&account);
    let t = &root["repositoryCreationTemplate"];
    assert_eq!(t["prefix"], "ROOT");
    assert_eq!(t["appliedFor"], json!(["CREATE_ON_PUSH", "REPLICATION"]));
    assert_eq!(
        t["encryptionConfiguration"]["encryptionType"], "AES256",
        "{t}"
    );
    assert!(
        t["createdAt"].is_number() && t["updatedAt"].is_number(),
        "{t}"
    );
    let team = ok(
        &reg,
        &[
            "create-repository-creation-template",
            "--prefix",
            "team/",
            "--description",
            "team repositories",
            "--applied-for",
            "CREATE_ON_PUSH",
            "--image-tag-mutability",
            "IMMUTABLE_WITH_EXCLUSION",
            "--image-tag-mutability-exclusion-filters",
            "filterType=WILDCARD,filter=dev-*",
            "--resource-tags",
            "Key=team,Value=a",
            "Key=cost,Value=42",
            "--encryption-configuration",
            "encryptionType=AES256",
            "--repository-policy",
            &policy,
            "--lifecycle-policy",
            LIFECYCLE,
            "--custom-role-arn",
            "arn:aws:iam::111111111111:role/ecr-templates",
        ],
    );
    let t = &team["repositoryCreationTemplate"];
    assert_eq!(t["prefix"], "team");
    assert_eq!(
        t["imageTagMutabilityExclusionFilters"],
        json!([{"filterType": "WILDCARD", "filter": "dev-*"}])
    );
    assert_eq!(
        t["customRoleArn"],
        "arn:aws:iam::111111111111:role/ecr-templates"
    );
    assert_eq!(t["lifecyclePolicy"], LIFECYCLE);

    // ECR's errors: one template per prefix; the model's patterns and enums; the
    // lifecycle grammar.
    let e = fails(
        &reg,
        &[
            "create-repository-creation-template",
            "--prefix",
            "team",
            "--applied-for",
            "REPLICATION",
        ],
        "TemplateAlreadyExistsException",
    );
    assert!(e.contains("prefix 'team' already exists"), "{e}");
    let e = fails(
        &reg,
        &[
            "create-repository-creation-template",
            "--prefix",
            "Team",
            "--applied-for",
            "REPLICATION",
        ],
        "InvalidParameterException",
    );
    assert!(e.contains("prefix"), "{e}");
    fails(
        &reg,
        &[
            "create-repository-creation-template",
            "--prefix",
            "x",
            "--applied-for",
            "PUSH",
        ],
        "InvalidParameterException",
    );
    let e = fails(
        &reg,
        &[
            "create-repository-creation-template",
            "--prefix",
            "x",
            "--applied-for",
            "REPLICATION",
            "--lifecycle-policy",
            r#"{"rules":[]}"#,
        ],
        "InvalidParameterException",
    );
    assert!(e.contains("Lifecycle policy validation failure"), "{e}");
    // Its tags go onto every repository made from it: ECR's 50 per repository.
    let many: Vec<String> = (0..51).map(|i| format!("Key=k{i},Value=v")).collect();
    let mut args = vec![
        "create-repository-creation-template",
        "--prefix",
        "many",
        "--applied-for",
        "CREATE_ON_PUSH",
        "--resource-tags",
    ];
    args.extend(many.iter().map(String::as_str));
    let e = fails(&reg, &args, "TooManyTagsException");
    assert!(e.contains("51 tags given"), "{e}");

    // DescribeRepositoryCreationTemplates: prefix order, a filter, pages of one (the CLI
    // follows nextToken by itself; --no-paginate shows the first page and its token).
    let all = ok(&reg, &["describe-repository-creation-templates"]);
    let prefixes: Vec<&str> = all["repositoryCreationTemplates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["prefix"].as_str().unwrap())
        .collect();
    assert_eq!(prefixes, ["ROOT", "team"]);
    let one = ok(
        &reg,
        &[
            "describe-repository-creation-templates",
            "--prefixes",
            "team/",
        ],
    );
    assert_eq!(
        one["repositoryCreationTemplates"][0]["description"],
        "team repositories"
    );
    assert_eq!(
        one["repositoryCreationTemplates"].as_array().unwrap().len(),
        1
    );
    let page = ok(
        &reg,
        &[
            "describe-repository-creation-templates",
            "--max-results",
            "1",
            "--no-paginate",
        ],
    );
    assert_eq!(
        page["repositoryCreationTemplates"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(page["nextToken"].is_string(), "{page}");

    // UpdateRepositoryCreationTemplate: given members change, the others stay.
    let updated = ok(
        &reg,
        &[
            "update-repository-creation-template",
            "--prefix",
            "team",
            "--description",
            "now",
        ],
    );
    let t = &updated["repositoryCreationTemplate"];
    assert_eq!(t["description"], "now");
    assert_eq!(t["imageTagMutability"], "IMMUTABLE_WITH_EXCLUSION");
    assert_eq!(
        t["resourceTags"],
        json!([{"Key": "team", "Value": "a"}, {"Key": "cost", "Value": "42"}])
    );
    let e = fails(
        &reg,
        &[
            "update-repository-creation-template",
            "--prefix",
            "nothere",
            "--description",
            "x",
        ],
        "TemplateNotFoundException",
    );
    assert!(e.contains("prefix 'nothere' does not exist"), "{e}");

    // Create on push (skopeo): `team/app` gets the `team` template whole.
    let o = skopeo_push(&reg, &layout, "v1", "team/app");
    assert!(o.success(), "{}\n{}", o.describe(), reg.log_tail());
    let repo = repository(&reg, "team/app");
    assert_eq!(
        repo["imageTagMutability"], "IMMUTABLE_WITH_EXCLUSION",
        "{repo}"
    );
    assert_eq!(
        repo["imageTagMutabilityExclusionFilters"],
        json!([{"filterType": "WILDCARD", "filter": "dev-*"}])
    );
    let mut tags = resource_tags(&reg, "team/app").as_array().unwrap().clone();
    tags.sort_by_key(|t| t["Key"].as_str().unwrap().to_string());
    assert_eq!(
        tags,
        [
            json!({"Key": "cost", "Value": "42"}),
            json!({"Key": "team", "Value": "a"})
        ]
    );
    let lc = ok(
        &reg,
        &["get-lifecycle-policy", "--repository-name", "team/app"],
    );
    assert_eq!(lc["lifecyclePolicyText"], LIFECYCLE);
    let got = ok(
        &reg,
        &["get-repository-policy", "--repository-name", "team/app"],
    );
    assert_eq!(got["policyText"], policy);
    // The template's immutability holds: `v1` cannot move, `dev-*` tags can.
    let o = skopeo_push(&reg, &layout, "v2", "team/app");
    assert!(o.success(), "{}", o.describe());
    let r = skopeo_copy_tag(&reg, &layout, "v2", "team/app", "v1");
    assert!(!r.success(), "an immutable tag moved:\n{}", r.describe());
    assert!(
        r.stderr.contains("immutable") || r.stderr.contains("TAG_INVALID"),
        "{}",
        r.describe()
    );
    assert!(skopeo_copy_tag(&reg, &layout, "v2", "team/app", "dev-1").success());

    // A repository no prefix names gets ROOT's settings (immutable tags, its tag).
    assert!(skopeo_push(&reg, &layout, "v1", "other/app").success());
    let repo = repository(&reg, "other/app");
    assert_eq!(repo["imageTagMutability"], "IMMUTABLE");
    assert_eq!(
        resource_tags(&reg, "other/app"),
        json!([{"Key": "origin", "Value": "root"}])
    );
    fails(
        &reg,
        &["get-lifecycle-policy", "--repository-name", "other/app"],
        "LifecyclePolicyNotFoundException",
    );

    // Created by replication: only templates applied for REPLICATION count, so
    // `team/replicated` gets ROOT, not the longer CREATE_ON_PUSH-only `team`.
    push_as_replication(&reg, &layout, "v1", "team/replicated");
    let repo = repository(&reg, "team/replicated");
    assert_eq!(repo["imageTagMutability"], "IMMUTABLE", "{repo}");
    assert_eq!(
        resource_tags(&reg, "team/replicated"),
        json!([{"Key": "origin", "Value": "root"}])
    );
    fails(
        &reg,
        &[
            "get-repository-policy",
            "--repository-name",
            "team/replicated",
        ],
        "RepositoryPolicyNotFoundException",
    );

    // DeleteRepositoryCreationTemplate returns the template; settings applied at
    // creation stay; a new repository under the prefix now gets ROOT's.
    let deleted = ok(
        &reg,
        &["delete-repository-creation-template", "--prefix", "team"],
    );
    assert_eq!(deleted["repositoryCreationTemplate"]["description"], "now");
    fails(
        &reg,
        &["delete-repository-creation-template", "--prefix", "team"],
        "TemplateNotFoundException",
    );
    assert_eq!(
        repository(&reg, "team/app")["imageTagMutability"],
        "IMMUTABLE_WITH_EXCLUSION"
    );
    assert!(skopeo_push(&reg, &layout, "v1", "team/next").success());
    assert_eq!(
        repository(&reg, "team/next")["imageTagMutability"],
        "IMMUTABLE"
    );
}

/// skopeo copy of `layout:from` to `repo:to` with the administrator's key.
fn skopeo_copy_tag(reg: &Registry, layout: &Path, from: &str, repo: &str, to: &str) -> Output {
    let (id, secret) = admin_key(reg);
    run_unchecked(
        skopeo()
            .args(["copy", "--dest-tls-verify=false", "--dest-creds"])
            .arg(format!("{id}:{secret}"))
            .arg(format!("oci:{}:{from}", layout.display()))
            .arg(format!("docker://{}", reg.image(&format!("{repo}:{to}")))),
        LONG,
    )
}
