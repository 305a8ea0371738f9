//! The security room: who a connection is (TLS client certificates, SASL), and what it may do
//! (the ACL authorizer).
//!
//! - `tls`: rustls server configs for the SSL and SASL_SSL listeners, reloaded when the files
//!   change.
//! - `sasl`: rsasl's PLAIN and SCRAM mechanisms, fed from the cluster metadata's SCRAM
//!   credentials and the PLAIN users file.
//! - `acl`: the compiled ACLs and Kafka's verdict rules.
//!
//! **Invariants.**
//! - The credentials and ACLs a shard checks against are those of its current metadata
//!   snapshot ([`SecurityView`] inside the catalogue): one atomic load, no lock, and an
//!   authorization check allocates nothing.
//! - A connection's principal is fixed once authenticated; a re-authentication (KIP-368) must
//!   name the same principal.
//! - Nothing here blocks a shard thread: files are read on the main thread, PBKDF2 runs on
//!   the blocking pool.
//!
//! **What it does not know.** Which API needs which permission (the `api` room's `authz`
//! decides), or sockets (the `server` room runs the handshakes).

pub mod acl;
pub mod quota;
pub mod sasl;
pub mod tls;

use std::collections::BTreeMap;
use std::sync::Arc;

use odradek_controller::{MetadataImage, QuotaRecord, ScramCredential};

use crate::config::security::SecurityConfig;

/// The security part of one metadata image, as shards read it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SecurityView {
    pub acls: acl::Acls,
    /// user → mechanism → credential.
    pub scram: BTreeMap<String, BTreeMap<String, ScramCredential>>,
    /// Client quotas, sorted by entity.
    pub quotas: Arc<Vec<QuotaRecord>>,
}

impl SecurityView {
    /// The view of `image`, reusing `prev` when neither ACLs nor credentials changed.
    pub fn of(image: &MetadataImage, prev: &Arc<SecurityView>) -> Arc<SecurityView> {
        if prev.acls.source == image.acls
            && prev.scram == image.scram
            && *prev.quotas == image.quotas
        {
            return prev.clone();
        }
        let quotas = if *prev.quotas == image.quotas {
            prev.quotas.clone()
        } else {
            Arc::new(image.quotas.clone())
        };
        let acls = if prev.acls.source == image.acls {
            prev.acls.clone()
        } else {
            acl::Acls::compile(&image.acls)
        };
        Arc::new(SecurityView { acls, scram: image.scram.clone(), quotas })
    }
}

/// What every shard shares about security: the settings, the TLS context and PLAIN's users.
#[derive(Debug)]
pub struct Security {
    pub config: SecurityConfig,
    pub tls: Option<tls::TlsContext>,
    pub plain_users: sasl::PlainUsers,
    /// The broker's quota sensors, shared by every shard.
    pub quotas: quota::Registry,
    /// TLS for this broker's replica fetchers, when the inter-broker listener is SSL or
    /// SASL_SSL.
    pub inter_broker_tls: Option<odradek_client::compio::Tls>,
    /// Their SASL login, when it is SASL_PLAINTEXT or SASL_SSL.
    pub inter_broker_login: Option<Arc<sasl::Login>>,
    /// Mutual TLS on the controller port (`--controller-security-protocol SSL`).
    pub quorum_tls: Option<odradek_controller::QuorumTls>,
}

impl Security {
    /// Loads the TLS files and the PLAIN users file (start-up, main thread).
    pub fn load(config: &SecurityConfig) -> Result<Self, String> {
        let tls = config.tls.as_ref().map(tls::TlsContext::load).transpose()?;
        let plain_users = sasl::PlainUsers::load(config.sasl_plain_users.as_deref())?;
        let inter_broker_tls = match (&config.tls, config.inter_broker().protocol.tls()) {
            (Some(files), true) => Some(tls::client_config(files)?),
            _ => None,
        };
        let inter_broker_login = match &config.inter_broker_sasl {
            None => None,
            Some((mechanism, user)) => {
                let password = plain_users.password(user).ok_or_else(|| {
                    format!("--inter-broker-sasl-user {user}: no line for it in --sasl-plain-users")
                })?;
                Some(Arc::new(sasl::Login {
                    mechanism: *mechanism,
                    user: user.clone(),
                    password: password.to_owned(),
                }))
            }
        };
        let quorum_tls = match (&config.tls, config.controller_tls) {
            (Some(files), true) => Some(tls::quorum_tls(files)?),
            _ => None,
        };
        Ok(Self {
            config: config.clone(),
            tls,
            plain_users,
            quotas: quota::Registry::default(),
            inter_broker_tls,
            inter_broker_login,
            quorum_tls,
        })
    }

    /// Whether `principal` (`User:admin`) is a super user.
    pub fn is_super(&self, principal: &str) -> bool {
        self.config.super_users.iter().any(|s| s == principal)
    }
}
