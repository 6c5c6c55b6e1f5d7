//! Records the git commit the `meridian` binary is built from (`MERIDIAN_GIT_COMMIT`, part of
//! the release every node reports to its peers and in its status; see `meridian_raft::protocol`).
//! Here rather than in the raft crate so that a commit rebuilds the binary alone. No network: `git` on the local checkout,
//! or the variable set by whoever builds outside one (packaging); `unknown` otherwise.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned()).filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-env-changed=MERIDIAN_GIT_COMMIT");
    let commit = std::env::var("MERIDIAN_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=7", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    // Rebuild when HEAD moves (a commit or a checkout), not on every build: watch HEAD and the
    // branch it points at, where they are files.
    for path in [
        git(&["rev-parse", "--git-path", "HEAD"]),
        git(&["symbolic-ref", "-q", "HEAD"]).and_then(|branch| git(&["rev-parse", "--git-path", &branch])),
    ]
    .into_iter()
    .flatten()
    {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rustc-env=MERIDIAN_GIT_COMMIT={commit}");
}
