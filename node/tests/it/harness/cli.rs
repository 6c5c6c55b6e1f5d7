//! The `meridian` command line as the tests run it: `meridian key ...` against a test node's
//! config.

use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `meridian key ARGS --config CONFIG` to the end: (success, stdout, stderr).
pub fn key_cli(config: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .arg("key")
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .expect("run meridian key");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

/// `meridian key create`: (access key id, secret).
pub fn create_key(config: &Path, name: &str, owner: Option<&str>) -> (String, String) {
    let mut args = vec!["create", "--name", name];
    if let Some(owner) = owner {
        args.extend(["--owner", owner]);
    }
    let (ok, stdout, stderr) = key_cli(config, &args);
    assert!(ok, "key create failed: {stderr}\n{stdout}");
    let field = |label: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(label).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no {label:?} line in {stdout:?}"))
    };
    (field("access key id:"), field("secret access key:"))
}
