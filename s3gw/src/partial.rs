//! A large pull in progress, kept on disk so that an interrupted pull (holder gone, link cut,
//! this node restarted) continues where it stopped instead of from zero.
//!
//! Layout under the data dir: `partial/<blob>` is the blob's bytes at their offsets (a sparse
//! file of the blob's size), `partial/<blob>.journal` its side record: a first line of JSON
//! ([`Header`]: record version, the object's size and ETag, the segment size) and then one line
//! per finished segment, `<index> <sha256 hex>`, appended only after the segment's bytes were
//! fsynced. A journal whose header does not match the object being pulled (another version, a
//! record of another format) is not trusted: the partial starts over. On reopening, every
//! finished segment is read back and checked against its SHA-256, so a segment damaged on
//! this disk is fetched again rather than failing the whole blob at the end; the bytes are
//! still verified against the object's own digests (MD5 per part) before the blob is kept.
//!
//! The object's MD5s are computed while the pull runs ([`PrefixHash`]): as segments land, the
//! contiguous prefix of finished segments is read back (from the page cache, just written) and
//! hashed in order, so the pull is verified when its last segment lands instead of after a
//! second read of the whole file. The MD5 state is not persisted: reopening a partial already
//! reads every finished segment back for its SHA-256, and that same read feeds the contiguous
//! prefix to the MD5s, so a resumed pull re-hashes its prefix once at no extra disk cost.
//!
//! Nothing here is replicated or sent: it is this node's own scratch state, so its format is
//! versioned by [`JOURNAL_VERSION`] alone and an unknown version is simply discarded.

use std::io::{self, BufRead as _, Write as _};
use std::ops::Range;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use meridian_raft::model::ObjectMeta;
use sha2::{Digest as _, Sha256};

use crate::replica::Verifier;

/// Version of the journal's format; a journal of another version is discarded.
pub(crate) const JOURNAL_VERSION: u32 = 1;

/// The directory of partial pulls under a data dir.
pub(crate) fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("partial")
}

/// The first line of a journal: what the partial file is a partial copy of.
#[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Header {
    /// [`JOURNAL_VERSION`] of the writer.
    version: u32,
    /// The blob's id.
    blob: String,
    /// The object's size: the file's length.
    size: u64,
    /// The object's ETag: a new version with the same blob id cannot happen, but a mismatch
    /// would mean the partial is of other bytes.
    etag: String,
    /// Segment size the indexes of the journal count in.
    segment_bytes: u64,
}

/// A partial copy of one blob being pulled.
pub(crate) struct Partial {
    /// The partial file (written at offsets by several streams at once).
    data: std::fs::File,
    /// Where it is.
    data_path: PathBuf,
    /// Its journal, appended to as segments finish.
    journal: Mutex<std::fs::File>,
    /// Where the journal is.
    journal_path: PathBuf,
    /// The blob's size.
    size: u64,
    /// Segment size.
    segment_bytes: u64,
    /// Which segments are finished (their bytes are durable and hashed).
    done: Mutex<Vec<bool>>,
    /// The object's MD5s over the contiguous prefix of finished segments, advanced as segments
    /// land (see the module doc).
    hash: Mutex<PrefixHash>,
    /// The object the partial is a copy of: a fresh [`Verifier`] is made from it when bytes
    /// failed verification and the prefix is hashed again.
    object: ObjectMeta,
    /// Woken each time a segment lands, for the task that advances [`Partial::hash`].
    landed: tokio::sync::Notify,
}

/// The object's digests over the verified prefix of a partial file: the MD5 state, how far
/// it got, and the first part that did not match.
struct PrefixHash {
    /// The object's MD5s (per part) over bytes `0..hashed_to`.
    verifier: Verifier,
    /// Bytes hashed so far: a segment boundary (or the size).
    hashed_to: u64,
    /// The bytes that did not match their digest, once one part failed: hashing stops there.
    failed: Option<Range<u64>>,
}

