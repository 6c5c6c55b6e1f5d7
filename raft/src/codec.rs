//! The one binary encoding of the store: bincode 2 over serde.
//!
//! Log entries, state machine records and snapshot records all go through these two functions, so
//! the on-disk format is decided in one place.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StoreError;

/// bincode's standard configuration: varint integers, little endian.
const CONFIG: bincode::config::Configuration = bincode::config::standard();

/// Most bytes one decoded value may claim. bincode otherwise trusts a length prefix and
/// allocates what it says before finding the input too short: one damaged or hostile record
/// could abort the node. The largest legitimate value is an internal request body (the internal
/// listener takes at most 64 MiB).
const MAX_DECODED_BYTES: usize = 64 * 1024 * 1024;

/// [`CONFIG`] with [`MAX_DECODED_BYTES`]: the same encoding, a bounded decoder.
const DECODE_CONFIG: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_DECODED_BYTES>,
> = CONFIG.with_limit::<MAX_DECODED_BYTES>();

/// Encodes a value for storage or the wire.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    bincode::serde::encode_to_vec(value, CONFIG).map_err(|e| StoreError::Codec(e.to_string()))
}

/// Decodes a value written by [`encode`].
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    bincode::serde::decode_from_slice(bytes, DECODE_CONFIG)
        .map(|(value, _read)| value)
        .map_err(|e| StoreError::Codec(e.to_string()))
}
