//! Listeners and security settings: Kafka's `listeners`, `advertised.listeners`,
//! `listener.security.protocol.map`, `inter.broker.listener.name`, the TLS files, the SASL
//! mechanisms and the authorizer, resolved and checked together (a SASL_SSL listener without a
//! certificate is refused at start-up, not at the first client).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use super::ConfigError;

/// Kafka's security protocols: how a listener's connections are carried and authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Self::Plaintext,
            "SSL" => Self::Ssl,
            "SASL_PLAINTEXT" => Self::SaslPlaintext,
            "SASL_SSL" => Self::SaslSsl,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    pub fn tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    pub fn sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

/// One Kafka listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Its name, upper case (`PLAINTEXT`, `SASL_SSL`, or a mapped name like `INTERNAL`).
    pub name: String,
    pub protocol: SecurityProtocol,
    pub addr: SocketAddr,
    /// Host and port given to clients that came in on it.
    pub advertised: (String, u16),
}

/// Kafka's `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    #[default]
    None,
    Requested,
    Required,
}

/// The TLS listeners' files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

/// A SASL mechanism this broker serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    pub const ALL: [Mechanism; 3] = [Self::Plain, Self::ScramSha256, Self::ScramSha512];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name().eq_ignore_ascii_case(name.trim()))
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// Listeners, TLS, SASL and authorization, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityConfig {
    /// Every listener, in the order given; at least one.
    pub listeners: Vec<Listener>,
    /// Index into `listeners` of the one other brokers connect to.
    pub inter_broker: usize,
    /// How replica fetchers log in on a SASL inter-broker listener: mechanism and user (the
    /// password is the user's line in the PLAIN users file).
    pub inter_broker_sasl: Option<(Mechanism, String)>,
    /// Whether the controller port speaks mutual TLS (`--controller-security-protocol SSL`).
    pub controller_tls: bool,
    /// Set when any listener uses TLS.
    pub tls: Option<TlsFiles>,
    pub sasl_mechanisms: Vec<Mechanism>,
    pub sasl_plain_users: Option<PathBuf>,
    /// Kafka's `connections.max.reauth.ms` (0: sessions never expire).
    pub connections_max_reauth_ms: u64,
    /// Whether the ACL authorizer checks requests.
    pub authorizer: bool,
    /// Kafka's `super.users`, as `Type:name` strings.
    pub super_users: Vec<String>,
    pub allow_everyone_if_no_acl_found: bool,
}

impl SecurityConfig {
    /// One PLAINTEXT listener on `listen`, advertised as `advertise`, and nothing else: what
    /// `--listen` means.
    pub fn plaintext(listen: SocketAddr, advertise: (String, u16)) -> Self {
        Self {
            listeners: vec![Listener {
                name: "PLAINTEXT".into(),
                protocol: SecurityProtocol::Plaintext,
                addr: listen,
                advertised: advertise,
            }],
            inter_broker: 0,
            inter_broker_sasl: None,
            controller_tls: false,
            tls: None,
            sasl_mechanisms: Mechanism::ALL.to_vec(),
            sasl_plain_users: None,
            connections_max_reauth_ms: 0,
            authorizer: false,
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: false,
        }
    }

    pub fn inter_broker(&self) -> &Listener {
        &self.listeners[self.inter_broker]
    }
}

/// The raw settings, from flags, the environment or the config file.
#[derive(Debug, Default)]
pub struct Raw {
    pub listeners: Option<String>,
    pub advertised_listeners: Option<String>,
    pub protocol_map: Option<String>,
    pub inter_broker: Option<String>,
    pub inter_broker_sasl_mechanism: Option<String>,
    pub inter_broker_sasl_user: Option<String>,
    pub controller_security_protocol: Option<String>,
    pub ssl_cert: Option<PathBuf>,
    pub ssl_key: Option<PathBuf>,
    pub ssl_ca: Option<PathBuf>,
    pub ssl_client_auth: Option<String>,
    pub sasl_enabled_mechanisms: Option<String>,
    pub sasl_plain_users: Option<PathBuf>,
    pub connections_max_reauth_ms: Option<u64>,
    pub authorizer: Option<String>,
    pub super_users: Option<String>,
    pub allow_everyone_if_no_acl_found: Option<bool>,
}

fn bad(what: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Security(format!("{what}: {}", reason.into()))
}

