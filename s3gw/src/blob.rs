//! The local blob store: object bytes on this node's disk, named by internal id.
//!
//! Layout under the data dir: `blobs/<2 hex>/<32 hex>` for committed blobs (and
//! `<32 hex>.corrupt` for copies the scrub quarantined), `blobs/.meridian-blobs` (the marker that
//! says the directory is the one this node filled), `tmp/` for writes in progress,
//! `parts/<upload id>/` for multipart parts, `partial/` for large pulls in progress (kept
//! across restarts, see `partial`). Object keys never reach the filesystem;
//! a blob becomes visible only by `rename` after its bytes are fsynced, and the rename itself is
//! made durable by fsyncing the directory.

use std::io;
use std::path::{Path, PathBuf};

use rand::RngCore;
use tokio::fs::File;
use tokio::io::AsyncWriteExt;

/// A new random blob id: 128 bits, hex.
pub(crate) fn new_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The storage engine behind the gateway: durable, immutable blobs addressed by id.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Starts writing a new blob into a temporary file.
    async fn create(&self) -> io::Result<BlobWriter>;
    /// Makes a fully written temp file durable and visible under `id`.
    async fn commit(&self, writer: BlobWriter, id: &str) -> io::Result<()>;
    /// Opens a committed blob for reading; `None` if this node does not hold it.
    async fn open(&self, id: &str) -> io::Result<Option<File>>;
    /// Makes `to` a durable copy of `from` (a hard link: blobs never change).
    async fn duplicate(&self, from: &str, to: &str) -> io::Result<()>;
    /// Deletes a blob; deleting one that is absent is fine.
    async fn remove(&self, id: &str) -> io::Result<()>;
    /// Every committed blob id with its age, for the orphan sweep.
    async fn list(&self) -> io::Result<Vec<(String, std::time::Duration)>>;
}

/// A blob being written: a temp file that disappears unless committed.
pub struct BlobWriter {
    file: Option<File>,
    path: PathBuf,
    committed: bool,
}

impl BlobWriter {
    /// Appends bytes.
    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.file.as_mut() {
            Some(file) => file.write_all(bytes).await,
            None => Err(io::Error::other("blob writer already closed")),
        }
    }

    /// The temp file's path (for in-kernel copies into it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes and fsyncs the data; the file is closed afterwards.
    async fn sync(&mut self) -> io::Result<()> {
        if let Some(mut file) = self.file.take() {
            file.flush().await?;
            file.sync_data().await?;
        }
        Ok(())
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // An abandoned write (bad checksum, client gone, error) leaves nothing behind.
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// fsyncs a directory so that entries created or renamed in it survive a crash.
pub(crate) async fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).await?.sync_all().await
}

