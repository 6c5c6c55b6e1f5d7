//! The one binary encoding of the store: bincode 2 over serde.
//!
//! Log entries, state machine records and snapshot records all go through these two functions, so
//! the on-disk format is decided in one place.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StoreError;

/// bincode's standard configuration: varint integers, little endian.
const CONFIG: bincode::config::Configuration = bincode::config::standard();

/// Encodes a value for storage or the wire.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    bincode::serde::encode_to_vec(value, CONFIG).map_err(|e| StoreError::Codec(e.to_string()))
}

/// Decodes a value written by [`encode`].
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    bincode::serde::decode_from_slice(bytes, CONFIG)
        .map(|(value, _read)| value)
        .map_err(|e| StoreError::Codec(e.to_string()))
}
