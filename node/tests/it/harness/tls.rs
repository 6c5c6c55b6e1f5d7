//! The test clusters' certificates: one CA per cluster name and a certificate for every region
//! name the harness uses, made once per test process (issuing takes milliseconds, but every test
//! node would otherwise make its own). A config names them with [`tls_section`]; each region's
//! files sit beside the CA as `<region>.crt` / `<region>.key`, where the config finds them by
//! default.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use meridian_tls::NodeName;
use meridian_tls::pki::{self, NodeCertRequest};

/// The process's certificate directory (kept until the process ends) and the clusters made in it.
struct Pki {
    /// Holds the directory for the life of the process.
    root: tempfile::TempDir,
    /// Cluster name → its directory (CA and region certificates).
    clusters: Mutex<HashMap<String, PathBuf>>,
}

fn pki_root() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| Pki {
        root: tempfile::Builder::new().prefix("meridian-test-pki-").tempdir().expect("pki dir"),
        clusters: Mutex::new(HashMap::new()),
    })
}

/// The directory of `cluster`'s CA and certificates, with the CA made on first use and a
/// certificate for each of `regions` not issued yet.
pub fn cluster_pki(cluster: &str, regions: &[&str]) -> PathBuf {
    let pki = pki_root();
    let mut clusters = pki.clusters.lock().expect("pki lock");
    let next = clusters.len();
    let dir = clusters.entry(cluster.to_owned()).or_insert_with(|| {
        let dir = pki.root.path().join(format!("cluster-{next}"));
        pki::init_ca(cluster, &dir.join("ca.crt"), &dir.join("ca.key"), 30).expect("test CA");
        dir
    });
    for region in regions {
        let cert = dir.join(format!("{region}.crt"));
        if cert.exists() {
            continue;
        }
        let request = NodeCertRequest {
            name: NodeName::new(cluster, region),
            hosts: vec!["127.0.0.1".into(), "localhost".into()],
            validity_days: 30,
        };
        pki::issue(&dir.join("ca.crt"), &dir.join("ca.key"), &request, &cert, &dir.join(format!("{region}.key")))
            .expect("test node certificate");
    }
    dir.clone()
}

/// The cluster CA's certificate of `cluster` (what an HTTPS client of its nodes trusts).
pub fn ca_cert(cluster: &str) -> PathBuf {
    cluster_pki(cluster, &[]).join("ca.crt")
}

/// The `[tls]` table of a test config of `cluster` whose regions are `regions` (each gets its
/// certificate beside the CA's, where the config looks by default).
pub fn tls_section(cluster: &str, regions: &[&str]) -> String {
    format!("[tls]\nca_cert = '{}'\n", cluster_pki(cluster, regions).join("ca.crt").display())
}
