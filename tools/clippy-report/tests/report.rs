//! End-to-end tests: run the `clippy-report` binary on a recorded clippy
//! JSON stream (`tests/fixtures/clippy.jsonl`, see the README beside it) and
//! on empty or broken input, and check the HTML it writes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_clippy-report");

/// Path of the recorded fixture.
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clippy.jsonl")
}

/// A fresh output path under cargo's per-test scratch directory.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("clippy-report-tests");
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    let path = dir.join(name);
    // A leftover from an earlier run must not make a test pass.
    let _ = std::fs::remove_file(&path);
    path
}

/// Runs the binary with `args`, feeding `stdin` to it.
fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn clippy-report");
    child.stdin.take().expect("stdin is piped").write_all(stdin).expect("write stdin");
    child.wait_with_output().expect("wait for clippy-report")
}

/// Runs the binary on the fixture, writing the report to a file; returns the HTML.
fn fixture_report(name: &str) -> String {
    let out = scratch(name);
    let output = run(
        &[
            "--input",
            fixture().to_str().expect("UTF-8 path"),
            "--output",
            out.to_str().expect("UTF-8 path"),
            "--title",
            "Fixture <report>",
        ],
        b"",
    );
    assert!(output.status.success(), "failed: {output:?}");
    assert!(output.stdout.is_empty(), "HTML must go to the file only");
    std::fs::read_to_string(&out).expect("report file written")
}

/// The `data-count` of the table row whose `data-{attr}` is `key`.
fn row_count(html: &str, attr: &str, key: &str) -> Option<usize> {
    let marker = format!("data-{attr}=\"{key}\" data-count=\"");
    let start = html.find(&marker)? + marker.len();
    let end = start + html[start..].find('"')?;
    html[start..end].parse().ok()
}