/// `NAME://HOST:PORT,...` into (name, host, port) in order; names upper-cased, unique.
fn parse_endpoints(what: &str, raw: &str) -> Result<Vec<(String, String, u16)>, ConfigError> {
    let mut out: Vec<(String, String, u16)> = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, rest) = item
            .split_once("://")
            .ok_or_else(|| bad(what, format!("`{item}` is not NAME://HOST:PORT")))?;
        let name = name.trim().to_ascii_uppercase();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad(what, format!("`{name}` is not a listener name (A-Z, 0-9, _)")));
        }
        let (host, port) =
            rest.rsplit_once(':').ok_or_else(|| bad(what, format!("`{item}` has no port")))?;
        let port: u16 =
            port.parse().map_err(|_| bad(what, format!("`{item}`: the port is not 0..=65535")))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        if out.iter().any(|(n, _, _)| *n == name) {
            return Err(bad(what, format!("listener `{name}` is named twice")));
        }
        out.push((name, host, port));
    }
    if out.is_empty() {
        return Err(bad(what, "no listener"));
    }
    Ok(out)
}

fn parse_protocol_map(raw: Option<&str>) -> Result<Vec<(String, SecurityProtocol)>, ConfigError> {
    let what = "--listener-security-protocol-map";
    let mut out = Vec::new();
    for item in raw.unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, proto) = item
            .split_once(':')
            .ok_or_else(|| bad(what, format!("`{item}` is not NAME:PROTOCOL")))?;
        let protocol = SecurityProtocol::parse(proto.trim()).ok_or_else(|| {
            bad(what, format!("`{proto}` is not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"))
        })?;
        out.push((name.trim().to_ascii_uppercase(), protocol));
    }
    Ok(out)
}