impl PrefixHash {
    /// Nothing hashed yet.
    fn new(object: &ObjectMeta) -> Self {
        Self { verifier: Verifier::new(object), hashed_to: 0, failed: None }
    }

    /// Hashes the bytes at `hashed_to` (a whole segment), unless a part already failed.
    fn feed(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if !self.verifier.update(bytes) {
            self.failed = Some(self.verifier.failing_range());
        }
        self.hashed_to += bytes.len() as u64;
    }
}

impl Partial {
    /// Opens the partial copy of `object`'s blob under `dir`, or starts one. Returns it with the
    /// bytes it already holds, checked. Blocking.
    pub(crate) fn open(dir: &Path, object: &ObjectMeta, segment_bytes: u64) -> io::Result<(Self, u64)> {
        std::fs::create_dir_all(dir)?;
        let blob = &object.blob;
        if blob.is_empty() || !blob.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad blob id {blob:?}")));
        }
        let data_path = dir.join(blob);
        let journal_path = dir.join(format!("{blob}.journal"));
        let header = Header {
            version: JOURNAL_VERSION,
            blob: blob.clone(),
            size: object.size,
            etag: object.etag.clone(),
            segment_bytes: segment_bytes.max(1),
        };
        let segments = usize::try_from(object.size.div_ceil(header.segment_bytes))
            .map_err(|_| io::Error::other("too many segments"))?;
        let mut done = vec![false; segments];
        let kept = match read_journal(&journal_path, &header) {
            Some(hashes) if data_path.exists() => hashes,
            _ => Vec::new(),
        };
        let data = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&data_path)?;
        if kept.is_empty() {
            data.set_len(0)?;
        }
        data.set_len(object.size)?;
        let mut resumed = 0;
        let mut good = Vec::new();
        let mut prefix = PrefixHash::new(object);
        // In ascending order, so the read-back that checks each segment also feeds the
        // contiguous prefix to the MD5s (a resumed pull hashes nothing twice at the end).
        let mut kept = kept;
        kept.sort_by_key(|(index, _)| *index);
        for (index, hash) in kept {
            let Some(slot) = done.get_mut(usize::try_from(index).unwrap_or(usize::MAX)) else { continue };
            let range = segment_range(index, header.segment_bytes, object.size);
            let mut bytes = vec![0u8; usize::try_from(range.end - range.start).unwrap_or(0)];
            data.read_exact_at(&mut bytes, range.start)?;
            if Sha256::digest(&bytes).as_slice() == hash.as_slice() && !*slot {
                *slot = true;
                resumed += range.end - range.start;
                good.push((index, hash));
                if prefix.hashed_to == range.start {
                    prefix.feed(&bytes);
                }
            } else {
                tracing::warn!(
                    blob,
                    segment = index,
                    "a segment of a partial pull no longer matches its hash; fetching it again"
                );
            }
        }
        // The journal is rewritten with what was found good: a torn last line, a damaged
        // segment or a journal of another object leaves nothing behind.
        let tmp = dir.join(format!("{blob}.journal.tmp"));
        {
            let mut file = std::fs::File::create(&tmp)?;
            let mut text = serde_json::to_string(&header).map_err(io::Error::other)?;
            text.push('\n');
            for (index, hash) in &good {
                text.push_str(&format!("{index} {}\n", hex::encode(hash)));
            }
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, &journal_path)?;
        let journal = std::fs::OpenOptions::new().append(true).open(&journal_path)?;
        let partial = Self {
            data,
            data_path,
            journal: Mutex::new(journal),
            journal_path,
            size: object.size,
            segment_bytes: header.segment_bytes,
            done: Mutex::new(done),
            hash: Mutex::new(prefix),
            object: object.clone(),
            landed: tokio::sync::Notify::new(),
        };
        Ok((partial, resumed))
    }

    /// The byte range of segment `index`.
    pub(crate) fn segment_range(&self, index: u64) -> Range<u64> {
        segment_range(index, self.segment_bytes, self.size)
    }

    /// The unfinished segments, in order.
    pub(crate) fn todo(&self) -> Vec<u64> {
        let done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        done.iter().enumerate().filter(|(_, d)| !**d).map(|(i, _)| i as u64).collect()
    }

    /// Writes segment `index`'s bytes at their offset, makes them durable, then records the
    /// segment as finished. Blocking.
    pub(crate) fn write_segment(&self, index: u64, bytes: &[u8]) -> io::Result<()> {
        let range = self.segment_range(index);
        if bytes.len() as u64 != range.end - range.start {
            return Err(io::Error::other(format!("segment {index}: {} bytes for a range of {range:?}", bytes.len())));
        }
        self.data.write_all_at(bytes, range.start)?;
        self.data.sync_data()?;
        let line = format!("{index} {}\n", hex::encode(Sha256::digest(bytes)));
        self.journal.lock().unwrap_or_else(PoisonError::into_inner).write_all(line.as_bytes())?;
        if let Some(slot) = self.done.lock().unwrap_or_else(PoisonError::into_inner).get_mut(index as usize) {
            *slot = true;
        }
        self.landed.notify_one();
        Ok(())
    }

    /// Waits until a segment lands (one landed since the last wait counts).
    pub(crate) async fn segment_landed(&self) {
        self.landed.notified().await;
    }

    /// Hashes the finished segments that extend the contiguous hashed prefix, in order, reading
    /// them back from the file (just written: the page cache). Returns the bytes hashed so
    /// far. Blocking; concurrent callers take turns.
    pub(crate) fn advance_hash(&self) -> io::Result<u64> {
        let mut prefix = self.hash.lock().unwrap_or_else(PoisonError::into_inner);
        let mut bytes = Vec::new();
        while prefix.failed.is_none() && prefix.hashed_to < self.size {
            let index = prefix.hashed_to / self.segment_bytes;
            let finished = self
                .done
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(usize::try_from(index).unwrap_or(usize::MAX))
                .copied()
                .unwrap_or(false);
            if !finished {
                break;
            }
            let range = self.segment_range(index);
            bytes.resize(usize::try_from(range.end - range.start).unwrap_or(0), 0);
            self.data.read_exact_at(&mut bytes, range.start)?;
            prefix.feed(&bytes);
        }
        Ok(prefix.hashed_to)
    }

    /// Forgets the segments overlapping `range` (their bytes failed verification), in memory
    /// and in the journal. Blocking.
    pub(crate) fn forget(&self, range: &Range<u64>) -> io::Result<()> {
        // The MD5 state past the failed part is worthless and its start is not kept: the next
        // round hashes from the start again (a failure is rare; a wrong digest is not).
        *self.hash.lock().unwrap_or_else(PoisonError::into_inner) = PrefixHash::new(&self.object);
        let mut done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        for (i, slot) in done.iter_mut().enumerate() {
            let r = self.segment_range(i as u64);
            if r.start < range.end && range.start < r.end {
                *slot = false;
            }
        }
        // The journal's lines for those segments must go too: rewrite it from what is left.
        let mut text = String::new();
        let journal = std::fs::File::open(&self.journal_path)?;
        for (n, line) in io::BufReader::new(journal).lines().enumerate() {
            let line = line?;
            let keep = n == 0
                || line
                    .split_once(' ')
                    .and_then(|(i, _)| i.parse::<usize>().ok())
                    .is_some_and(|i| done.get(i).copied().unwrap_or(false));
            if keep {
                text.push_str(&line);
                text.push('\n');
            }
        }
        let mut journal = self.journal.lock().unwrap_or_else(PoisonError::into_inner);
        let mut file = std::fs::OpenOptions::new().write(true).truncate(true).open(&self.journal_path)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        *journal = std::fs::OpenOptions::new().append(true).open(&self.journal_path)?;
        Ok(())
    }

    /// The verdict of the object's digests once every segment is finished: hashes whatever
    /// of the prefix the pull left (nothing, when it kept up) and answers `Err(range)` for the
    /// bytes that did not match (one part of a multipart object; the whole blob otherwise).
    /// Blocking.
    pub(crate) fn verify(&self) -> io::Result<Result<(), Range<u64>>> {
        let hashed = self.advance_hash()?;
        let prefix = self.hash.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(failed) = &prefix.failed {
            return Ok(Err(failed.clone()));
        }
        if hashed == self.size && prefix.verifier.verified(self.size) { Ok(Ok(())) } else { Ok(Err(0..self.size)) }
    }

    /// The partial file, for the blob store to adopt once verified.
    pub(crate) fn data_path(&self) -> &Path {
        &self.data_path
    }

    /// Removes the journal (after the data file became the blob).
    pub(crate) fn finish(self) -> io::Result<()> {
        remove_file_if_present(&self.journal_path)
    }
}

