//! TLS to an external broker (`mqtts://`): the one crypto provider of the binary, the client configuration
//! built from `[mqtt] tls_ca`, `client_cert` and `client_key`, the tunnel that carries the MQTT client's
//! connections over it ([`Tunnel`]), and the words an operator reads when a TLS connection fails.
//!
//! Guarantees: the client configuration names its provider (ring) itself, so it never depends on a process
//! default; it is built when the config is loaded, so a bad file is a config error with its key and line, never a
//! failure at connect time; its `Debug` shows file paths only, never certificates or keys.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{AlertDescription, CertificateError, ClientConfig, RootCertStore};

mod tunnel;
pub use tunnel::{Failure, Tunnel};

/// The crypto provider of everything TLS in tillmark: ring, the one axum-server and reqwest are built with.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes ring the process-wide default, for any library that asks rustls for one (a second provider compiled in
/// would otherwise make rustls panic). Installing twice is harmless: the first one stays.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Where the TLS settings of `[mqtt]` point; each file is read by [`MqttTls::load`].
#[derive(Debug, Default)]
pub struct MqttTlsFiles {
    /// `tls_ca`: trust this CA instead of the system's roots.
    pub ca: Option<PathBuf>,
    /// `client_cert` and `client_key`: present a client certificate (mutual TLS).
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// A problem with one of the TLS files, naming the `[mqtt]` key that points at it.
#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    #[error("cannot read \"{}\": {source}", path.display())]
    Unreadable {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("\"{}\" is not a valid PEM file: {reason}", path.display())]
    NotPem {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("\"{}\" holds no certificate: expected PEM blocks starting \"-----BEGIN CERTIFICATE-----\"", path.display())]
    NoCertificate { key: &'static str, path: PathBuf },
    #[error(
        "\"{}\" holds no private key: expected a PEM block starting \"-----BEGIN PRIVATE KEY-----\" (or RSA / EC PRIVATE KEY)",
        path.display()
    )]
    NoKey { path: PathBuf },
    #[error("\"{}\" cannot be used as the client certificate's key: {reason}", path.display())]
    BadKey { path: PathBuf, reason: String },
    #[error("the TLS library cannot be set up: {0}")]
    Setup(rustls::Error),
    #[error(
        "no CA certificates found in the system's trust store{detail}: set tls_ca to the CA that signed the broker's certificate"
    )]
    NoSystemRoots { detail: String },
}

impl TlsFileError {
    /// The `[mqtt]` key the error belongs to.
    pub fn key(&self) -> &'static str {
        match self {
            TlsFileError::Unreadable { key, .. }
            | TlsFileError::NotPem { key, .. }
            | TlsFileError::NoCertificate { key, .. } => key,
            TlsFileError::NoKey { .. } | TlsFileError::BadKey { .. } => "client_key",
            TlsFileError::Setup(_) | TlsFileError::NoSystemRoots { .. } => "url",
        }
    }
}

/// How tillmark reaches an `mqtts://` broker: a ready rustls client configuration, and the paths it came from (for
/// error messages).
#[derive(Clone)]
pub struct MqttTls {
    client: Arc<ClientConfig>,
    ca: Option<PathBuf>,
    client_cert: Option<PathBuf>,
}

impl fmt::Debug for MqttTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttTls")
            .field("tls_ca", &self.ca)
            .field("client_cert", &self.client_cert)
            .finish_non_exhaustive()
    }
}

