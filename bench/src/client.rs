//! The S3 client used by every workload, and the loopback-only guard on its endpoint.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use aws_credential_types::Credentials;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::DisplayErrorContext;

/// What the client needs to reach one S3 endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Base URL, `http://127.0.0.1:9001`; must point at a loopback address.
    pub url: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
    /// Signing region.
    pub region: String,
    /// Upper bound on one operation, retries included (there are none).
    pub op_timeout: Duration,
    /// PEM certificates of the only CA an `https://` endpoint is trusted by (Meridian's cluster
    /// CA); `None`: the SDK's default client and trust.
    pub ca_pem: Option<Vec<u8>>,
}

/// Fails unless `url` is `http(s)://HOST[:PORT][/...]` with HOST a loopback address
/// (127.0.0.0/8, `[::1]` or `localhost`): the bench never sends traffic off this machine.
pub fn ensure_loopback(url: &str) -> anyhow::Result<()> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .with_context(|| format!("endpoint {url:?} must start with http:// or https://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        bail!("endpoint {url:?} must not carry user info");
    }
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().with_context(|| format!("endpoint {url:?} has an unclosed IPv6 bracket"))?
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(());
    }
    let ip: IpAddr =
        host.parse().with_context(|| format!("endpoint host {host:?} must be a loopback IP address or localhost"))?;
    if !ip.is_loopback() {
        bail!("endpoint host {ip} is not a loopback address; the bench only targets this machine");
    }
    Ok(())
}

/// Builds a path-style client with static credentials, no retries, a per-operation timeout,
/// and checksums computed or validated only where the S3 API requires them.
pub fn build(endpoint: &Endpoint) -> anyhow::Result<Client> {
    ensure_loopback(&endpoint.url)?;
    let credentials =
        Credentials::new(endpoint.access_key.clone(), endpoint.secret_key.clone(), None, None, "meridian-bench-static");
    let mut config = aws_sdk_s3::Config::builder();
    if let Some(pem) = &endpoint.ca_pem {
        use aws_smithy_http_client::tls;
        let trust = tls::TrustStore::empty().with_pem_certificate(pem.clone());
        let context = tls::TlsContext::builder().with_trust_store(trust).build().context("the CA's trust store")?;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
            .tls_context(context)
            .build_https();
        config = config.http_client(http);
    }
    let config = config
        .behavior_version_latest()
        .endpoint_url(endpoint.url.clone())
        .region(Region::new(endpoint.region.clone()))
        .credentials_provider(credentials)
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        // A failed operation is counted, not hidden behind a retry.
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_timeout(endpoint.op_timeout)
                .build(),
        )
        .build();
    Ok(Client::from_conf(config))
}

/// Creates `bucket` unless it already exists (and is reachable with these credentials).
pub async fn ensure_bucket(client: &Client, bucket: &str) -> anyhow::Result<()> {
    if client.head_bucket().bucket(bucket).send().await.is_ok() {
        return Ok(());
    }
    let created = client.create_bucket().bucket(bucket).send().await;
    if let Err(create_err) = created {
        // Another process may have created it in between; accept any bucket we can reach.
        client
            .head_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(|_| anyhow::anyhow!("cannot create bucket {bucket:?}: {}", DisplayErrorContext(&create_err)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_endpoints_pass() {
        for url in [
            "http://127.0.0.1:9001",
            "http://127.0.0.1:9001/",
            "https://127.3.4.5",
            "http://localhost:8333/x",
            "http://[::1]:9000",
        ] {
            assert!(ensure_loopback(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn other_endpoints_fail() {
        for url in [
            "http://10.0.0.1:9000",
            "http://192.168.1.2",
            "http://example.com:9000",
            "http://[2001:db8::1]:9000",
            "127.0.0.1:9000",
            "ftp://127.0.0.1",
            "http://user@127.0.0.1:9000",
            "http://127.0.0.1.example.com",
        ] {
            assert!(ensure_loopback(url).is_err(), "{url}");
        }
    }
}