/// [`sync_dir`] outside the runtime (opening the store).
fn sync_dir_blocking(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The marker file in `blobs/`, written when the directory is created: a scrub pass that does not
/// find it is looking at another directory (a volume not mounted, a directory emptied by mistake)
/// and must not report every blob as lost.
const MARKER: &str = ".meridian-blobs";

/// What a quarantined copy's file name ends with.
const QUARANTINE_SUFFIX: &str = ".corrupt";

/// [`BlobStore`] on a local directory.
pub struct DiskBlobs {
    root: PathBuf,
}

impl DiskBlobs {
    /// Opens the store under `data_dir`, creating its directories and removing temp files
    /// left by writes that a crash interrupted.
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        let store = Self { root: data_dir.to_path_buf() };
        let blobs = store.root.join("blobs");
        std::fs::create_dir_all(&blobs)?;
        let marker = blobs.join(MARKER);
        if !marker.exists() {
            // A new directory, or one from before the marker existed. A volume that is not
            // mounted gets one too; the scrub's "most blobs missing" check covers that case.
            std::fs::write(&marker, b"meridian blob directory\n")?;
            sync_dir_blocking(&blobs)?;
        }
        std::fs::create_dir_all(store.parts_root())?;
        let tmp = store.root.join("tmp");
        if tmp.exists() {
            let mut removed = 0usize;
            for entry in std::fs::read_dir(&tmp)? {
                std::fs::remove_file(entry?.path())?;
                removed += 1;
            }
            if removed > 0 {
                tracing::info!(removed, "removed temp files of interrupted writes");
            }
        }
        std::fs::create_dir_all(&tmp)?;
        Ok(store)
    }

    fn path_of(&self, id: &str) -> io::Result<PathBuf> {
        if id.len() < 3 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad blob id {id:?}")));
        }
        Ok(self.root.join("blobs").join(&id[..2]).join(id))
    }

    /// Whether `blobs/` still holds the marker written when it was created: if not, it is not
    /// the directory this node filled (unmounted, replaced, emptied).
    pub async fn has_marker(&self) -> io::Result<bool> {
        tokio::fs::try_exists(self.root.join("blobs").join(MARKER)).await
    }

    /// Moves a bad copy aside (`<id>.corrupt` next to it), so it is never served nor taken for
    /// a good copy, while its bytes stay for whoever wants to recover what is left of them.
    /// Returns where it went.
    pub async fn quarantine(&self, id: &str) -> io::Result<PathBuf> {
        let path = self.path_of(id)?;
        let mut aside = path.clone().into_os_string();
        aside.push(QUARANTINE_SUFFIX);
        let aside = PathBuf::from(aside);
        tokio::fs::rename(&path, &aside).await?;
        if let Some(dir) = aside.parent() {
            sync_dir(dir).await?;
        }
        Ok(aside)
    }

    /// Deletes a quarantined copy, once a good one is on its way; absent is fine.
    pub async fn discard_quarantined(&self, id: &str) -> io::Result<()> {
        let mut aside = self.path_of(id)?.into_os_string();
        aside.push(QUARANTINE_SUFFIX);
        match tokio::fs::remove_file(PathBuf::from(aside)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Where partial copies of large pulls live (see `partial`): outside `tmp/`, which opening
    /// the store empties, so that a restarted node continues them.
    pub fn partial_dir(&self) -> PathBuf {
        crate::partial::dir(&self.root)
    }

    /// Makes the fully written and verified file at `path` (a partial pull's) durable and
    /// visible as blob `id`: fsync its data, rename, fsync the directory.
    pub async fn adopt(&self, path: &Path, id: &str) -> io::Result<()> {
        let dest = self.path_of(id)?;
        File::open(path).await?.sync_data().await?;
        let dir = dest.parent().ok_or_else(|| io::Error::other("blob path without a directory"))?;
        tokio::fs::create_dir_all(dir).await?;
        tokio::fs::rename(path, &dest).await?;
        sync_dir(dir).await
    }

    /// Where multipart parts live.
    pub fn parts_root(&self) -> PathBuf {
        self.root.join("parts")
    }

    /// The directory of one upload's parts.
    pub fn upload_dir(&self, upload_id: &str) -> io::Result<PathBuf> {
        if upload_id.is_empty() || !upload_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad upload id"));
        }
        Ok(self.parts_root().join(upload_id))
    }

    /// Moves a fully written temp file to `dest` durably (fsync data, rename, fsync dir).
    pub async fn commit_to(&self, mut writer: BlobWriter, dest: &Path) -> io::Result<()> {
        writer.sync().await?;
        let dir = dest.parent().ok_or_else(|| io::Error::other("destination without a directory"))?;
        tokio::fs::create_dir_all(dir).await?;
        tokio::fs::rename(&writer.path, dest).await?;
        writer.committed = true;
        sync_dir(dir).await
    }
}

#[async_trait::async_trait]
impl BlobStore for DiskBlobs {
    async fn create(&self) -> io::Result<BlobWriter> {
        let path = self.root.join("tmp").join(new_id());
        let file = File::create(&path).await?;
        Ok(BlobWriter { file: Some(file), path, committed: false })
    }

    async fn commit(&self, writer: BlobWriter, id: &str) -> io::Result<()> {
        let dest = self.path_of(id)?;
        self.commit_to(writer, &dest).await
    }

    async fn open(&self, id: &str) -> io::Result<Option<File>> {
        match File::open(self.path_of(id)?).await {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn duplicate(&self, from: &str, to: &str) -> io::Result<()> {
        let (from, to) = (self.path_of(from)?, self.path_of(to)?);
        let dir = to.parent().ok_or_else(|| io::Error::other("blob path without a directory"))?.to_path_buf();
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::hard_link(&from, &to).await?;
        sync_dir(&dir).await
    }

    async fn remove(&self, id: &str) -> io::Result<()> {
        match tokio::fs::remove_file(self.path_of(id)?).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    async fn list(&self) -> io::Result<Vec<(String, std::time::Duration)>> {
        let root = self.root.join("blobs");
        tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            for shard in std::fs::read_dir(root)? {
                let shard = shard?;
                // The marker, and anything else that is not a shard directory.
                if !shard.file_type()?.is_dir() {
                    continue;
                }
                for entry in std::fs::read_dir(shard.path())? {
                    let entry = entry?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    // Quarantined copies are not blobs: the orphan sweep must leave them alone.
                    if !name.bytes().all(|b| b.is_ascii_hexdigit()) {
                        continue;
                    }
                    let age = entry.metadata()?.modified()?.elapsed().unwrap_or_default();
                    found.push((name, age));
                }
            }
            Ok(found)
        })
        .await
        .map_err(io::Error::other)?
    }
}
