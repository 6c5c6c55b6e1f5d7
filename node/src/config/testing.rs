//! Fixtures the unit tests of every section share: a minimal valid `cluster.toml` and loading
//! a variant of it from a temporary file.

use super::{ClusterConfig, ConfigError};

/// Loads `text` as the `cluster.toml` of a temporary directory.
pub(crate) fn load_str(text: &str) -> Result<ClusterConfig, ConfigError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cluster.toml");
    std::fs::write(&path, text).expect("write config");
    ClusterConfig::load(&path)
}

/// Asserts that each config text is refused with an error naming its field.
pub(super) fn assert_errors_name_the_field<const N: usize>(cases: [(String, &str); N]) {
    assert!(load_str(VALID).is_ok());
    for (text, field) in cases {
        let message = load_str(&text).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains(field), "error {message:?} should name {field}");
    }
}

/// The smallest valid config: one voter region, a dev key, every section at its default.
pub(crate) const VALID: &str = r#"
[cluster]
name = "t"
secret = "0123456789abcdef0123"
default_region = "a"
[dev_key]
access_key_id = "KEY"
secret_access_key = "secret-secret"
[tls]
ca_cert = "tls/ca.crt"
[[region]]
id = 1
name = "a"
latitude = 1.0
longitude = 2.0
s3 = "127.0.0.1:1"
web = "127.0.0.1:2"
internal = "127.0.0.1:3"
data_dir = "data/a"
role = "voter"
"#;

/// One valid `[[events.webhook]]`, appended to [`VALID`].
pub(super) const WEBHOOK: &str = r#"
[[events.webhook]]
name = "catalog"
url = "http://127.0.0.1:9/hook"
secret = "0123456789abcdef-hook"
"#;
