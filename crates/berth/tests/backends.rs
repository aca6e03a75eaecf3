//! The backend settings as the `berth` binary applies them (issue 14), through real
//! `berth serve` processes started by `berth_test_support::nodes`:
//!
//! * the embedded backends serve one process: a second server on the same SQLite
//!   database, or on the same blob directory, is refused even from another data
//!   directory (the lock follows the state, not the `--data-dir` flag);
//! * a master key that cannot open what the database holds sealed is refused at start,
//!   so nodes sharing a database cannot run with different keys;
//! * malformed `--metadata` and `--storage` URLs are refused with messages naming the
//!   expected forms.

use berth_test_support::nodes::{Node, NodeOptions};

fn opts() -> NodeOptions {
    NodeOptions::new(env!("CARGO_BIN_EXE_berth"))
}

fn refused(opts: &NodeOptions, expect: &str) {
    match Node::start(opts, None) {
        Ok(n) => panic!(
            "berth started but must refuse ({expect}):\n{}",
            n.log_tail()
        ),
        Err(e) => assert!(e.contains(expect), "expected {expect:?} in:\n{e}"),
    }
}

/// Regression guard for the data-dir lock once metadata and storage became URLs: it
/// must cover the SQLite file and the blob directory wherever they are named from.
#[test]
fn embedded_backends_serve_one_process_whichever_flag_names_them() {
    let first = Node::start(&opts(), None).expect("first node");
    let data = first.data_dir();
    let db = format!("sqlite://{}", data.join("metadata.db").display());
    let blobs = format!("file://{}", data.display());
    refused(
        &opts().metadata(&db),
        "another berth process is using data directory",
    );
    refused(
        &opts().storage(&blobs),
        "another berth process is using data directory",
    );
    // The first server is unharmed.
    let r = ureq::get(&first.url("/readyz"))
        .call()
        .expect("still ready");
    assert_eq!(r.status(), 200);
}

/// Nodes sharing a database share a master key: a server given another key than the
/// one the database's secrets were sealed with stops at start and names the setting.
#[test]
fn a_master_key_that_cannot_open_the_database_is_refused() {
    let shared = tempfile::tempdir().unwrap();
    let state = |o: NodeOptions| {
        o.metadata(&format!(
            "sqlite://{}",
            shared.path().join("metadata.db").display()
        ))
        .storage(&format!("file://{}", shared.path().join("blobs").display()))
    };
    let key_a = shared.path().join("a.key");
    let mut first = Node::start(&state(opts()).master_key_file(&key_a), None).expect("node a");
    first.kill();
    refused(
        &state(opts()).master_key_file(shared.path().join("b.key")),
        "cannot open the secrets sealed in the metadata database",
    );
    // The right key still opens it.
    let again = Node::start(&state(opts()).master_key_file(&key_a), None).expect("node a again");
    let r = ureq::get(&again.url("/readyz")).call().expect("ready");
    assert_eq!(r.status(), 200);
}

/// Malformed backend URLs stop the server with a clear message (never a panic).
#[test]
fn malformed_backend_urls_are_refused_clearly() {
    refused(
        &opts().storage("s3://Bad_Bucket"),
        "not a valid S3 bucket name",
    );
    refused(
        &opts().metadata("mysql://u:pw@127.0.0.1/db"),
        "expected sqlite:///path/metadata.db or postgres://",
    );
}
