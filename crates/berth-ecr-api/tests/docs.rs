//! `docs/ecr-api.md` cannot drift from the code: its operations table lists exactly the
//! operations of [`Operation::ALL`], in order, with the support the code declares, and
//! every test it names as coverage exists.

use berth_ecr_api::error::EcrErrorType;
use berth_ecr_api::{Operation, Support};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `fn name` in the test files of the workspace's crates.
fn test_functions() -> Vec<String> {
    let mut names = Vec::new();
    let crates = std::fs::read_dir(workspace().join("crates")).unwrap();
    for c in crates.flatten() {
        let Ok(files) = std::fs::read_dir(c.path().join("tests")) else {
            continue;
        };
        for f in files.flatten() {
            if f.path().extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(f.path()).unwrap();
                for line in text.lines() {
                    if let Some(rest) = line
                        .trim_start()
                        .strip_prefix("fn ")
                        .or_else(|| line.trim_start().strip_prefix("async fn "))
                    {
                        names.push(rest.split('(').next().unwrap_or("").to_string());
                    }
                }
            }
        }
    }
    names
}

#[test]
fn docs_table_matches_the_dispatch_table() {
    let path = workspace().join("docs/ecr-api.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let table = doc
        .split("<!-- operations:begin -->")
        .nth(1)
        .and_then(|t| t.split("<!-- operations:end -->").next())
        .expect("docs/ecr-api.md has the operations:begin/end markers");
    let rows: Vec<Vec<String>> = table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();
    let documented: Vec<String> = rows
        .iter()
        .map(|r| r[0].trim_matches('`').to_string())
        .collect();
    let code: Vec<&str> = Operation::ALL.iter().map(|o| o.name()).collect();
    assert_eq!(
        documented, code,
        "docs/ecr-api.md lists other operations (or another order) than Operation::ALL"
    );
    let tests = test_functions();
    for (row, op) in rows.iter().zip(Operation::ALL) {
        let want = match berth_ecr_api::support(*op) {
            Support::Supported => "yes".to_string(),
            Support::NotYet(what) => format!("not yet — {what}"),
        };
        assert_eq!(row[1], want, "docs/ecr-api.md: support of {op}");
        let covered: Vec<&str> = row[2]
            .split(',')
            .map(|t| t.trim().trim_matches('`'))
            .collect();
        assert!(
            !covered.is_empty() && !covered[0].is_empty(),
            "{op}: no test named"
        );
        for t in covered {
            assert!(
                tests.iter().any(|n| n == t),
                "docs/ecr-api.md names test `{t}` for {op}, but no test function has that name"
            );
        }
    }
}

/// The rows of the `__type` table in `src/error.rs`'s module doc: name, status, origin.
fn error_table() -> Vec<(String, u16, String)> {
    let src = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/error.rs"))
        .unwrap();
    src.lines()
        .filter_map(|l| l.strip_prefix("//! | `"))
        .filter(|row| !row.starts_with("__type"))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            (
                cells[0].trim_end_matches('`').to_string(),
                cells[1].parse().expect("status is a number"),
                cells[2].to_string(),
            )
        })
        .collect()
}

// Issue 16: one enum per wire, documented tables checked against it.
#[test]
fn error_table_matches_the_error_enum() {
    let table = error_table();
    let code: Vec<(String, u16, String)> = EcrErrorType::ALL
        .iter()
        .map(|t| {
            let origin = if t.modeled() { "model" } else { "common" };
            (
                t.name().to_string(),
                t.status().as_u16(),
                origin.to_string(),
            )
        })
        .collect();
    assert_eq!(
        table, code,
        "the __type table of src/error.rs differs from EcrErrorType::ALL (name, status, origin)"
    );
}

/// The botocore ECR model: the project's reference copy (1.44.8) at
/// `../shared/reference/botocore-ecr/service-2.json` beside the checkout when it is there,
/// else the copy inside the AWS CLI that `.ci/install-clients` puts in `.venv-clients`
/// (gzip-compressed in current botocore).
fn botocore_model() -> Option<serde_json::Value> {
    let reference = workspace().join("../shared/reference/botocore-ecr/service-2.json");
    if let Ok(text) = std::fs::read_to_string(reference) {
        return serde_json::from_str(&text).ok();
    }
    let lib = workspace().join(".venv-clients/lib");
    for python in std::fs::read_dir(lib).ok()?.flatten() {
        let gz = python
            .path()
            .join("site-packages/botocore/data/ecr/2015-09-21/service-2.json.gz");
        if let Ok(file) = std::fs::File::open(&gz) {
            return serde_json::from_reader(flate2::read::GzDecoder::new(file)).ok();
        }
    }
    None
}

// ECR API reference, "Errors": every type marked "model" is an exception shape of the
// botocore model, and no type marked "common" shadows one.
#[test]
fn modeled_error_types_are_exception_shapes_of_the_model() {
    let Some(model) = botocore_model() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "no botocore model in CI (../shared/reference/botocore-ecr or .venv-clients)"
        );
        eprintln!("SKIPPED: no botocore model (../shared/reference/botocore-ecr or .venv-clients)");
        return;
    };
    for t in EcrErrorType::ALL {
        let shape = &model["shapes"][t.name()];
        let is_exception = shape["exception"].as_bool() == Some(true);
        assert_eq!(
            is_exception,
            t.modeled(),
            "{t}: modeled() says {}, the botocore model says {is_exception}",
            t.modeled()
        );
    }
}

// Issue 17: `operation::names_repository` is exactly the operations whose botocore input
// shape requires `repositoryName`, so operations Berth does not serve yet look the
// repository up where ECR would.
#[test]
fn names_repository_matches_the_model() {
    let Some(model) = botocore_model() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "no botocore model in CI (../shared/reference/botocore-ecr or .venv-clients)"
        );
        eprintln!("SKIPPED: no botocore model (../shared/reference/botocore-ecr or .venv-clients)");
        return;
    };
    for op in berth_ecr_api::Operation::ALL {
        let input = model["operations"][op.name()]["input"]["shape"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no input shape in the model", op.name()));
        let required = model["shapes"][input]["required"]
            .as_array()
            .is_some_and(|r| r.iter().any(|m| m == "repositoryName"));
        assert_eq!(
            berth_ecr_api::operation::names_repository(*op),
            required,
            "{}: names_repository disagrees with the model's {input}",
            op.name()
        );
    }
}