/// The byte range of segment `index` of a blob of `size` bytes.
fn segment_range(index: u64, segment_bytes: u64, size: u64) -> Range<u64> {
    let start = index.saturating_mul(segment_bytes).min(size);
    start..start.saturating_add(segment_bytes).min(size)
}

/// The finished segments a journal lists, if its header is `expected`'s; `None` for a missing
/// journal, one of another object or version, or an unreadable one.
fn read_journal(path: &Path, expected: &Header) -> Option<Vec<(u64, Vec<u8>)>> {
    let file = std::fs::File::open(path).ok()?;
    // Bounded: a journal has a line per segment; anything longer than that is not ours.
    let most_lines = expected.size.div_ceil(expected.segment_bytes) + 1;
    let mut lines = io::BufReader::new(file).lines();
    let header: Header = serde_json::from_str(&lines.next()?.ok()?).ok()?;
    if &header != expected {
        return None;
    }
    let mut found = Vec::new();
    for line in lines.take(usize::try_from(most_lines).unwrap_or(usize::MAX)) {
        // A torn last line (a crash while appending) ends the list.
        let Ok(line) = line else { break };
        let Some((index, hash)) = line.split_once(' ') else { break };
        let (Ok(index), Ok(hash)) = (index.parse::<u64>(), hex::decode(hash)) else { break };
        if hash.len() != 32 {
            break;
        }
        found.push((index, hash));
    }
    Some(found)
}