/// Resolves the security settings. `listen`/`advertise` are `--listen`/`--advertise`, used
/// when no `--listeners` is given.
pub fn resolve(
    raw: Raw,
    listen: SocketAddr,
    advertise: (String, u16),
    listen_given: bool,
) -> Result<SecurityConfig, ConfigError> {
    let mut config = match &raw.listeners {
        None => SecurityConfig::plaintext(listen, advertise),
        Some(_) if listen_given => {
            return Err(bad(
                "--listeners",
                "give either --listen (one PLAINTEXT listener) or --listeners, not both",
            ));
        }
        Some(spec) => {
            let map = parse_protocol_map(raw.protocol_map.as_deref())?;
            let mut listeners = Vec::new();
            for (name, host, port) in parse_endpoints("--listeners", spec)? {
                let protocol = map
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, p)| *p)
                    .or_else(|| SecurityProtocol::parse(&name))
                    .ok_or_else(|| {
                        bad(
                            "--listeners",
                            format!(
                                "`{name}` is no security protocol; map it with --listener-security-protocol-map {name}:PROTOCOL"
                            ),
                        )
                    })?;
                let ip: IpAddr = if host.is_empty() {
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                } else {
                    super::parse_addr("--listeners", &format!("{host}:{port}"))?.ip()
                };
                let addr = SocketAddr::new(ip, port);
                let advertised = if ip.is_unspecified() {
                    (Ipv4Addr::LOCALHOST.to_string(), port)
                } else {
                    (ip.to_string(), port)
                };
                listeners.push(Listener { name, protocol, addr, advertised });
            }
            let mut c = SecurityConfig::plaintext(listen, ("".into(), 0));
            c.listeners = listeners;
            c
        }
    };
    if let Some(spec) = &raw.advertised_listeners {
        for (name, host, port) in parse_endpoints("--advertised-listeners", spec)? {
            let listener =
                config.listeners.iter_mut().find(|l| l.name == name).ok_or_else(|| {
                    bad("--advertised-listeners", format!("`{name}` is not in --listeners"))
                })?;
            if host.is_empty() {
                return Err(bad("--advertised-listeners", format!("`{name}` has no host")));
            }
            listener.advertised = (host, port);
        }
    }
    for (i, l) in config.listeners.iter().enumerate() {
        if l.addr.port() != 0
            && config.listeners[..i]
                .iter()
                .any(|o| o.addr.port() == l.addr.port() && o.addr == l.addr)
        {
            return Err(bad("--listeners", format!("{} is given to two listeners", l.addr)));
        }
    }
    config.inter_broker = match &raw.inter_broker {
        Some(name) => {
            let name = name.trim().to_ascii_uppercase();
            config.listeners.iter().position(|l| l.name == name).ok_or_else(|| {
                bad("--inter-broker-listener-name", format!("`{name}` is not in --listeners"))
            })?
        }
        None => config
            .listeners
            .iter()
            .position(|l| l.protocol == SecurityProtocol::Plaintext)
            .unwrap_or(0),
    };
    let wants_tls = config.listeners.iter().any(|l| l.protocol.tls());
    config.tls = match (raw.ssl_cert, raw.ssl_key) {
        (Some(cert), Some(key)) => {
            let client_auth = match raw.ssl_client_auth.as_deref().map(str::trim) {
                None | Some("none") => ClientAuth::None,
                Some("requested") => ClientAuth::Requested,
                Some("required") => ClientAuth::Required,
                Some(other) => {
                    return Err(bad(
                        "--ssl-client-auth",
                        format!("`{other}` is not required, requested or none"),
                    ));
                }
            };
            if client_auth != ClientAuth::None && raw.ssl_ca.is_none() {
                return Err(bad("--ssl-client-auth", "client certificates need --ssl-ca FILE"));
            }
            if config.listeners[config.inter_broker].protocol.tls() && raw.ssl_ca.is_none() {
                return Err(bad(
                    "--inter-broker-listener-name",
                    "an SSL inter-broker listener needs --ssl-ca (the CA of the brokers' certificates)",
                ));
            }
            Some(TlsFiles { cert, key, ca: raw.ssl_ca, client_auth })
        }
        (None, None) if wants_tls => {
            return Err(bad(
                "--listeners",
                "an SSL or SASL_SSL listener needs --ssl-cert FILE and --ssl-key FILE",
            ));
        }
        (None, None) => None,
        _ => return Err(bad("--ssl-cert", "give --ssl-cert and --ssl-key together")),
    };
    if let Some(spec) = &raw.sasl_enabled_mechanisms {
        let mut mechanisms = Vec::new();
        for name in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let m = Mechanism::parse(name).ok_or_else(|| {
                bad(
                    "--sasl-enabled-mechanisms",
                    format!("`{name}` is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
                )
            })?;
            if !mechanisms.contains(&m) {
                mechanisms.push(m);
            }
        }
        if mechanisms.is_empty() {
            return Err(bad("--sasl-enabled-mechanisms", "no mechanism"));
        }
        config.sasl_mechanisms = mechanisms;
    }
    if config.inter_broker().protocol.sasl() {
        let mechanism = match raw.inter_broker_sasl_mechanism.as_deref() {
            None => Mechanism::Plain,
            Some(name) => Mechanism::parse(name).ok_or_else(|| {
                bad(
                    "--inter-broker-sasl-mechanism",
                    format!("`{name}` is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
                )
            })?,
        };
        if !config.sasl_mechanisms.contains(&mechanism) {
            return Err(bad(
                "--inter-broker-sasl-mechanism",
                format!("{} is not in --sasl-enabled-mechanisms", mechanism.name()),
            ));
        }
        let user = raw.inter_broker_sasl_user.clone().ok_or_else(|| {
            bad(
                "--inter-broker-listener-name",
                "a SASL inter-broker listener needs --inter-broker-sasl-user NAME (its password is its line in --sasl-plain-users)",
            )
        })?;
        if raw.sasl_plain_users.is_none() {
            return Err(bad(
                "--inter-broker-sasl-user",
                "its password comes from --sasl-plain-users FILE; give one",
            ));
        }
        config.inter_broker_sasl = Some((mechanism, user));
    }
    config.controller_tls = match raw.controller_security_protocol.as_deref().map(str::trim) {
        None => false,
        Some(p) if p.eq_ignore_ascii_case("PLAINTEXT") => false,
        Some(p) if p.eq_ignore_ascii_case("SSL") => true,
        Some(other) => {
            return Err(bad(
                "--controller-security-protocol",
                format!("`{other}` is not PLAINTEXT or SSL"),
            ));
        }
    };
    if config.controller_tls && config.tls.as_ref().is_none_or(|t| t.ca.is_none()) {
        return Err(bad(
            "--controller-security-protocol",
            "SSL between controllers needs --ssl-cert, --ssl-key and --ssl-ca",
        ));
    }
    config.sasl_plain_users = raw.sasl_plain_users;
    config.connections_max_reauth_ms = raw.connections_max_reauth_ms.unwrap_or(0);
    config.authorizer = match raw.authorizer.as_deref().map(str::trim) {
        None | Some("none") => false,
        Some("acl") => true,
        Some(other) => return Err(bad("--authorizer", format!("`{other}` is not acl or none"))),
    };
    if let Some(spec) = &raw.super_users {
        for p in spec.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((kind, name)) = p.split_once(':') else {
                return Err(bad("--super-users", format!("`{p}` is not Type:name (User:admin)")));
            };
            if kind.is_empty() || name.is_empty() {
                return Err(bad("--super-users", format!("`{p}` is not Type:name (User:admin)")));
            }
            config.super_users.push(p.to_owned());
        }
    }
    config.allow_everyone_if_no_acl_found = raw.allow_everyone_if_no_acl_found.unwrap_or(false);
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen() -> SocketAddr {
        "127.0.0.1:9092".parse().expect("addr")
    }

    fn with(listeners: &str) -> Raw {
        Raw { listeners: Some(listeners.into()), ..Raw::default() }
    }

    #[test]
    fn listeners_map_names_to_protocols_and_advertise_per_listener() {
        let raw = Raw {
            protocol_map: Some("INTERNAL:PLAINTEXT,EXTERNAL:SASL_SSL".into()),
            advertised_listeners: Some("EXTERNAL://broker.example:19094".into()),
            ssl_cert: Some("c.pem".into()),
            ssl_key: Some("k.pem".into()),
            ..with("INTERNAL://127.0.0.1:9092,EXTERNAL://0.0.0.0:9094,SSL://127.0.0.1:9093")
        };
        let c = resolve(raw, listen(), ("x".into(), 1), false).expect("valid");
        let names: Vec<_> = c.listeners.iter().map(|l| (l.name.as_str(), l.protocol)).collect();
        assert_eq!(
            names,
            [
                ("INTERNAL", SecurityProtocol::Plaintext),
                ("EXTERNAL", SecurityProtocol::SaslSsl),
                ("SSL", SecurityProtocol::Ssl)
            ]
        );
        assert_eq!(c.listeners[1].advertised, ("broker.example".into(), 19094));
        assert_eq!(c.listeners[2].advertised, ("127.0.0.1".into(), 9093));
        assert_eq!(c.inter_broker().name, "INTERNAL");
    }

    #[test]
    fn refusals_name_the_setting() {
        let err = |raw: Raw, given: bool| {
            resolve(raw, listen(), ("h".into(), 1), given).expect_err("refused").to_string()
        };
        assert!(err(with("PLAINTEXT://127.0.0.1:1"), true).contains("not both"));
        assert!(err(with("FOO://127.0.0.1:1"), false).contains("--listener-security-protocol-map"));
        assert!(
            err(with("PLAINTEXT://127.0.0.1:2,SSL://127.0.0.1:1"), false).contains("--ssl-cert")
        );
        let sasl_ssl = Raw {
            inter_broker_sasl_user: Some("broker".into()),
            sasl_plain_users: Some("users".into()),
            ssl_cert: Some("c".into()),
            ssl_key: Some("k".into()),
            ..with("SASL_SSL://127.0.0.1:1")
        };
        assert!(err(sasl_ssl, false).contains("--ssl-ca"), "SASL_SSL between brokers trusts a CA");
        let ssl_only = Raw {
            ssl_cert: Some("c".into()),
            ssl_key: Some("k".into()),
            ..with("SSL://127.0.0.1:1")
        };
        assert!(
            err(ssl_only, false).contains("--ssl-ca"),
            "an SSL inter-broker listener trusts a CA"
        );
        assert!(
            err(with("PLAINTEXT://127.0.0.1:1,PLAINTEXT://127.0.0.1:2"), false).contains("twice")
        );
        let sasl_only = Raw {
            inter_broker: Some("SASL_PLAINTEXT".into()),
            ..with("SASL_PLAINTEXT://127.0.0.1:1")
        };
        assert!(err(sasl_only, false).contains("--inter-broker-sasl-user"));
        let mech = Raw { sasl_enabled_mechanisms: Some("GSSAPI".into()), ..Raw::default() };
        assert!(err(mech, false).contains("GSSAPI"));
        let quorum = Raw { controller_security_protocol: Some("SSL".into()), ..Raw::default() };
        assert!(err(quorum, false).contains("--ssl-ca"));
        let quorum =
            Raw { controller_security_protocol: Some("SASL_SSL".into()), ..Raw::default() };
        assert!(err(quorum, false).contains("PLAINTEXT or SSL"));
        let auth = Raw { authorizer: Some("opa".into()), ..Raw::default() };
        assert!(err(auth, false).contains("--authorizer"));
        let users = Raw { super_users: Some("admin".into()), ..Raw::default() };
        assert!(err(users, false).contains("Type:name"));
    }

    #[test]
    fn listen_alone_is_one_plaintext_listener() {
        let c = resolve(Raw::default(), listen(), ("127.0.0.1".into(), 9092), true).expect("ok");
        assert_eq!(c.listeners.len(), 1);
        assert_eq!(c.listeners[0].protocol, SecurityProtocol::Plaintext);
        assert!(!c.authorizer);
        assert_eq!(c.sasl_mechanisms, Mechanism::ALL);
    }
}
