//! The cluster's certificates, made with `rcgen`: one cluster CA and a certificate per node.
//!
//! Layout of a certificate directory (`auction-node certs --out DIR`, the local cluster's
//! `<data-dir>/tls`, the docker cluster's `cluster/docker/.certs/<project>`):
//!
//! ```text
//! DIR/ca.pem, DIR/ca-key.pem          the cluster CA (the key never leaves DIR)
//! DIR/node-<id>/ca.pem                a copy of the CA certificate
//! DIR/node-<id>/node.pem              node <id>'s certificate, signed by the CA
//! DIR/node-<id>/node-key.pem          its private key
//! ```
//!
//! `DIR/node-<id>` is what that node's `--tls-dir` points at ([`super::tls::TlsIdentity::load`]).
//! Everything is made once: an existing CA is reused, so nodes added later (membership changes)
//! get certificates of the same CA, and an existing node directory is left alone.
//!
//! A node certificate names the node (`CN=node-<id>` and the SAN URI `urn:auction:node:<id>`),
//! its advertised host names and IPs, and loopback; it is valid for both TLS server and client
//! authentication, since every node is both. Keys are ECDSA P-256, written with mode 0600.
//!
//! Not done yet: no rotation or expiry warning (certificates last [`VALIDITY_YEARS`] years), no
//! revocation list. The CA is rebuilt from its key and the fixed subject below, so a CA
//! certificate made elsewhere with another subject cannot be reused to issue.

use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use super::tls::{CA_FILE, CERT_FILE, KEY_FILE};
use crate::error::Error;
use crate::NodeId;

/// The CA's private key, beside `ca.pem` at the top of a certificate directory.
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// How long the CA and node certificates are valid, from the start of the current year.
pub const VALIDITY_YEARS: i32 = 10;
/// Names every node certificate carries besides its own hosts: a node dialled over loopback
/// (the local cluster, the tests) must match, and it gives no more than membership does.
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The cluster CA: its key (which signs node certificates) and its certificate.
pub struct ClusterCa {
    key: KeyPair,
    cert_pem: String,
}

impl ClusterCa {
    /// The CA of the certificate directory `dir`, made (and written) if there is none yet.
    pub fn load_or_create(dir: &Path) -> Result<ClusterCa, Error> {
        let (cert_path, key_path) = (dir.join(CA_FILE), dir.join(CA_KEY_FILE));
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => {
                let key_pem = read(&key_path)?;
                let key = KeyPair::from_pem(&key_pem).map_err(|error| cert_error(&key_path, error))?;
                Ok(ClusterCa {
                    key,
                    cert_pem: read(&cert_path)?,
                })
            }
            (false, false) => {
                std::fs::create_dir_all(dir).map_err(|error| io_error(dir, error))?;
                let key = KeyPair::generate().map_err(|error| cert_error(dir, error))?;
                let cert = ca_params()
                    .self_signed(&key)
                    .map_err(|error| cert_error(dir, error))?;
                let ca = ClusterCa {
                    cert_pem: cert.pem(),
                    key,
                };
                write_file(&key_path, ca.key.serialize_pem().as_bytes(), true)?;
                write_file(&cert_path, ca.cert_pem.as_bytes(), false)?;
                Ok(ca)
            }
            _ => Err(Error::Tls {
                path: dir.to_path_buf(),
                reason: format!("has only one of {CA_FILE} and {CA_KEY_FILE}; restore the other or remove both to make a new CA"),
            }),
        }
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Writes node `id`'s directory under `out` (see the module docs) unless it exists;
    /// returns the directory. `hosts` are the names and IPs peers dial it by.
    pub fn write_node(&self, id: NodeId, hosts: &[String], out: &Path) -> Result<PathBuf, Error> {
        let dir = node_dir(out, id);
        if dir.join(CERT_FILE).exists() && dir.join(KEY_FILE).exists() {
            return Ok(dir);
        }
        let key = KeyPair::generate().map_err(|error| cert_error(&dir, error))?;
        let issuer = Issuer::new(ca_params(), &self.key);
        let cert = node_params(id, hosts)
            .map_err(|error| cert_error(&dir, error))?
            .signed_by(&key, &issuer)
            .map_err(|error| cert_error(&dir, error))?;
        std::fs::create_dir_all(&dir).map_err(|error| io_error(&dir, error))?;
        write_file(&dir.join(KEY_FILE), key.serialize_pem().as_bytes(), true)?;
        write_file(&dir.join(CA_FILE), self.cert_pem.as_bytes(), false)?;
        // The certificate last: its presence marks a complete directory.
        write_file(&dir.join(CERT_FILE), cert.pem().as_bytes(), false)?;
        Ok(dir)
    }
}

