//! What each cargo feature pulls into an embedder's build, read from `cargo tree` (offline,
//! from the lock file). An embedder that wants only the in-process bus writes
//! `swarmbus = { version = "0.1", default-features = false }` and must not compile the HTTP
//! server, the command line or the NATS client.

use std::collections::BTreeSet;
use std::process::Command;

/// The optional parts' own dependencies, by feature.
const HTTP: &[&str] = &["axum", "hyper", "hyper-util", "prometheus-client"];
const NATS: &[&str] = &["async-nats", "hmac", "sha2"];
const CLI: &[&str] = &["clap", "tracing-subscriber", "anyhow"];

/// Every package in swarmbus's normal (non-dev, non-build) dependency tree with `features`
/// (`None`: the default features).
fn tree(features: Option<&[&str]>) -> BTreeSet<String> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args([
        "tree",
        "--offline",
        "--locked",
        "--manifest-path",
        manifest,
        "-p",
        "swarmbus",
        "-e",
        "normal",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ]);
    if let Some(features) = features {
        cmd.arg("--no-default-features");
        if !features.is_empty() {
            cmd.args(["--features", &features.join(",")]);
        }
    }
    let out = cmd.output().expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree {features:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn assert_has(packages: &BTreeSet<String>, names: &[&str], has: bool, build: &str) {
    for name in names {
        assert_eq!(
            packages.contains(*name),
            has,
            "{build}: {name} {} expected",
            if has { "is" } else { "is not" }
        );
    }
}

#[test]
fn without_default_features_only_the_bus_is_built() {
    let packages = tree(Some(&[]));
    assert_has(&packages, HTTP, false, "no features");
    assert_has(&packages, NATS, false, "no features");
    assert_has(&packages, CLI, false, "no features");
    // The bus itself is there: the check above cannot pass on an empty tree.
    assert_has(
        &packages,
        &["swarmbus", "tokio", "flume", "flate2", "uuid"],
        true,
        "no features",
    );
}

#[test]
fn each_feature_brings_its_own_dependencies_and_no_others() {
    let http = tree(Some(&["http"]));
    assert_has(&http, HTTP, true, "http");
    assert_has(&http, NATS, false, "http");
    assert_has(&http, CLI, false, "http");

    let nats = tree(Some(&["nats"]));
    assert_has(&nats, NATS, true, "nats");
    assert_has(&nats, HTTP, false, "nats");
    assert_has(&nats, CLI, false, "nats");

    // The binary serves HTTP and joins NATS: `cli` is everything, and it is the default.
    let cli = tree(Some(&["cli"]));
    for part in [HTTP, NATS, CLI] {
        assert_has(&cli, part, true, "cli");
    }
    assert_eq!(tree(None), cli, "the default features are `cli`");
}