fn remove_file_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes the partial copy of `blob` and its journal, if there is one. Blocking.
pub(crate) fn discard(dir: &Path, blob: &str) -> io::Result<bool> {
    if blob.is_empty() || !blob.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(false);
    }
    let data = dir.join(blob);
    let present = data.exists();
    remove_file_if_present(&data)?;
    remove_file_if_present(&dir.join(format!("{blob}.journal")))?;
    remove_file_if_present(&dir.join(format!("{blob}.journal.tmp")))?;
    Ok(present)
}

/// The blob ids of the partial copies under `dir`. Blocking.
pub(crate) fn list(dir: &Path) -> io::Result<Vec<String>> {
    let mut blobs = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(blobs),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let blob = name.split('.').next().unwrap_or_default();
        if !blob.is_empty() && blob.bytes().all(|b| b.is_ascii_hexdigit()) && !blobs.iter().any(|b| b == blob) {
            blobs.push(blob.to_owned());
        }
    }
    Ok(blobs)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::os::unix::fs::FileExt as _;

    use super::*;

    fn object(data: &[u8]) -> ObjectMeta {
        use s3s::crypto::Checksum as _;
        ObjectMeta {
            blob: "abcdef0123".into(),
            inline: None,
            size: data.len() as u64,
            etag: hex::encode(s3s::crypto::Md5::checksum(data)),
            last_modified: 0,
            headers: Default::default(),
            tags: Vec::new(),
            checksums: Default::default(),
            parts: Vec::new(),
            holders: Default::default(),
        }
    }

    #[test]
    fn finished_segments_survive_a_reopen_and_damaged_ones_do_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let meta = object(&data);
        let (partial, resumed) = Partial::open(dir.path(), &meta, 100).expect("open");
        assert_eq!((resumed, partial.todo().len()), (0, 10));
        for i in [0u64, 1, 2, 5] {
            let r = partial.segment_range(i);
            partial.write_segment(i, &data[r.start as usize..r.end as usize]).expect("write");
        }
        drop(partial);
        // Damage segment 5 on disk and tear the journal's last line.
        let file = std::fs::OpenOptions::new().write(true).open(dir.path().join(&meta.blob)).expect("open data");
        file.write_all_at(b"X", 550).expect("damage");
        let mut journal = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(format!("{}.journal", meta.blob)))
            .expect("journal");
        journal.write_all(b"7 abc").expect("torn line");
        let (partial, resumed) = Partial::open(dir.path(), &meta, 100).expect("reopen");
        assert_eq!(resumed, 300, "segments 0-2 kept, 5 damaged, 7 never finished");
        assert_eq!(partial.todo(), vec![3, 4, 5, 6, 7, 8, 9]);
        for i in partial.todo() {
            let r = partial.segment_range(i);
            partial.write_segment(i, &data[r.start as usize..r.end as usize]).expect("write");
        }
        assert_eq!(partial.verify().expect("read"), Ok(()));
        // Another version of the object (another ETag) does not reuse it.
        let mut other = meta.clone();
        other.etag = "0".repeat(32);
        assert_eq!(Partial::open(dir.path(), &other, 100).expect("open").1, 0);
    }

    #[test]
    fn wrong_bytes_fail_verification_and_are_forgotten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = vec![7u8; 250];
        let meta = object(&data);
        let (partial, _) = Partial::open(dir.path(), &meta, 100).expect("open");
        for i in 0..3 {
            let r = partial.segment_range(i);
            let mut bytes = data[r.start as usize..r.end as usize].to_vec();
            if i == 1 {
                bytes[3] = 8;
            }
            partial.write_segment(i, &bytes).expect("write");
        }
        let bad = partial.verify().expect("read").expect_err("corrupt");
        partial.forget(&bad).expect("forget");
        assert_eq!(partial.todo(), vec![0, 1, 2], "a single-part object is refused whole");
        drop(partial);
        assert_eq!(Partial::open(dir.path(), &meta, 100).expect("reopen").1, 0, "the journal forgot them too");
        assert!(discard(dir.path(), &meta.blob).expect("discard"));
        assert!(list(dir.path()).expect("list").is_empty(), "no trace left");
    }

    /// The MD5s follow the contiguous prefix of finished segments as they land (out of order
    /// too), a reopened partial has its prefix hashed by the read-back that checks it, and
    /// the verdict needs no further read when everything was hashed as it landed.
    #[test]
    fn the_prefix_is_hashed_as_segments_land_and_again_on_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 241) as u8).collect();
        let meta = object(&data);
        let write = |partial: &Partial, i: u64| {
            let r = partial.segment_range(i);
            partial.write_segment(i, &data[r.start as usize..r.end as usize]).expect("write");
        };
        let (partial, _) = Partial::open(dir.path(), &meta, 100).expect("open");
        write(&partial, 1);
        assert_eq!(partial.advance_hash().expect("hash"), 0, "segment 0 is missing: nothing to hash");
        write(&partial, 0);
        write(&partial, 3);
        assert_eq!(partial.advance_hash().expect("hash"), 200, "0 and 1, not 3 beyond the gap");
        drop(partial);

        let (partial, resumed) = Partial::open(dir.path(), &meta, 100).expect("reopen");
        assert_eq!(resumed, 300);
        assert_eq!(partial.advance_hash().expect("hash"), 200, "the reopen hashed the prefix it read back");
        for i in partial.todo() {
            write(&partial, i);
            partial.advance_hash().expect("hash");
        }
        assert_eq!(partial.advance_hash().expect("hash"), 1000);
        assert_eq!(partial.verify().expect("verdict"), Ok(()));
    }
}
