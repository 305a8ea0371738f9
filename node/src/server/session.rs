//! A connection's session: who is on the other end, and through which listener, carried into
//! every handler.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use crate::config::security::SecurityProtocol;
use crate::security::sasl::Exchange;

/// The identity of a connection in Kafka's `Type:name` form (`User:alice`). A PLAINTEXT or
/// SSL connection without a client certificate is `User:ANONYMOUS`, as in Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(String);

impl Principal {
    /// Kafka's principal of an unauthenticated connection.
    pub fn anonymous() -> Self {
        Self("User:ANONYMOUS".to_owned())
    }

    /// `User:<name>`.
    pub fn user(name: &str) -> Self {
        Self(format!("User:{name}"))
    }

    /// A principal already in `Type:name` form (a certificate's).
    pub fn from_full(full: String) -> Self {
        Self(full)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The listener a connection came in on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerInfo {
    pub name: String,
    pub protocol: SecurityProtocol,
}

/// Where a SASL connection is in its authentication.
#[derive(Debug, Default)]
pub enum SaslState {
    /// Not a SASL listener: nothing to do.
    #[default]
    None,
    /// Only ApiVersions and SaslHandshake are answered.
    AwaitHandshake,
    /// Handshake v1 done: SaslAuthenticate requests carry the tokens.
    Authenticating(Box<Exchange>),
    /// Handshake v0 done: the next frames are bare tokens (no Kafka header).
    RawTokens(Box<Exchange>),
    /// Authenticated, until `expires` (KIP-368), if set.
    Done { expires: Option<Instant> },
}

/// One connection's session, owned by its connection task on the shard that accepted it.
#[derive(Debug)]
pub struct Session {
    /// The shard serving the connection.
    pub shard: usize,
    /// The client's address.
    pub peer: SocketAddr,
    /// The client's IP as ACLs name hosts.
    pub host: String,
    /// Who the client is.
    pub principal: Principal,
    /// Whether `principal` is a super user (checked once, when it is set).
    pub superuser: bool,
    /// The `client.id` of the request being answered (clients may change it between
    /// requests; Kafka takes it per request).
    pub client_id: Option<String>,
    pub listener: Rc<ListenerInfo>,
    pub sasl: SaslState,
    /// The client quotas that apply, once resolved (re-resolved when they change).
    pub quota: Option<crate::security::quota::Bound>,
}

impl Session {
    /// A new connection's session, before any request.
    pub fn new(shard: usize, peer: SocketAddr, listener: Rc<ListenerInfo>) -> Self {
        let sasl =
            if listener.protocol.sasl() { SaslState::AwaitHandshake } else { SaslState::None };
        Self {
            shard,
            peer,
            host: peer.ip().to_string(),
            principal: Principal::anonymous(),
            superuser: false,
            client_id: None,
            listener,
            sasl,
            quota: None,
        }
    }

    /// The user name quotas are kept by (the principal without its `User:`).
    pub fn quota_user(&self) -> &str {
        let p = self.principal.as_str();
        p.split_once(':').map_or(p, |(_, name)| name)
    }

    /// The client id, or "" when the request had none.
    pub fn client_id(&self) -> &str {
        self.client_id.as_deref().unwrap_or("")
    }
}
