//! Property tests: stored and received bytes that are damaged or hostile (a log entry, a command
//! inside one, a snapshot stream) decode to an error, never to a panic, and never make the node
//! allocate what a length prefix claims.

use proptest::prelude::*;

use crate::codec::{decode, encode};
use crate::command::Command;
use crate::model::{Bucket, ContentHeaders, ObjectMeta};
use crate::snapshot::read_part;
use crate::types::TypeConfig;

/// A realistic entry to damage: a batch with an object write carrying inline bytes.
fn sample_entry() -> openraft::Entry<TypeConfig> {
    let meta = ObjectMeta {
        blob: String::new(),
        inline: Some(b"sixteen kib at most".to_vec()),
        size: 19,
        etag: "e".into(),
        last_modified: 1,
        headers: ContentHeaders::default(),
        tags: vec![("k".into(), "v".into())],
        checksums: crate::model::Checksums::default(),
        parts: Vec::new(),
        holders: std::collections::BTreeMap::new(),
    };
    let command = Command::Batch(vec![
        Command::CreateBucket(Bucket { name: "films".into(), created: 1, region: "r".into() }),
        Command::PutObject {
            bucket: "films".into(),
            key: "a/b".into(),
            meta,
            condition: crate::command::WriteCondition::None,
            completes_upload: None,
        },
    ]);
    openraft::Entry {
        log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(3, 1), 42),
        payload: openraft::EntryPayload::Normal(command),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn garbage_never_panics_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<openraft::Entry<TypeConfig>>(&bytes);
        let _ = decode::<Command>(&bytes);
        let _ = decode::<ObjectMeta>(&bytes);
        let _ = read_part(&mut bytes.as_slice());
    }

    #[test]
    fn a_damaged_entry_never_panics(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = encode(&sample_entry()).expect("encodes");
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let _ = decode::<openraft::Entry<TypeConfig>>(&bytes);
        let _ = decode::<openraft::Entry<TypeConfig>>(&bytes[..cut.index(bytes.len())]);
    }

    #[test]
    fn a_truncated_entry_is_an_error(cut in any::<prop::sample::Index>()) {
        let bytes = encode(&sample_entry()).expect("encodes");
        let len = cut.index(bytes.len());
        prop_assert!(decode::<openraft::Entry<TypeConfig>>(&bytes[..len]).is_err());
    }

    #[test]
    fn length_prefixes_claim_nothing_that_is_not_there(claimed in any::<u32>(), present in 0usize..64) {
        let mut stream = claimed.to_be_bytes().to_vec();
        stream.extend(std::iter::repeat_n(7u8, present));
        match read_part(&mut stream.as_slice()) {
            Ok(Some(part)) => prop_assert_eq!(part.len() as u64, u64::from(claimed)),
            Ok(None) => prop_assert!(false, "a length prefix is not a clean end"),
            Err(_) => prop_assert!(u64::from(claimed) > present as u64),
        }
    }
}

/// A varint length prefix near `u64::MAX` inside a record is refused without allocating it.
#[test]
fn huge_length_prefixes_inside_records_are_errors() {
    // bincode's varint: 253 announces a u64 follows.
    let mut bytes = vec![0u8, 253];
    bytes.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(decode::<ObjectMeta>(&bytes).is_err());
    assert!(decode::<Command>(&[6, 253, 255, 255, 255, 255, 255, 255, 255, 127]).is_err());
}