/// Makes (once) the CA under `out` and a directory for each `(id, hosts)`; returns the nodes'
/// directories in the given order.
pub fn ensure_cluster(out: &Path, nodes: &[(NodeId, Vec<String>)]) -> Result<Vec<PathBuf>, Error> {
    let ca = ClusterCa::load_or_create(out)?;
    nodes
        .iter()
        .map(|(id, hosts)| ca.write_node(*id, hosts, out))
        .collect()
}

/// Node `id`'s directory under a certificate directory.
pub fn node_dir(out: &Path, id: NodeId) -> PathBuf {
    out.join(format!("node-{id}"))
}

/// The CA's parameters. Fixed, so that the issuer name of every node certificate matches the
/// CA certificate's subject when the CA is loaded again from its key.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "auction cluster");
    name.push(DnType::CommonName, "auction cluster CA");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params);
    params
}

fn node_params(id: NodeId, hosts: &[String]) -> Result<CertificateParams, rcgen::Error> {
    let mut names: Vec<String> = hosts.to_vec();
    for name in LOOPBACK_NAMES {
        if !names.iter().any(|known| known == name) {
            names.push(name.to_owned());
        }
    }
    // `new` makes an IP SAN of what parses as an IP and a DNS SAN of the rest.
    let mut params = CertificateParams::new(names)?;
    params
        .subject_alt_names
        .push(SanType::URI(format!("urn:auction:node:{id}").try_into()?));
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "auction cluster");
    name.push(DnType::CommonName, format!("node-{id}"));
    params.distinguished_name = name;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params);
    Ok(params)
}

/// From the first day of the current year (a clock a little behind still accepts the
/// certificate) for [`VALIDITY_YEARS`].
fn set_validity(params: &mut CertificateParams) {
    const SECONDS_PER_YEAR: u64 = 31_556_952;
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    let year = 1970 + i32::try_from(seconds / SECONDS_PER_YEAR).unwrap_or(0);
    params.not_before = rcgen::date_time_ymd(year, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + VALIDITY_YEARS, 1, 1);
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|error| io_error(path, error))
}

/// Writes through a temporary file and a rename, so a crash never leaves half a key behind;
/// `secret` files are readable by their owner only.
fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 });
    let mut file = options
        .open(&temporary)
        .map_err(|error| io_error(&temporary, error))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|error| io_error(&temporary, error))?;
    std::fs::rename(&temporary, path).map_err(|error| io_error(path, error))
}

fn io_error(path: &Path, error: std::io::Error) -> Error {
    Error::Tls {
        path: path.to_path_buf(),
        reason: error.to_string(),
    }
}

fn cert_error(path: &Path, error: rcgen::Error) -> Error {
    Error::Tls {
        path: path.to_path_buf(),
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_made_once_and_node_directories_are_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = ensure_cluster(dir.path(), &[(1, vec!["node1".to_owned()])]).expect("made");
        let cert = std::fs::read(first[0].join(CERT_FILE)).expect("cert");
        let ca = std::fs::read(dir.path().join(CA_FILE)).expect("ca");
        let again = ensure_cluster(
            dir.path(),
            &[
                (1, vec!["node1".to_owned()]),
                (4, vec!["10.0.0.4".to_owned()]),
            ],
        )
        .expect("again");
        assert_eq!(
            std::fs::read(again[0].join(CERT_FILE)).expect("cert"),
            cert,
            "kept"
        );
        assert_eq!(
            std::fs::read(dir.path().join(CA_FILE)).expect("ca"),
            ca,
            "same CA"
        );
        // The node added later is signed by the same CA (the identity check verifies it).
        crate::network::tls::TlsIdentity::load(&again[1]).expect("node 4 of the same CA");
        let key_mode = std::fs::metadata(again[1].join(KEY_FILE)).expect("key");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            key_mode.permissions().mode() & 0o777,
            0o600,
            "a private key is private"
        );
    }

    #[test]
    fn a_host_that_is_no_name_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let result = ensure_cluster(dir.path(), &[(1, vec!["nöde".to_owned()])]);
        assert!(
            matches!(result, Err(Error::Tls { .. })),
            "{:?}",
            result.err()
        );
    }
}
