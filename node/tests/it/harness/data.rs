//! Test data and what to compare it with: deterministic pseudo-random bytes, the hashes and
//! checksums S3 reports (MD5 ETags, SHA-256, CRC-32/32C), and a byte comparison that does not
//! dump megabytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// xorshift64*: deterministic pseudo-random bytes, no `rand` needed.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        // Never zero; mix the seed so that small seeds differ a lot.
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// `len` pseudo-random bytes determined by `seed`.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    XorShift::new(seed).fill(&mut v);
    v
}

pub const MIB: usize = 1024 * 1024;

pub fn md5_bytes(data: &[u8]) -> [u8; 16] {
    use md5::{Digest, Md5};
    let mut out = [0u8; 16];
    out.copy_from_slice(&Md5::digest(data));
    out
}

pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(md5_bytes(data))
}

/// The ETag S3 gives a single-part object: the quoted hex MD5.
pub fn etag_of(data: &[u8]) -> String {
    format!("\"{}\"", md5_hex(data))
}

/// The ETag S3 gives a multipart object: `"<hex md5 of the concatenated binary part md5s>-N"`.
pub fn multipart_etag(parts: &[&[u8]]) -> String {
    let mut concat = Vec::with_capacity(parts.len() * 16);
    for p in parts {
        concat.extend_from_slice(&md5_bytes(p));
    }
    format!("\"{}-{}\"", md5_hex(&concat), parts.len())
}

pub fn sha256_bytes(data: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut out = [0u8; 32];
    out.copy_from_slice(&Sha256::digest(data));
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha256_bytes(data))
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    BASE64.encode(data)
}

fn crc32_reflected(poly: u32, data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ poly } else { crc >> 1 };
        }
    }
    !crc
}

/// CRC-32 (IEEE), as in `x-amz-checksum-crc32`.
pub fn crc32(data: &[u8]) -> u32 {
    crc32_reflected(0xEDB8_8320, data)
}

/// CRC-32C (Castagnoli), as in `x-amz-checksum-crc32c`.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32_reflected(0x82F6_3B78, data)
}

/// The `x-amz-checksum-*` header value of a CRC: base64 of the big-endian u32.
pub fn b64_crc(crc: u32) -> String {
    base64(&crc.to_be_bytes())
}

/// CRC-64/NVME, as in `x-amz-checksum-crc64nvme` (bitwise, reflected polynomial
/// 0x9A6C9329AC4BC9B5): independent of the table-driven code the node uses.
pub fn crc64nvme(data: &[u8]) -> u64 {
    let mut crc = !0u64;
    for &b in data {
        crc ^= u64::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x9A6C_9329_AC4B_C9B5 } else { crc >> 1 };
        }
    }
    !crc
}

/// The `x-amz-checksum-crc64nvme` header value: base64 of the big-endian u64.
pub fn b64_crc64(crc: u64) -> String {
    base64(&crc.to_be_bytes())
}

/// Raw SHA-1 of `data`, as in `x-amz-checksum-sha1` (before base64).
pub fn sha1_bytes(data: &[u8]) -> [u8; 20] {
    use sha1::Digest as _;
    sha1::Sha1::digest(data).into()
}

/// Asserts that `a` equals `b` without dumping megabytes on failure.
#[track_caller]
pub fn assert_bytes_eq(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first_diff = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: bytes differ: got {} bytes (md5 {}), want {} bytes (md5 {}); first difference at {:?}",
            got.len(),
            md5_hex(got),
            want.len(),
            md5_hex(want),
            first_diff
        );
    }
}
