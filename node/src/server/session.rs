//! A connection's session: who is on the other end, carried into every handler.

use std::net::SocketAddr;

/// The authenticated identity of a connection, in Kafka's `Type:name` form. Until SASL exists
/// every connection is `User:ANONYMOUS`, as on a Kafka PLAINTEXT listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub kind: String,
    pub name: String,
}

impl Principal {
    /// Kafka's principal of an unauthenticated connection.
    pub fn anonymous() -> Self {
        Self { kind: "User".to_owned(), name: "ANONYMOUS".to_owned() }
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// One connection's session, owned by its connection task on the shard that accepted it.
#[derive(Debug, Clone)]
pub struct Session {
    /// The shard serving the connection.
    pub shard: usize,
    /// The client's address.
    pub peer: SocketAddr,
    /// Who the client is.
    pub principal: Principal,
    /// The `client.id` of the request being answered (clients may change it between
    /// requests; Kafka takes it per request).
    pub client_id: Option<String>,
}

impl Session {
    /// A new connection's session, before any request.
    pub fn new(shard: usize, peer: SocketAddr) -> Self {
        Self { shard, peer, principal: Principal::anonymous(), client_id: None }
    }

    /// The client id, or "" when the request had none.
    pub fn client_id(&self) -> &str {
        self.client_id.as_deref().unwrap_or("")
    }
}
