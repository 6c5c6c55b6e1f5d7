//! GetObjectAttributes: an object's size, ETag, storage class, checksum and parts in one call,
//! as AWS answers them for a general purpose bucket.
//!
//! - `Checksum`: the stored checksum with its `ChecksumType`. A COMPOSITE value is given
//!   without its `-N` part count (GetObject and HeadObject keep it): that is what S3 answers
//!   here, the part count being in `ObjectParts`.
//! - `ObjectParts`: `TotalPartsCount` for every multipart object; the `Part` elements (number,
//!   size, the part's checksum) only for an object made with a checksum algorithm, as S3 lists
//!   them; paged by `x-amz-max-parts` (at most 1000) and `x-amz-part-number-marker`.

use meridian_raft::model::{Checksums, ObjectMeta, PartChecksums};
use s3s::dto::{
    ETag, GetObjectAttributesInput, GetObjectAttributesOutput, GetObjectAttributesParts, ObjectPart, StorageClass,
};
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::convert::{checksum_dto, set_checksums, timestamp};
use crate::error;
use crate::gateway::Gateway;

/// Most parts one answer lists, S3's default and limit.
const MAX_PARTS: i32 = 1000;

/// The object's checksums as GetObjectAttributes shows them: a composite value without `-N`.
fn without_part_count(sums: &Checksums) -> Checksums {
    let strip =
        |value: &Option<String>| value.as_deref().map(|v| v.split_once('-').map_or(v, |(b64, _)| b64).to_owned());
    Checksums {
        crc32: strip(&sums.crc32),
        crc32c: strip(&sums.crc32c),
        sha1: strip(&sums.sha1),
        sha256: strip(&sums.sha256),
        crc64nvme: strip(&sums.crc64nvme),
    }
}

/// One page of `object`'s parts after `marker`, at most `max_parts` of them, each with its
/// checksum from `sums` (recorded at completion; absent for objects completed before the
/// cluster wrote format 2, whose parts are then listed without checksums).
fn parts_page(
    object: &ObjectMeta,
    sums: Option<&PartChecksums>,
    marker: Option<i32>,
    max_parts: Option<i32>,
) -> GetObjectAttributesParts {
    let total_parts_count = i32::try_from(object.parts.len()).ok();
    if crate::composite::checksum_type(&object.checksums).is_none() {
        // S3 answers the count alone here, whatever the paging asked for.
        return GetObjectAttributesParts { total_parts_count, ..Default::default() };
    }
    let max_parts = max_parts.unwrap_or(MAX_PARTS).clamp(0, MAX_PARTS);
    let limit = usize::try_from(max_parts).unwrap_or(0);
    // Part checksums recorded for another shape of parts would be misattributed: none then.
    let sums = sums.filter(|s| s.parts.len() == object.parts.len());
    let after: Vec<(usize, &meridian_raft::model::PartSummary)> =
        object.parts.iter().enumerate().filter(|(_, p)| p.number > marker.unwrap_or(0)).collect();
    let truncated = after.len() > limit;
    let shown: Vec<ObjectPart> = after
        .iter()
        .take(limit)
        .map(|(i, p)| {
            let mut part =
                ObjectPart { part_number: Some(p.number), size: i64::try_from(p.size).ok(), ..Default::default() };
            if let Some(sums) = sums.and_then(|s| s.parts.get(*i)) {
                set_checksums!(part, sums);
            }
            part
        })
        .collect();
    GetObjectAttributesParts {
        total_parts_count,
        part_number_marker: marker,
        next_part_number_marker: shown.last().filter(|_| truncated).and_then(|p| p.part_number),
        max_parts: Some(max_parts),
        is_truncated: Some(truncated),
        parts: Some(shown),
    }
}