/// Number of non-overlapping occurrences of `needle`.
fn occurrences(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// Checks that every tag in `tags` opens as often as it closes.
fn assert_balanced(html: &str, tags: &[&str]) {
    for tag in tags {
        let opens = occurrences(html, &format!("<{tag}>")) + occurrences(html, &format!("<{tag} "));
        let closes = occurrences(html, &format!("</{tag}>"));
        assert!(opens > 0, "<{tag}> missing");
        assert_eq!(opens, closes, "unbalanced <{tag}>");
    }
}

#[test]
fn fixture_report_has_all_lints_and_files_with_counts() {
    let html = fixture_report("fixture.html");
    assert!(html.starts_with("<!DOCTYPE html>"));

    // 30 lines in, 27 diagnostics, 15 unique: the lib's findings are
    // reported twice (lib and lib-test targets) and must be merged.
    assert!(html.contains("data-total=\"15\" data-errors=\"1\" data-warnings=\"14\""));
    let expected_lints = [
        ("clippy::len_zero", 2),
        ("clippy::unwrap_used", 2),
        ("clippy::bool_assert_comparison", 1),
        ("clippy::box_collection", 1),
        ("clippy::boxed_local", 1),
        ("clippy::dbg_macro", 1),
        ("clippy::needless_range_loop", 1),
        ("clippy::needless_return", 1),
        ("clippy::ptr_arg", 1),
        ("clippy::useless_vec", 1),
        ("clippy::vec_box", 1),
        ("missing_docs", 1),
        ("unused_variables", 1),
    ];
    for (lint, count) in expected_lints {
        assert_eq!(row_count(&html, "lint", lint), Some(count), "count of {lint}");
    }
    assert_eq!(occurrences(&html, "<tr data-lint="), expected_lints.len());

    for (file, count) in [("src/lib.rs", 8), ("src/util.rs", 4), ("tests/it.rs", 3)] {
        assert_eq!(row_count(&html, "file", file), Some(count), "count of {file}");
    }
    assert_eq!(occurrences(&html, "<tr data-file="), 3);
    assert_eq!(occurrences(&html, "<tr class=\"finding\">"), 15);

    // Locations and levels of individual findings.
    assert!(html.contains("<code>src/util.rs:15:5</code>"));
    assert!(html.contains("<code>tests/it.rs:7:5</code></td><td class=\"level level-error\">error"));
}

#[test]
fn fixture_report_escapes_messages() {
    let html = fixture_report("escaped.html");
    // clippy::box_collection's message is "you seem to be trying to use `Box<Vec<..>>`...".
    assert!(html.contains("`Box&lt;Vec&lt;..&gt;&gt;`"));
    assert!(html.contains("`Vec&lt;T&gt;` is already on the heap"));
    assert!(!html.contains("Box<Vec<"));
    assert!(!html.contains("Vec<T>"));
    assert!(html.contains("<title>Fixture &lt;report&gt;</title>"));
    // Source excerpts in rustc's rendering are escaped as well.
    assert!(html.contains("pub fn total(v: &amp;Vec&lt;u32&gt;) -&gt; u32"));
}

#[test]
fn fixture_report_is_well_formed() {
    let html = fixture_report("balanced.html");
    assert_balanced(
        &html,
        &["html", "head", "body", "table", "thead", "tbody", "tr", "td", "th", "section", "details", "pre"],
    );
    assert_eq!(occurrences(&html, "<table>"), 3);
    assert!(html.trim_end().ends_with("</html>"));
    // Self-contained: no external stylesheets, scripts or images.
    for needle in ["<link", "<script", "<img", "src=\""] {
        assert!(!html.contains(needle), "found {needle}");
    }
}

#[test]
fn stdin_to_stdout_matches_file_mode() {
    let input = std::fs::read(fixture()).expect("read fixture");
    let output = run(&["--title", "Fixture <report>"], &input);
    assert!(output.status.success(), "failed: {output:?}");
    let html = String::from_utf8(output.stdout).expect("UTF-8 HTML");
    assert_eq!(html, fixture_report("compare.html"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("15 finding(s) (1 error(s), 14 warning(s)) in 3 file(s)"), "{stderr}");
}

#[test]
fn empty_input_gives_a_no_findings_page() {
    let output = run(&[], b"");
    assert!(output.status.success(), "failed: {output:?}");
    let html = String::from_utf8(output.stdout).expect("UTF-8 HTML");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("No findings"));
    assert!(html.contains("the input was empty"));
    assert!(html.contains("data-total=\"0\""));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no cargo JSON messages"));
    assert!(!html.contains("<table"));
    assert_balanced(&html, &["html", "head", "body", "section"]);
}

#[test]
fn clean_build_stream_gives_a_no_findings_page() {
    let input = concat!(
        r#"{"reason":"compiler-artifact","package_id":"x","target":{"kind":["lib"]},"fresh":true}"#,
        "\n",
        r#"{"reason":"build-finished","success":true}"#,
        "\n"
    );
    let output = run(&["--fail-on-findings"], input.as_bytes());
    assert!(output.status.success(), "failed: {output:?}");
    let html = String::from_utf8(output.stdout).expect("UTF-8 HTML");
    assert!(html.contains("No findings."));
    assert!(html.contains("2 cargo messages read"));
    assert!(!html.contains("build-failed"));
    assert!(!String::from_utf8_lossy(&output.stderr).contains("no cargo JSON messages"));
}

#[test]
fn fail_on_findings_still_writes_the_report() {
    let out = scratch("failing.html");
    let output = run(
        &[
            "--input",
            fixture().to_str().expect("UTF-8 path"),
            "--output",
            out.to_str().expect("UTF-8 path"),
            "--fail-on-findings",
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .contains("tests/it.rs:7:5: error[clippy::bool_assert_comparison]: used `assert_eq!` with a literal bool"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 16, "summary plus one line per finding: {stderr}");
    let html = std::fs::read_to_string(&out).expect("report written despite findings");
    assert!(html.contains("<html"));
}

#[test]
fn errors_go_to_stderr_with_nonzero_status() {
    let missing = run(&["--input", "/nonexistent/clippy.jsonl"], b"");
    assert_eq!(missing.status.code(), Some(1));
    assert!(missing.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("cannot read /nonexistent/clippy.jsonl"), "{stderr}");

    let broken = run(&[], b"{\"reason\":\"build-finished\"}\n{not json\n");
    assert_eq!(broken.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&broken.stderr).contains("input line 2"));

    let usage = run(&["--bogus"], b"");
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("--bogus"));
}

#[test]
fn help_is_printed_to_stdout() {
    let output = run(&["--help"], b"");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for option in ["--input", "--output", "--title", "--fail-on-findings"] {
        assert!(text.contains(option), "help lacks {option}");
    }
}
