//! The data directory: there (or creatable), writable, durable (fsync works: Raft's log and
//! every acknowledged write rest on it), and with room left.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::{Finding, Host};

/// Free space under which the data directory is reported.
const LOW_SPACE: u64 = 1 << 30;

/// `data_dir` (writable and fsync) and `data_dir.space`.
pub(super) fn check(host: &Host<'_>) -> Vec<Finding> {
    let dir = host.config.data_dir(host.region);
    // A directory that does not exist yet is created by the node: check the nearest existing
    // parent instead, without creating anything here.
    let Some(existing) = dir.ancestors().find(|p| p.is_dir()).map(Path::to_path_buf) else {
        return vec![Finding::fail(
            "data_dir",
            format!("{}: no parent directory exists", dir.display()),
            "create it, owned by the user the node runs as",
        )];
    };
    let missing = existing != dir;
    let writable = match durable_write(&existing) {
        Ok(()) if missing => Finding::ok(
            "data_dir",
            format!(
                "{} does not exist yet; the node can create it in {} (writable, fsync works)",
                dir.display(),
                existing.display()
            ),
        ),
        Ok(()) => Finding::ok("data_dir", format!("{} is writable and fsync works", dir.display())),
        Err(e) => Finding::fail(
            "data_dir",
            format!("{}: {e}", existing.display()),
            "give the node's user write access there, on a local filesystem that supports fsync",
        ),
    };
    vec![writable, space(&existing)]
}

/// Writes a file, syncs it and its directory, and removes it: what the node's log does.
fn durable_write(dir: &Path) -> Result<(), String> {
    let path: PathBuf = dir.join(format!(".meridian-doctor-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&path).map_err(|e| format!("cannot create a file: {e}"))?;
        file.write_all(&[0u8; 4096]).map_err(|e| format!("cannot write: {e}"))?;
        file.sync_all().map_err(|e| format!("fsync of a file failed: {e}"))?;
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| format!("fsync of the directory failed: {e}"))
    })();
    let removed = std::fs::remove_file(&path);
    result?;
    removed.map_err(|e| format!("cannot remove {}: {e}", path.display()))
}

/// Free space of the filesystem holding `dir`.
fn space(dir: &Path) -> Finding {
    match fs2::available_space(dir) {
        Ok(free) if free < LOW_SPACE => Finding::warn(
            "data_dir.space",
            format!("{} MiB free on {}'s filesystem", free >> 20, dir.display()),
            "free space or move data_dir: below 1 GiB, uploads and Raft snapshots soon fail",
        ),
        Ok(free) => Finding::ok("data_dir.space", format!("{:.1} GiB free", free as f64 / f64::from(1u32 << 30))),
        Err(e) => Finding::warn("data_dir.space", format!("cannot read free space: {e}"), "check the filesystem"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writable_directory_passes_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        durable_write(dir.path()).expect("writable");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
        assert!(durable_write(&dir.path().join("absent")).is_err());
    }
}