impl MqttTls {
    /// Reads and checks the files. Without a CA file the system's roots are trusted (rustls-native-certs): a broker
    /// inside a company network is usually signed by the company's CA, which IT installs in the system store.
    pub fn load(files: &MqttTlsFiles) -> Result<MqttTls, TlsFileError> {
        let roots = match &files.ca {
            Some(path) => {
                let mut roots = RootCertStore::empty();
                let (added, _) = roots.add_parsable_certificates(certificates("tls_ca", path)?);
                if added == 0 {
                    return Err(TlsFileError::NotPem {
                        key: "tls_ca",
                        path: path.clone(),
                        reason: "none of its certificates can be parsed".into(),
                    });
                }
                roots
            }
            None => system_roots()?,
        };
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsFileError::Setup)?
            .with_root_certificates(roots);
        let client = match &files.identity {
            Some((cert, key)) => {
                let chain = certificates("client_cert", cert)?;
                builder
                    .with_client_auth_cert(chain, private_key(key)?)
                    .map_err(|e| TlsFileError::BadKey {
                        path: key.clone(),
                        reason: match e {
                            rustls::Error::InconsistentKeys(_) => {
                                "it is not the key of the certificate in client_cert".into()
                            }
                            other => other.to_string(),
                        },
                    })?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(MqttTls {
            client: Arc::new(client),
            ca: files.ca.clone(),
            client_cert: files.identity.as_ref().map(|(cert, _)| cert.clone()),
        })
    }

    /// The rustls client configuration connections to the broker are made with.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.client.clone()
    }

    /// A TLS failure in an operator's words: what is wrong and which setting to look at.
    pub fn explain(&self, e: &rustls::Error) -> String {
        match e {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => match &self.ca {
                Some(ca) => format!(
                    "the broker's certificate is not signed by the CA in [mqtt] tls_ca ({})",
                    ca.display()
                ),
                None => "the broker's certificate is not signed by a CA this system trusts: set [mqtt] tls_ca to \
                         the CA that signed it"
                    .into(),
            },
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => format!(
                "the broker's certificate is not issued for the host in [mqtt] url ({e}): connect by a name the \
                 certificate holds"
            ),
            rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. },
            ) => "the broker's certificate has expired (or this machine's clock is wrong)".into(),
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
            ) => "the broker's certificate is not valid yet (or this machine's clock is wrong)".into(),
            rustls::Error::InvalidCertificate(other) => {
                format!("the broker's certificate was refused: {other:?}")
            }
            rustls::Error::AlertReceived(alert) => self.explain_alert(*alert),
            rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => format!(
                "the broker does not speak TLS on this port ({e}): is it a plain-MQTT port? use mqtt://"
            ),
            other => format!("the TLS handshake with the broker failed: {other}"),
        }
    }

    /// The broker ended the handshake with an alert: mostly about our client certificate.
    fn explain_alert(&self, alert: AlertDescription) -> String {
        let about_our_certificate = matches!(
            alert,
            AlertDescription::CertificateRequired
                | AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateRevoked
                | AlertDescription::AccessDenied
        ) || (alert == AlertDescription::HandshakeFailure
            && self.client_cert.is_none());
        match (&self.client_cert, about_our_certificate) {
            (None, true) => format!(
                "the broker requires a client certificate: set [mqtt] client_cert and client_key (TLS alert \
                 {alert:?})"
            ),
            (Some(cert), true) => format!(
                "the broker refused the client certificate in [mqtt] client_cert ({}): is it signed by a CA the \
                 broker trusts, and still valid? (TLS alert {alert:?})",
                cert.display()
            ),
            (_, false) => format!("the broker ended the TLS handshake (TLS alert {alert:?})"),
        }
    }
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|source| TlsFileError::Unreadable {
        key,
        path: path.to_path_buf(),
        source,
    })
}

fn not_pem(key: &'static str, path: &Path, e: pem::Error) -> TlsFileError {
    TlsFileError::NotPem {
        key,
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn certificates(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let bytes = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| not_pem(key, path, e))?;
    if certs.is_empty() {
        return Err(TlsFileError::NoCertificate {
            key,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    let bytes = read("client_key", path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsFileError::NoKey {
            path: path.to_path_buf(),
        },
        other => not_pem("client_key", path, other),
    })
}

fn system_roots() -> Result<RootCertStore, TlsFileError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let detail = match found.errors.first() {
            Some(e) => format!(" ({e})"),
            None => String::new(),
        };
        return Err(TlsFileError::NoSystemRoots { detail });
    }
    Ok(roots)
}
