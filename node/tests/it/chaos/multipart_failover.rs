//! A leader change in the middle of a large multipart upload: the client stays on one follower,
//! the leader is killed between two parts, then the new leader is frozen while the last part
//! goes up. Every part is retried until it is taken (a part upload is idempotent), the upload
//! completes, and the object reads back byte for byte through every region, with the ETag of its
//! parts, and ends up on every region's disk.

use std::time::{Duration, Instant};

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::harness::{MIB, multipart_etag, random_bytes};

use super::nemesis::current_leader;
use super::workload::chaos_client;
use super::{start_cluster, wait_replicated};

/// Runs `attempt` until it succeeds, at most `within`; panics with the last error.
async fn retry<T, F, Fut>(within: Duration, what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Ok(v) => {
                if tries > 1 {
                    println!("{what}: taken after {tries} attempts");
                }
                return v;
            }
            Err(e) if Instant::now() > deadline => panic!("{what}: still failing after {within:?}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_change_during_a_large_multipart_upload_loses_no_part() {
    let cluster = start_cluster("", |_, _| {}).await;
    let (leader, [via, _]) = cluster.roles().await;
    let client = chaos_client(cluster.node(via), Duration::from_secs(20));
    let bucket = "bigupload";
    let key = "film.mp4";
    client.create_bucket().bucket(bucket).send().await.expect("CreateBucket");
    let parts: Vec<Vec<u8>> = vec![random_bytes(191, 5 * MIB), random_bytes(192, 5 * MIB), random_bytes(193, 3 * MIB)];
    let created = retry(Duration::from_secs(30), "CreateMultipartUpload", || async {
        client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| DisplayErrorContext(&e).to_string())
    })
    .await;
    let upload_id = created.upload_id().expect("an upload id").to_owned();
    let mut done = Vec::new();
    for (n, part) in (1..).zip(&parts) {
        match n {
            2 => {
                println!("killing the leader, node {leader}, before part 2");
                cluster.node(leader).kill9();
            }
            3 => {
                cluster.node(leader).restart().await;
                if let Some(new_leader) = current_leader(&cluster, Duration::from_secs(30)).await {
                    println!("freezing the new leader, node {new_leader}, during part 3");
                    let frozen = cluster.node(new_leader).freeze();
                    // Thawed after a failover's worth of time, while the part is retried.
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(1500)).await;
                        drop(frozen);
                    });
                }
            }
            _ => {}
        }
        let etag = retry(Duration::from_secs(60), &format!("UploadPart {n}"), || async {
            let sent = client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .part_number(n)
                .body(ByteStream::from(part.clone()))
                .send()
                .await;
            sent.map(|out| out.e_tag().map(str::to_owned)).map_err(|e| DisplayErrorContext(&e).to_string())
        })
        .await;
        done.push(CompletedPart::builder().part_number(n).set_e_tag(etag).build());
    }
    let body = CompletedMultipartUpload::builder().set_parts(Some(done)).build();
    // A Complete whose answer was lost may have completed the upload: a retry then says
    // NoSuchUpload, and the object tells.
    retry(Duration::from_secs(60), "CompleteMultipartUpload", || async {
        let sent = client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(body.clone())
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) if DisplayErrorContext(&e).to_string().contains("NoSuchUpload") => Ok(()),
            Err(e) => Err(DisplayErrorContext(&e).to_string()),
        }
    })
    .await;

    let whole: Vec<u8> = parts.concat();
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let etag = multipart_etag(&refs);
    for (i, node) in cluster.nodes.iter().enumerate() {
        let reader = chaos_client(node, Duration::from_secs(30));
        let got = retry(Duration::from_secs(30), &format!("GET through node {i}"), || async {
            let out = reader
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| DisplayErrorContext(&e).to_string())?;
            let tag = out.e_tag().map(str::to_owned);
            let bytes = out.body.collect().await.map_err(|e| e.to_string())?.into_bytes();
            Ok((tag, bytes))
        })
        .await;
        assert_eq!(got.0.as_deref(), Some(etag.as_str()), "ETag through node {i}");
        assert!(got.1 == whole[..], "the bytes through node {i} differ from the {} uploaded", whole.len());
    }
    wait_replicated(&cluster, bucket, key, Duration::from_secs(60)).await.unwrap_or_else(|e| panic!("{e}"));
}
