//! `meridian node` refuses a bad `cluster.toml` at start: non-zero exit, a stderr message that
//! names the field at fault, and nothing created on disk. The same template, unbroken, is shown
//! to start (so each refusal is about the one field the case breaks).

use crate::harness;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::cli::{EXIT_BOUND, run_node_until_exit};
use harness::cluster::{ClusterOptions, three_region_config};
use harness::*;

struct Case {
    name: &'static str,
    /// Turns the valid template into the broken one.
    edit: fn(&str) -> String,
    /// Strings the stderr must contain.
    expect: &'static [&'static str],
}

/// Replaces the `n`-th (0-based) occurrence of `from` in `s`.
fn replace_nth(s: &str, from: &str, to: &str, n: usize) -> String {
    let (idx, _) = s.match_indices(from).nth(n).unwrap_or_else(|| panic!("no occurrence {n} of {from:?}"));
    format!("{}{to}{}", &s[..idx], &s[idx + from.len()..])
}

/// The line of `[[region]]` number `n` that starts with `field =`, replaced by `field = value`.
fn set_region_field(s: &str, n: usize, field: &str, value: &str) -> String {
    let start = s.match_indices("[[region]]").nth(n).expect("region").0;
    let rel = s[start..].find(&format!("\n{field} = ")).expect("field") + start + 1;
    let end = s[rel..].find('\n').expect("end of line") + rel;
    format!("{}{field} = {value}{}", &s[..rel], &s[end..])
}

const CASES: &[Case] = &[
    Case {
        name: "bad address in region[1].s3",
        edit: |s| set_region_field(s, 1, "s3", "\"127.0.0.1:notaport\""),
        expect: &["region[1].s3", "notaport"],
    },
    Case {
        name: "host name instead of an ip in region[1].s3",
        edit: |s| set_region_field(s, 1, "s3", "\"virginia.example:9000\""),
        expect: &["region[1].s3"],
    },
    Case {
        name: "latitude 100",
        edit: |s| set_region_field(s, 0, "latitude", "100.0"),
        expect: &["region[0].latitude", "100"],
    },
    Case {
        name: "unknown default_region",
        edit: |s| s.replace("default_region = \"frankfurt\"", "default_region = \"atlantis\""),
        expect: &["cluster.default_region", "atlantis"],
    },
    Case { name: "duplicate region id", edit: |s| set_region_field(s, 2, "id", "2"), expect: &["region[2].id"] },
    Case {
        name: "election timeout not above the heartbeat",
        edit: |s| replace_nth(s, "election_timeout_min_ms = 400", "election_timeout_min_ms = 100", 0),
        expect: &["raft.election_timeout_min_ms"],
    },
    Case {
        name: "a zero share password window",
        edit: |s| format!("{s}\n[shares]\npassword_window_secs = 0\n"),
        expect: &["shares.password_window_secs"],
    },
    Case {
        name: "share URLs living over an hour",
        edit: |s| format!("{s}\n[shares]\npresign_secs = 7200\n"),
        expect: &["shares.presign_secs", "5 to 3600"],
    },
    Case {
        name: "a metadata cache too small to hold a working set",
        edit: |s| format!("{s}\n[storage]\ncache_mib = 1\n"),
        expect: &["storage.cache_mib", "8..=1048576"],
    },
];

fn setup() -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::Builder::new().prefix("meridian-config-").tempdir().expect("tempdir");
    let text = three_region_config(&ClusterOptions::default(), dir.path());
    let cwd = dir.path().join("cwd");
    fs::create_dir_all(&cwd).expect("cwd");
    (dir, cwd, text)
}

#[test]
fn bad_configs_are_refused_naming_the_field() {
    let mut failures = Vec::new();
    for case in CASES {
        let (dir, cwd, valid) = setup();
        let text = (case.edit)(&valid);
        assert_ne!(text, valid, "{}: the edit changed nothing", case.name);
        let config = dir.path().join("cluster.toml");
        fs::write(&config, &text).expect("write config");
        let (status, stderr) = run_node_until_exit(&config, &cwd, "frankfurt");
        eprintln!("{}: exit {status:?}, stderr: {}", case.name, stderr.trim());
        match status {
            None => failures.push(format!("{}: still running after {EXIT_BOUND:?}", case.name)),
            Some(st) if st.success() => failures.push(format!("{}: exited 0", case.name)),
            Some(_) => {}
        }
        for want in case.expect {
            if !stderr.contains(want) {
                failures.push(format!("{}: stderr does not name {want:?}: {stderr:?}", case.name));
            }
        }
        if dir.path().join("data").exists() {
            failures.push(format!("{}: a data dir was created for a refused config", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_missing_config_file_is_refused_naming_the_file() {
    let (dir, cwd, _) = setup();
    let missing = dir.path().join("nowhere").join("cluster.toml");
    let (status, stderr) = run_node_until_exit(&missing, &cwd, "frankfurt");
    eprintln!("missing file: exit {status:?}, stderr: {}", stderr.trim());
    let status = status.expect("meridian with a missing config must exit");
    assert!(!status.success(), "exit status {status}");
    assert!(stderr.contains(&missing.display().to_string()), "stderr does not name the file: {stderr:?}");
    assert!(stderr.contains("cannot read"), "stderr does not say it cannot read it: {stderr:?}");
}

#[test]
fn a_region_missing_from_the_config_is_refused() {
    let (dir, cwd, valid) = setup();
    let config = dir.path().join("cluster.toml");
    fs::write(&config, valid).expect("write config");
    let (status, stderr) = run_node_until_exit(&config, &cwd, "atlantis");
    let status = status.expect("meridian with an unknown --region must exit");
    assert!(!status.success(), "exit status {status}");
    assert!(stderr.contains("atlantis"), "stderr does not name the region: {stderr:?}");
}

/// The control: the unbroken template is accepted; the node starts and answers `/healthz`
/// (503, as its two peers are not running) instead of exiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_valid_template_starts() {
    let (dir, cwd, valid) = setup();
    let config = dir.path().join("cluster.toml");
    fs::write(&config, &valid).expect("write config");
    let web = valid
        .lines()
        .find_map(|l| l.strip_prefix("web = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("web address of region[0]")
        .to_owned();
    let log = fs::File::create(dir.path().join("node.log")).expect("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["node", "--config"])
        .arg(&config)
        .args(["--region", "frankfurt"])
        .current_dir(&cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn meridian");
    let http = http_client();
    let deadline = Instant::now() + Duration::from_secs(30);
    let answered = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Err(format!("exited with {status}"));
        }
        if let Ok(resp) = http.get(format!("http://{web}/healthz")).timeout(Duration::from_secs(2)).send().await {
            break Ok(resp.status().as_u16());
        }
        if Instant::now() > deadline {
            break Err("no /healthz answer within 30 s".into());
        }
        tokio::time::sleep(POLL).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    let log = fs::read_to_string(dir.path().join("node.log")).unwrap_or_default();
    let status = answered.unwrap_or_else(|e| panic!("the valid template did not start: {e}\n{log}"));
    assert_eq!(status, 503, "a lone node of three voters is not ready");
    assert!(dir.path().join("data/frankfurt").is_dir(), "the node created its data dir");
}
