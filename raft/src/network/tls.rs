//! Mutual TLS between nodes: who may speak to a node's gRPC server, and whom a node trusts
//! when it dials a peer.
//!
//! Every node holds a [`TlsIdentity`]: the cluster CA's certificate and the node's own
//! certificate and private key, signed by that CA (made by [`super::certs`]). The server side
//! ([`TlsIdentity::server_config`]) presents the node's certificate and *requires* a client
//! certificate that chains to the cluster CA, so a process without the cluster's credentials
//! fails at the handshake, before any RPC (Raft, forwarding, read barrier, admin) is decoded.
//! The client side ([`TlsIdentity::client_config`]) presents the same certificate and verifies
//! the server's against the CA and the host name (or IP) of the peer's advertised address.
//!
//! The crypto is rustls with the ring provider, through tonic's `tls-ring` feature; nothing
//! here implements a protocol or a primitive. TLS is a property of the transport's
//! configuration ([`super::NetworkConfig::tls`]): the simulator runs without it on its own
//! simulated connections.
//!
//! Not done yet: any certificate of the cluster CA is a member; the node id in a certificate is
//! not checked against the id a peer claims in its messages. No revocation: removing a node
//! from the cluster does not revoke its certificate (re-issue the CA to cut it out).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::error::Error;

/// The cluster CA's certificate, in a node's TLS directory.
pub const CA_FILE: &str = "ca.pem";
/// The node's certificate (signed by the cluster CA).
pub const CERT_FILE: &str = "node.pem";
/// The node's private key (PKCS#8).
pub const KEY_FILE: &str = "node-key.pem";

/// The longest a TLS handshake may take, either side: a client that connects and says nothing
/// must not hold a handshake task forever.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 5_000;

/// A node's credentials for node-to-node gRPC, as PEM text.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsIdentity {
    ca_pem: Vec<u8>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

impl fmt::Debug for TlsIdentity {
    // The private key never reaches a log line.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("TlsIdentity")
            .field("ca_pem_bytes", &self.ca_pem.len())
            .field("cert_pem_bytes", &self.cert_pem.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl TlsIdentity {
    /// Reads `ca.pem`, `node.pem` and `node-key.pem` from `dir` and checks that they fit
    /// together (the node certificate is signed by the CA), so a wrong directory is refused at
    /// start rather than by every peer's handshake later.
    pub fn load(dir: &Path) -> Result<TlsIdentity, Error> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|error| Error::Tls {
                path: path.clone(),
                reason: error.to_string(),
            })
        };
        let identity = TlsIdentity::from_pem(read(CA_FILE)?, read(CERT_FILE)?, read(KEY_FILE)?)
            .map_err(|error| match error {
                Error::Tls { reason, .. } => Error::Tls {
                    path: dir.to_path_buf(),
                    reason,
                },
                other => other,
            })?;
        Ok(identity)
    }

    /// Credentials from PEM text: checked as [`TlsIdentity::load`] does.
    pub fn from_pem(
        ca_pem: Vec<u8>,
        cert_pem: Vec<u8>,
        key_pem: Vec<u8>,
    ) -> Result<TlsIdentity, Error> {
        install_crypto_provider();
        let identity = TlsIdentity {
            ca_pem,
            cert_pem,
            key_pem,
        };
        identity.check().map_err(|reason| Error::Tls {
            path: PathBuf::new(),
            reason,
        })?;
        Ok(identity)
    }

    /// The cluster CA's certificate, PEM.
    pub fn ca_pem(&self) -> &[u8] {
        &self.ca_pem
    }

    /// The server side: present this node's certificate, require a client certificate of the
    /// cluster CA (tonic's server refuses a client without one unless told otherwise).
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
            .client_auth_optional(false)
            .timeout(Duration::from_millis(HANDSHAKE_TIMEOUT_MS))
    }

    /// The client side: present this node's certificate, trust only the cluster CA (not the
    /// system's roots), and check the server's name against the dialled host.
    pub fn client_config(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .timeout(Duration::from_millis(HANDSHAKE_TIMEOUT_MS))
    }

    /// The PEM parses, there is one key, and the node certificate chains to the CA.
    fn check(&self) -> Result<(), String> {
        let ca = certificates(&self.ca_pem, CA_FILE)?;
        let chain = certificates(&self.cert_pem, CERT_FILE)?;
        PrivateKeyDer::from_pem_slice(&self.key_pem)
            .map_err(|error| format!("{KEY_FILE}: no private key ({error})"))?;
        let mut roots = RootCertStore::empty();
        for certificate in ca {
            roots
                .add(certificate)
                .map_err(|error| format!("{CA_FILE}: not a CA certificate ({error})"))?;
        }
        let verifier = WebPkiClientVerifier::builder(roots.into())
            .build()
            .map_err(|error| format!("{CA_FILE}: {error}"))?;
        let (end_entity, intermediates) = chain
            .split_first()
            .ok_or_else(|| format!("{CERT_FILE}: no certificate"))?;
        verifier
            .verify_client_cert(end_entity, intermediates, UnixTime::now())
            .map_err(|error| {
                format!("{CERT_FILE} is not a valid certificate of {CA_FILE}: {error}")
            })?;
        Ok(())
    }
}

fn certificates(pem: &[u8], name: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("{name}: {error}"))?;
    if certificates.is_empty() {
        return Err(format!("{name}: no certificate"));
    }
    Ok(certificates)
}

/// Makes ring the process's rustls provider. tonic's server builds its config from the process
/// default, which rustls can only pick by itself while exactly one provider is compiled in; a
/// dependency that enabled a second one would otherwise make the first handshake panic.
/// Installing twice is harmless (the second attempt is refused and ignored).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::certs::ClusterCa;

    #[test]
    fn a_node_of_the_ca_loads_and_one_of_another_ca_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = ClusterCa::load_or_create(dir.path()).expect("CA");
        ca.write_node(1, &["localhost".to_owned()], dir.path())
            .expect("node 1");
        let loaded = TlsIdentity::load(&dir.path().join("node-1")).expect("loads");
        assert!(
            format!("{loaded:?}").contains("redacted"),
            "no key in Debug"
        );

        let other = tempfile::tempdir().expect("temp dir");
        let other_ca = ClusterCa::load_or_create(other.path()).expect("other CA");
        other_ca
            .write_node(1, &[], other.path())
            .expect("other node 1");
        let mixed = TlsIdentity::from_pem(
            loaded.ca_pem().to_vec(),
            std::fs::read(other.path().join("node-1").join(CERT_FILE)).expect("cert"),
            std::fs::read(other.path().join("node-1").join(KEY_FILE)).expect("key"),
        );
        assert!(
            matches!(mixed, Err(Error::Tls { .. })),
            "a certificate of another CA is refused: {mixed:?}"
        );
        let missing = TlsIdentity::load(dir.path());
        assert!(matches!(missing, Err(Error::Tls { .. })), "no node.pem");
    }
}
