//! `docs/ecr-api.md` cannot drift from the code: its operations table lists exactly the
//! operations of [`Operation::ALL`], in order, with the support the code declares, and
//! every test it names as coverage exists.

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