impl Gateway {
    pub(crate) async fn get_object_attributes_op(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let input = req.input;
        if input.object_attributes.is_empty() {
            return Err(s3_error!(InvalidArgument, "x-amz-object-attributes must name at least one attribute"));
        }
        let found = self.version_for_read(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        let object = found.meta;
        let wants = |name: &str| input.object_attributes.iter().any(|a| a.as_str().eq_ignore_ascii_case(name));
        let parts = if wants("ObjectParts") && !object.parts.is_empty() {
            let sums = self.meta.part_checksums(&object.blob).map_err(error::store)?;
            Some(parts_page(&object, sums.as_ref(), input.part_number_marker, input.max_parts))
        } else {
            None
        };
        let kind = crate::composite::checksum_type(&object.checksums);
        let checksum = kind.map(|kind| s3s::dto::Checksum {
            checksum_type: Some(kind),
            ..checksum_dto(&without_part_count(&object.checksums))
        });
        Ok(S3Response::new(GetObjectAttributesOutput {
            e_tag: wants("ETag").then(|| ETag::Strong(object.etag.clone())),
            object_size: wants("ObjectSize").then(|| i64::try_from(object.size).ok()).flatten(),
            storage_class: wants("StorageClass").then(|| StorageClass::from_static(StorageClass::STANDARD)),
            checksum: checksum.filter(|_| wants("Checksum")),
            object_parts: parts,
            last_modified: Some(timestamp(object.last_modified)),
            version_id: found.version_id,
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_raft::model::PartSummary;

    fn object(parts: i32, checksum: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            blob: "b".into(),
            inline: None,
            size: 10,
            etag: "e-3".into(),
            last_modified: 0,
            headers: Default::default(),
            tags: Vec::new(),
            checksums: Checksums { sha256: checksum.map(str::to_owned), ..Default::default() },
            parts: (1..=parts).map(|n| PartSummary { number: n, size: 100 + n as u64, etag: "p".into() }).collect(),
            holders: Default::default(),
        }
    }

    fn sums(parts: i32) -> PartChecksums {
        PartChecksums {
            parts: (1..=parts).map(|n| Checksums { sha256: Some(format!("s{n}")), ..Default::default() }).collect(),
        }
    }

    #[test]
    fn parts_are_paged_with_their_checksums() {
        let object = object(3, Some("abc=-3"));
        let sums = sums(3);
        let page = parts_page(&object, Some(&sums), None, Some(2));
        assert_eq!(page.total_parts_count, Some(3));
        assert_eq!(page.is_truncated, Some(true));
        assert_eq!(page.next_part_number_marker, Some(2));
        let listed: Vec<_> =
            page.parts.iter().flatten().map(|p| (p.part_number, p.size, p.checksum_sha256.clone())).collect();
        assert_eq!(listed, vec![(Some(1), Some(101), Some("s1".into())), (Some(2), Some(102), Some("s2".into()))]);
        let page = parts_page(&object, Some(&sums), Some(2), Some(2));
        assert_eq!((page.is_truncated, page.next_part_number_marker), (Some(false), None));
        let listed: Vec<_> = page.parts.iter().flatten().map(|p| p.checksum_sha256.clone()).collect();
        assert_eq!(listed, vec![Some("s3".into())]);
        // Hostile paging: a huge or negative max-parts is clamped, a marker past the end is empty.
        assert_eq!(parts_page(&object, Some(&sums), None, Some(i32::MAX)).max_parts, Some(MAX_PARTS));
        assert_eq!(parts_page(&object, Some(&sums), None, Some(-5)).parts.map(|p| p.len()), Some(0));
        assert_eq!(parts_page(&object, Some(&sums), Some(i32::MAX), None).parts.map(|p| p.len()), Some(0));
        assert_eq!(parts_page(&object, Some(&sums), Some(i32::MIN), None).parts.map(|p| p.len()), Some(3));
    }

    #[test]
    fn parts_without_a_checksum_are_counted_not_listed_and_stray_sums_are_ignored() {
        let page = parts_page(&object(2, None), None, None, Some(1));
        assert_eq!((page.total_parts_count, page.parts.is_none()), (Some(2), true));
        assert_eq!((page.is_truncated, page.max_parts), (None, None), "the count alone");
        // Recorded sums for another number of parts are not attributed to these parts.
        let page = parts_page(&object(2, Some("abc=-2")), Some(&sums(3)), None, None);
        assert!(page.parts.iter().flatten().all(|p| p.checksum_sha256.is_none()));
        assert_eq!(page.parts.map(|p| p.len()), Some(2));
    }

    #[test]
    fn composite_values_lose_their_part_count_and_full_ones_stay() {
        let sums = Checksums {
            crc32: Some("AAAAAA==-12".into()),
            crc64nvme: Some("AAAAAAAAAAA=".into()),
            ..Default::default()
        };
        let shown = without_part_count(&sums);
        assert_eq!(shown.crc32.as_deref(), Some("AAAAAA=="));
        assert_eq!(shown.crc64nvme.as_deref(), Some("AAAAAAAAAAA="));
    }
}
