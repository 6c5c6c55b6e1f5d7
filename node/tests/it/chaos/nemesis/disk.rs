//! A data dir that fills up: one node's data dir is a small tmpfs ([`SmallDisk`]), and the
//! nemesis fills it with a filler file until the file system says ENOSPC, then deletes the
//! filler to heal. Mounting needs root; without it the tests that use this skip loudly.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use futures::future::LocalBoxFuture;

use crate::harness::XorShift;
use crate::harness::cluster::TestCluster;

use super::Nemesis;

/// The name of the file that eats the free space.
const FILLER: &str = "chaos-disk-filler";

/// A tmpfs mounted on a node's data dir; unmounted (lazily, so a node that still holds a file
/// cannot keep it) when dropped.
pub(crate) struct SmallDisk {
    /// The mount point: the node's data dir.
    pub(crate) path: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `mib` MiB on `path` (created if missing). `Err` with the reason when
    /// this process may not mount (not root, no CAP_SYS_ADMIN).
    pub(crate) fn mount(path: &Path, mib: u64) -> Result<SmallDisk, String> {
        fs::create_dir_all(path).map_err(|e| format!("create {}: {e}", path.display()))?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m,mode=0700"), "meridian-chaos-tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs on {}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(SmallDisk { path: path.to_owned() })
    }

    /// Whether this process can mount a tmpfs (root with CAP_SYS_ADMIN): tries one.
    pub(crate) fn can_mount() -> Result<(), String> {
        let probe = tempfile::Builder::new().prefix("meridian-chaos-probe-").tempdir().map_err(|e| e.to_string())?;
        SmallDisk::mount(probe.path(), 1).map(drop)
    }

    /// Fills the file system with a filler file until ENOSPC (a bounded loop: the tmpfs is
    /// small); returns the bytes written.
    pub(crate) fn fill(&self) -> u64 {
        // Already full when even the file's inode does not fit.
        let Ok(mut file) = fs::OpenOptions::new().create(true).append(true).open(self.path.join(FILLER)) else {
            return 0;
        };
        let chunk = vec![0x5a_u8; 256 * 1024];
        let mut written = 0u64;
        for _ in 0..1_000_000 {
            match file.write(&chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => written += n as u64,
            }
        }
        // Small writes take what is left of the last page.
        for _ in 0..1_000_000 {
            match file.write(&chunk[..512]) {
                Ok(0) | Err(_) => break,
                Ok(n) => written += n as u64,
            }
        }
        written
    }

    /// Fills the file system like [`SmallDisk::fill`], then keeps taking every byte that comes
    /// free (small writes, a few ms apart) until `stop` is set or `within` passed: the filler
    /// that also eats the space reserve the node releases, so the node's store meets ENOSPC.
    /// Runs on its own thread; join it (which closes the filler) before [`SmallDisk::drain`].
    pub(crate) fn eat_in_background(
        &self,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
        within: std::time::Duration,
    ) -> std::thread::JoinHandle<u64> {
        let path = self.path.join(FILLER);
        let mut written = self.fill();
        std::thread::spawn(move || {
            let Ok(mut file) = fs::OpenOptions::new().create(true).append(true).open(&path) else {
                return written;
            };
            let chunk = vec![0x5a_u8; 4096];
            let deadline = std::time::Instant::now() + within;
            while !stop.load(std::sync::atomic::Ordering::Acquire) && std::time::Instant::now() < deadline {
                match file.write(&chunk) {
                    Ok(n) if n > 0 => written += n as u64,
                    _ => std::thread::sleep(std::time::Duration::from_millis(2)),
                }
            }
            written
        })
    }

    /// Deletes the filler: the space comes back.
    pub(crate) fn drain(&self) {
        let _ = fs::remove_file(self.path.join(FILLER));
    }

    /// Free bytes of the file system, from `df`.
    pub(crate) fn free_bytes(&self) -> Option<u64> {
        let out = Command::new("df").args(["--output=avail", "-B1"]).arg(&self.path).output().ok()?;
        String::from_utf8_lossy(&out.stdout).lines().nth(1)?.trim().parse().ok()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Fills the data dir of node `victim` (on a [`SmallDisk`]) at each event, empties it to heal.
pub(crate) struct DiskNemesis<'d> {
    /// The node whose data dir is the small disk.
    pub(crate) victim: usize,
    /// Its disk.
    pub(crate) disk: &'d SmallDisk,
}

impl Nemesis for DiskNemesis<'_> {
    fn inject<'a>(&'a mut self, _: &'a TestCluster, _: &'a mut XorShift) -> LocalBoxFuture<'a, String> {
        Box::pin(async move {
            let written = self.disk.fill();
            format!(
                "filled the data dir of node {} ({} KiB of filler, {:?} bytes left)",
                self.victim,
                written / 1024,
                self.disk.free_bytes()
            )
        })
    }

    fn heal<'a>(&'a mut self, _: &'a TestCluster) -> LocalBoxFuture<'a, ()> {
        Box::pin(async move { self.disk.drain() })
    }
}
