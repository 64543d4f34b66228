//! The crate's example binaries, for tests that run them as real processes.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// A built example (`target/<profile>/examples/NAME`). `cargo test` builds the examples
/// before it runs the tests, but not when asked for this test alone, and it holds no
/// lock while tests run: so the example is (re)built here with this test's profile and
/// features, a no-op when it is fresh.
pub fn example(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/watch_example-HASH -> target/<profile>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        let features: Vec<&str> = [
            ("server", cfg!(feature = "server")),
            ("csv", cfg!(feature = "csv")),
            ("tracing", cfg!(feature = "tracing")),
            ("hyper", cfg!(feature = "hyper")),
            ("redis", cfg!(feature = "redis")),
        ]
        .into_iter()
        .filter_map(|(feature, on)| on.then_some(feature))
        .collect();
        let mut build = Command::new(env!("CARGO"));
        build
            .args(["build", "--quiet", "--example", name, "--manifest-path"])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .args(["--no-default-features", "--features", &features.join(",")]);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "cargo build --example {name} failed");
        built.push(name.to_string());
    }
    assert!(path.exists(), "{} was not built", path.display());
    path
}
