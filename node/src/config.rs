//! Node configuration: embedded defaults, an optional TOML file (`--config`), `ODRADEK_*`
//! environment variables and command-line flags, in rising order of precedence.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

pub mod reference;
pub mod security;

use clap::Args;
use odradek_controller::{Voters, VotersError};
use serde::Deserialize;

/// Where partition logs and metadata live unless configured.
pub const DATA_DIR_DEFAULT: &str = "./odradek-data";
/// Largest accepted shard count (a bound, not a tuning hint).
pub const SMP_MAX: usize = 256;
/// Largest partition count a topic may be created with.
pub const PARTITIONS_MAX: i32 = 10_000;
/// `connections.max.idle.ms`: Kafka's default.
pub const CONNECTIONS_MAX_IDLE_MS_DEFAULT: u64 = 600_000;
/// Read-ahead after a fetch from disk (see `NodeConfig::fetch_prefetch_bytes`).
pub const FETCH_PREFETCH_BYTES_DEFAULT: u64 = 4 * 1024 * 1024;
/// Bound on the connections one shard holds; more are closed as they arrive.
pub const CONNECTIONS_PER_SHARD_MAX_DEFAULT: usize = 10_000;
/// Kafka's `max.connections.per.ip` default (`Int.MaxValue`): no limit.
pub const MAX_CONNECTIONS_PER_IP_DEFAULT: u32 = i32::MAX as u32;
/// `queued.max.request.bytes`: request bytes the node's connections may hold at once (Kafka's
/// default is unbounded; a broker that states its memory bound needs one).
pub const QUEUED_MAX_REQUEST_BYTES_DEFAULT: usize = 512 * 1024 * 1024;

/// The admin HTTP listener's default port: Redpanda's admin API port.
pub const ADMIN_PORT_DEFAULT: u16 = 9644;

/// Where the admin HTTP listener listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminListen {
    pub addr: SocketAddr,
    /// Given by a flag, variable or file key: a port that cannot be had stops the start. The
    /// default's is only warned about (several nodes may share a host in tests).
    pub explicit: bool,
}

/// `odradek serve` flags. Every flag may also come from the environment or the config file.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (keys in snake_case, e.g. `data_dir`).
    #[arg(long, env = "ODRADEK_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where partition logs and metadata live [default: ./odradek-data].
    #[arg(long, env = "ODRADEK_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to accept Kafka clients on [default: 0.0.0.0:9092].
    #[arg(long, env = "ODRADEK_LISTEN", value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Address returned to clients in Metadata [default: the listen address, or 127.0.0.1 with
    /// its port when listening on all interfaces].
    #[arg(long, env = "ODRADEK_ADVERTISE", value_name = "HOST:PORT")]
    pub advertise: Option<String>,
    /// Shards: one pinned thread with its own io_uring each [default: one per CPU, fewer if
    /// a shard would get under 1 GiB of RAM].
    #[arg(long, env = "ODRADEK_SMP", value_name = "N")]
    pub smp: Option<usize>,
    /// Partitions of a topic created without a count (num.partitions) [default: 1].
    #[arg(long, env = "ODRADEK_DEFAULT_PARTITIONS", value_name = "N")]
    pub default_partitions: Option<i32>,
    /// Create a topic when a client first uses it (auto.create.topics.enable) [default: true].
    #[arg(long, env = "ODRADEK_AUTO_CREATE_TOPICS", value_name = "BOOL")]
    pub auto_create_topics: Option<bool>,
    /// This node's id (Kafka's `node.id` / `broker.id`), kept in the data directory's
    /// `meta.properties`; a node never changes it [default: 0].
    #[arg(long, env = "ODRADEK_NODE_ID", value_name = "ID")]
    pub node_id: Option<i32>,
    /// The rack (or zone) this node is in (Kafka's `broker.rack`), reported to clients in
    /// Metadata and DescribeCluster [default: none].
    #[arg(long, env = "ODRADEK_RACK", value_name = "RACK")]
    pub rack: Option<String>,
    /// What this node runs (Kafka's `process.roles`): `broker`, `controller` or
    /// `broker,controller` [default: broker,controller].
    #[arg(long, env = "ODRADEK_PROCESS_ROLES", value_name = "ROLES")]
    pub process_roles: Option<String>,
    /// Address of this node's controller listener (raft among the voters) [default: the
    /// listen IP with an ephemeral port when this node is the only voter].
    #[arg(long, env = "ODRADEK_CONTROLLER_LISTEN", value_name = "HOST:PORT")]
    pub controller_listen: Option<String>,
    /// The controller quorum (Kafka's `controller.quorum.voters`):
    /// `1@127.0.0.2:9093,2@127.0.0.3:9093,3@127.0.0.4:9093` [default: this node alone].
    #[arg(long, env = "ODRADEK_CONTROLLER_QUORUM_VOTERS", value_name = "ID@HOST:PORT,...")]
    pub controller_quorum_voters: Option<String>,
    /// A broker without a heartbeat for this long is fenced (Kafka's
    /// `broker.session.timeout.ms`) [default: 9000].
    #[arg(long, env = "ODRADEK_BROKER_SESSION_TIMEOUT_MS", value_name = "MS")]
    pub broker_session_timeout_ms: Option<u64>,
    /// How often a broker heartbeats to the active controller (Kafka's
    /// `broker.heartbeat.interval.ms`) [default: 2000].
    #[arg(long, env = "ODRADEK_BROKER_HEARTBEAT_INTERVAL_MS", value_name = "MS")]
    pub broker_heartbeat_interval_ms: Option<u64>,
    /// A follower that has not caught up for this long leaves the ISR (Kafka's
    /// `replica.lag.time.max.ms`) [default: 30000].
    #[arg(long, env = "ODRADEK_REPLICA_LAG_TIME_MAX_MS", value_name = "MS")]
    pub replica_lag_time_max_ms: Option<u64>,
    /// The active controller moves each partition's leadership back to its preferred replica
    /// (the first) when that one is live and in sync (Kafka's
    /// `auto.leader.rebalance.enable`) [default: true].
    #[arg(long, env = "ODRADEK_AUTO_LEADER_REBALANCE_ENABLE", value_name = "BOOL")]
    pub auto_leader_rebalance_enable: Option<bool>,
    /// How often the active controller looks for partitions led by another than their
    /// preferred replica (Kafka's `leader.imbalance.check.interval.seconds`) [default: 300].
    #[arg(long, env = "ODRADEK_LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS", value_name = "N")]
    pub leader_imbalance_check_interval_seconds: Option<u64>,
    /// Replicas of each `__consumer_offsets` partition (Kafka's
    /// `offsets.topic.replication.factor`) [default: 3, or fewer when fewer brokers are live].
    #[arg(long, env = "ODRADEK_OFFSETS_TOPIC_REPLICATION_FACTOR", value_name = "N")]
    pub offsets_topic_replication_factor: Option<i16>,
    /// Partitions of `__transaction_state`, created on first use (Kafka's
    /// `transaction.state.log.num.partitions`) [default: 50].
    #[arg(long, env = "ODRADEK_TRANSACTION_STATE_LOG_NUM_PARTITIONS", value_name = "N")]
    pub transaction_state_log_num_partitions: Option<i32>,
    /// Replicas of each `__transaction_state` partition (Kafka's
    /// `transaction.state.log.replication.factor`) [default: 3, or fewer when fewer brokers
    /// are live].
    #[arg(long, env = "ODRADEK_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", value_name = "N")]
    pub transaction_state_log_replication_factor: Option<i16>,
    /// The longest `transaction.timeout.ms` a transactional producer may ask for (Kafka's
    /// `transaction.max.timeout.ms`) [default: 900000].
    #[arg(long, env = "ODRADEK_TRANSACTION_MAX_TIMEOUT_MS", value_name = "MS")]
    pub transaction_max_timeout_ms: Option<i32>,
    /// How often open transactions are checked against their timeout and aborted when past it
    /// (Kafka's `transaction.abort.timed.out.transaction.cleanup.interval.ms`)
    /// [default: 10000].
    #[arg(
        long,
        env = "ODRADEK_TRANSACTION_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS",
        value_name = "MS"
    )]
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: Option<u64>,
    /// Which replica a consumer with `client.rack` is sent to read from (KIP-392; Kafka's
    /// `replica.selector.class`): `leader` (Kafka's default) or `rack-aware` (an in-sync
    /// replica in the consumer's rack) [default: leader].
    #[arg(long, env = "ODRADEK_REPLICA_SELECTOR", value_name = "SELECTOR")]
    pub replica_selector: Option<String>,
    /// Address of the admin HTTP listener (`GET /metrics` in Prometheus's text format,
    /// `/health`, `/ready`), or `none` [default: the --listen host on port 9644, Redpanda's
    /// admin port; when that default is taken the node serves without it and says so].
    #[arg(long, env = "ODRADEK_ADMIN_LISTEN", value_name = "HOST:PORT")]
    pub admin_listen: Option<String>,
    /// Kafka listeners, `NAME://HOST:PORT,...` (Kafka's `listeners`): each name is a security
    /// protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL) or maps to one through
    /// --listener-security-protocol-map [default: one PLAINTEXT listener, --listen].
    #[arg(long, env = "ODRADEK_LISTENERS", value_name = "NAME://HOST:PORT,...")]
    pub listeners: Option<String>,
    /// Addresses given to clients per listener, `NAME://HOST:PORT,...` (Kafka's
    /// `advertised.listeners`) [default: each listener's address, 127.0.0.1 for a wildcard].
    #[arg(long, env = "ODRADEK_ADVERTISED_LISTENERS", value_name = "NAME://HOST:PORT,...")]
    pub advertised_listeners: Option<String>,
    /// Security protocol of each listener name that is not one itself, `NAME:PROTOCOL,...`
    /// (Kafka's `listener.security.protocol.map`) [default: none].
    #[arg(long, env = "ODRADEK_LISTENER_SECURITY_PROTOCOL_MAP", value_name = "NAME:PROTOCOL,...")]
    pub listener_security_protocol_map: Option<String>,
    /// The listener other brokers' replica fetchers connect to (Kafka's
    /// `inter.broker.listener.name`; with SSL or SASL_SSL they trust --ssl-ca, with SASL they
    /// log in as --inter-broker-sasl-user) [default: the first PLAINTEXT listener, else the
    /// first].
    #[arg(long, env = "ODRADEK_INTER_BROKER_LISTENER_NAME", value_name = "NAME")]
    pub inter_broker_listener_name: Option<String>,
    /// The SASL mechanism replica fetchers use on a SASL inter-broker listener (Kafka's
    /// `sasl.mechanism.inter.broker.protocol`) [default: PLAIN].
    #[arg(long, env = "ODRADEK_INTER_BROKER_SASL_MECHANISM", value_name = "MECH")]
    pub inter_broker_sasl_mechanism: Option<String>,
    /// The SASL user replica fetchers log in as on a SASL inter-broker listener; its password
    /// is its line in --sasl-plain-users [default: none].
    #[arg(long, env = "ODRADEK_INTER_BROKER_SASL_USER", value_name = "NAME")]
    pub inter_broker_sasl_user: Option<String>,
    /// How controllers (and broker-only nodes following them) talk on the controller port:
    /// `PLAINTEXT` or `SSL` (mutual TLS: every side presents --ssl-cert, which must chain to
    /// --ssl-ca; the certificate must name the node's controller IP) [default: PLAINTEXT].
    #[arg(long, env = "ODRADEK_CONTROLLER_SECURITY_PROTOCOL", value_name = "PROTOCOL")]
    pub controller_security_protocol: Option<String>,
    /// PEM certificate chain of the TLS listeners (SSL, SASL_SSL); re-read when the file
    /// changes [default: none].
    #[arg(long, env = "ODRADEK_SSL_CERT", value_name = "FILE")]
    pub ssl_cert: Option<PathBuf>,
    /// PEM private key of --ssl-cert [default: none].
    #[arg(long, env = "ODRADEK_SSL_KEY", value_name = "FILE")]
    pub ssl_key: Option<PathBuf>,
    /// PEM CA certificates that client certificates must chain to (mTLS) [default: none].
    #[arg(long, env = "ODRADEK_SSL_CA", value_name = "FILE")]
    pub ssl_ca: Option<PathBuf>,
    /// Whether TLS clients present a certificate: `required`, `requested` or `none` (Kafka's
    /// `ssl.client.auth`); a certificate's subject becomes the principal [default: none].
    #[arg(long, env = "ODRADEK_SSL_CLIENT_AUTH", value_name = "MODE")]
    pub ssl_client_auth: Option<String>,
    /// SASL mechanisms the SASL listeners offer (Kafka's `sasl.enabled.mechanisms`):
    /// PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 [default: PLAIN,SCRAM-SHA-256,SCRAM-SHA-512].
    #[arg(long, env = "ODRADEK_SASL_ENABLED_MECHANISMS", value_name = "MECH,...")]
    pub sasl_enabled_mechanisms: Option<String>,
    /// PLAIN's users, one `name:password` per line (`#` comments); PLAIN also accepts a user's
    /// SCRAM credentials from the cluster metadata [default: none].
    #[arg(long, env = "ODRADEK_SASL_PLAIN_USERS", value_name = "FILE")]
    pub sasl_plain_users: Option<PathBuf>,
    /// An authenticated SASL session lasts this long; the client re-authenticates on the same
    /// connection or it is closed (Kafka's `connections.max.reauth.ms`, KIP-368; 0 = forever)
    /// [default: 0].
    #[arg(long, env = "ODRADEK_CONNECTIONS_MAX_REAUTH_MS", value_name = "MS")]
    pub connections_max_reauth_ms: Option<u64>,
    /// `acl` checks every request against the cluster's ACLs; `none` allows everything (Kafka's
    /// `authorizer.class.name`) [default: none].
    #[arg(long, env = "ODRADEK_AUTHORIZER", value_name = "acl|none")]
    pub authorizer: Option<String>,
    /// Principals allowed everything, `User:a;User:b` (Kafka's `super.users`) [default: none].
    #[arg(long, env = "ODRADEK_SUPER_USERS", value_name = "PRINCIPAL;...")]
    pub super_users: Option<String>,
    /// With the ACL authorizer, allow a request on a resource no ACL names (Kafka's
    /// `allow.everyone.if.no.acl.found`) [default: false].
    #[arg(long, env = "ODRADEK_ALLOW_EVERYONE_IF_NO_ACL_FOUND", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub allow_everyone_if_no_acl_found: Option<bool>,
    /// Run the start-up host checks against /proc and /sys under DIR instead of / (tests).
    #[arg(long, env = "ODRADEK_HOST_ROOT", value_name = "DIR", hide = true)]
    pub host_root: Option<PathBuf>,
}

/// The settings a config file may hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    node_id: Option<i32>,
    rack: Option<String>,
    listen: Option<String>,
    advertise: Option<String>,
    admin_listen: Option<String>,
    smp: Option<usize>,
    default_partitions: Option<i32>,
    auto_create_topics: Option<bool>,
    connections_max_idle_ms: Option<u64>,
    connections_per_shard_max: Option<usize>,
    max_connections_per_ip: Option<u32>,
    max_connections_per_ip_overrides: Option<String>,
    queued_max_request_bytes: Option<usize>,
    fetch_cache_bytes: Option<usize>,
    fetch_disk_reads: Option<DiskReads>,
    direct_writes: Option<bool>,
    writeback_bytes: Option<u64>,
    page_cache_window_bytes: Option<u64>,
    pin_shards: Option<bool>,
    fetch_prefetch_bytes: Option<u64>,
    offsets_retention_ms: Option<u64>,
    offsets_retention_check_interval_ms: Option<u64>,
    group_initial_rebalance_delay_ms: Option<u64>,
    group_min_session_timeout_ms: Option<i32>,
    group_max_session_timeout_ms: Option<i32>,
    process_roles: Option<String>,
    controller_listen: Option<String>,
    controller_quorum_voters: Option<String>,
    broker_session_timeout_ms: Option<u64>,
    broker_heartbeat_interval_ms: Option<u64>,
    replica_lag_time_max_ms: Option<u64>,
    auto_leader_rebalance_enable: Option<bool>,
    leader_imbalance_check_interval_seconds: Option<u64>,
    offsets_topic_replication_factor: Option<i16>,
    transaction_state_log_num_partitions: Option<i32>,
    transaction_state_log_replication_factor: Option<i16>,
    transaction_max_timeout_ms: Option<i32>,
    transaction_abort_timed_out_transaction_cleanup_interval_ms: Option<u64>,
    replica_selector: Option<String>,
    listeners: Option<String>,
    advertised_listeners: Option<String>,
    listener_security_protocol_map: Option<String>,
    inter_broker_listener_name: Option<String>,
    inter_broker_sasl_mechanism: Option<String>,
    inter_broker_sasl_user: Option<String>,
    controller_security_protocol: Option<String>,
    ssl_cert: Option<PathBuf>,
    ssl_key: Option<PathBuf>,
    ssl_ca: Option<PathBuf>,
    ssl_client_auth: Option<String>,
    sasl_enabled_mechanisms: Option<String>,
    sasl_plain_users: Option<PathBuf>,
    connections_max_reauth_ms: Option<u64>,
    authorizer: Option<String>,
    super_users: Option<String>,
    allow_everyone_if_no_acl_found: Option<bool>,
}

/// A resolved node configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// The admin HTTP listener, if any.
    pub admin_listen: Option<AdminListen>,
    /// Host and port given to clients in Metadata.
    pub advertise: (String, u16),
    pub smp: usize,
    pub default_partitions: i32,
    pub auto_create_topics: bool,
    /// This node's id (Kafka's `node.id`, also its `broker.id`).
    pub node_id: i32,
    /// Kafka's `broker.rack`.
    pub rack: Option<String>,
    /// Kafka names of the broker settings given by a flag, the environment or the config file;
    /// the others are defaults (DescribeConfigs' `config_source`).
    pub given: Vec<&'static str>,
    /// `socket.request.max.bytes`.
    pub request_max_bytes: usize,
    /// `connections.max.idle.ms`: a connection with no complete request for this long is
    /// closed (also bounds a client that stalls halfway through a request).
    pub connections_max_idle_ms: u64,
    /// Connections one shard accepts at most (config file key `connections_per_shard_max`).
    pub connections_per_shard_max: usize,
    /// `max.connections.per.ip` and its overrides: connections one client address may hold on
    /// the node (config file keys `max_connections_per_ip`, `max_connections_per_ip_overrides`).
    pub connections_per_ip: crate::server::per_ip::Limits,
    /// `queued.max.request.bytes`: request bytes the node's connections hold at most while
    /// reading and handling requests larger than 64 KiB, split evenly over the shards (config
    /// file key `queued_max_request_bytes`).
    pub queued_max_request_bytes: usize,
    /// Memory each shard keeps of recently appended batches for tailing consumers (config file
    /// key `fetch_cache_bytes`; 0 turns the cache off).
    pub fetch_cache_bytes: usize,
    /// How a fetch that misses the cache sends records from a segment file (config file key
    /// `fetch_disk_reads`).
    pub fetch_disk_reads: DiskReads,
    /// Whether partition logs write with O_DIRECT (config file key `direct_writes`; default
    /// false: through the page cache, so that an acks=1 reply never waits for the device; with
    /// true the log falls back to buffered writes where O_DIRECT is unavailable).
    pub direct_writes: bool,
    /// Writes through the page cache: a partition has the kernel start writing its dirty
    /// bytes to the device every this many bytes (config file key `writeback_bytes`, default
    /// 1 MiB; 0 leaves it all to the kernel's flusher, which writes gigabytes at once).
    pub writeback_bytes: u64,
    /// Page cache a partition keeps behind its end: written-back (or synced) bytes further back
    /// are dropped from the cache (config file key `page_cache_window_bytes`, default 4 MiB;
    /// 0 never drops). Consumers further behind read from the device, with read-ahead.
    pub page_cache_window_bytes: u64,
    /// Whether each shard thread is pinned to its own core (config file key `pin_shards`;
    /// default true). Unpinned suits a host shared with other busy processes, where a pinned
    /// shard must wait for its one core while another core idles (Redpanda's
    /// `--overprovisioned`).
    pub pin_shards: bool,
    /// After a fetch reads a segment range from disk, the bytes after it that the kernel is
    /// asked to read ahead (config file key `fetch_prefetch_bytes`; 0 turns it off).
    pub fetch_prefetch_bytes: u64,
    /// How long a committed offset of a group without members is kept after its commit
    /// (Kafka's `offsets.retention.minutes`, 7 days; config file key `offsets_retention_ms`).
    pub offsets_retention_ms: u64,
    /// How often expired offsets are looked for (Kafka's
    /// `offsets.retention.check.interval.ms`, 10 minutes).
    pub offsets_retention_check_interval_ms: u64,
    /// How long a group that starts from empty waits for more members before its first
    /// generation (Kafka's `group.initial.rebalance.delay.ms`, 3000; config file key
    /// `group_initial_rebalance_delay_ms`).
    pub group_initial_rebalance_delay_ms: u64,
    /// The shortest session timeout a JoinGroup may ask for; shorter ones get
    /// INVALID_SESSION_TIMEOUT (Kafka's `group.min.session.timeout.ms`, 6000; config file key
    /// `group_min_session_timeout_ms`).
    pub group_min_session_timeout_ms: i32,
    /// The longest session timeout a JoinGroup may ask for (Kafka's
    /// `group.max.session.timeout.ms`, 1800000; config file key
    /// `group_max_session_timeout_ms`).
    pub group_max_session_timeout_ms: i32,
    /// Roles, controller quorum and broker liveness settings.
    pub cluster: ClusterConfig,
    /// Listeners, TLS, SASL and authorization.
    pub security: security::SecurityConfig,
    /// The transaction coordinator's settings.
    pub transactions: TxnConfig,
}

/// The transaction coordinator's settings (Kafka's names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transaction.state.log.num.partitions`.
    pub state_log_num_partitions: i32,
    /// `transaction.state.log.replication.factor` (capped by the live brokers when the topic
    /// is created).
    pub state_log_replication_factor: i16,
    /// `transaction.max.timeout.ms`.
    pub max_timeout_ms: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub abort_check_interval_ms: u64,
}

impl TxnConfig {
    fn resolve(args: &ServeArgs, file: &FileConfig) -> Result<Self, ConfigError> {
        let partitions = args
            .transaction_state_log_num_partitions
            .or(file.transaction_state_log_num_partitions)
            .unwrap_or(50);
        check_range("--transaction-state-log-num-partitions", i64::from(partitions), 1, 10_000)?;
        let rf = args
            .transaction_state_log_replication_factor
            .or(file.transaction_state_log_replication_factor)
            .unwrap_or(3);
        check_range(
            "--transaction-state-log-replication-factor",
            i64::from(rf),
            1,
            i64::from(i16::MAX),
        )?;
        let max_timeout =
            args.transaction_max_timeout_ms.or(file.transaction_max_timeout_ms).unwrap_or(900_000);
        check_range(
            "--transaction-max-timeout-ms",
            i64::from(max_timeout),
            1,
            i64::from(i32::MAX),
        )?;
        let interval = args
            .transaction_abort_timed_out_transaction_cleanup_interval_ms
            .or(file.transaction_abort_timed_out_transaction_cleanup_interval_ms)
            .unwrap_or(10_000);
        check_range(
            "--transaction-abort-timed-out-transaction-cleanup-interval-ms",
            i64::try_from(interval).unwrap_or(i64::MAX),
            1,
            86_400_000,
        )?;
        Ok(TxnConfig {
            state_log_num_partitions: partitions,
            state_log_replication_factor: rf,
            max_timeout_ms: max_timeout,
            abort_check_interval_ms: interval,
        })
    }
}

/// What a node runs (Kafka's `process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub broker: bool,
    pub controller: bool,
}

impl Roles {
    fn parse(raw: &str) -> Result<Self, ConfigError> {
        let mut roles = Roles { broker: false, controller: false };
        for role in raw.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            match role {
                "broker" => roles.broker = true,
                "controller" => roles.controller = true,
                other => {
                    return Err(ConfigError::Roles {
                        value: raw.to_owned(),
                        reason: format!("unknown role `{other}`"),
                    });
                }
            }
        }
        if !roles.broker && !roles.controller {
            return Err(ConfigError::Roles { value: raw.to_owned(), reason: "no role".into() });
        }
        Ok(roles)
    }
}

/// The cluster side of a node's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub roles: Roles,
    /// The controller listener (voters only).
    pub controller_listen: SocketAddr,
    /// The controller quorum; a node given none is a quorum of one (itself).
    pub voters: Voters,
    /// Whether the voters were configured (a cluster), not this node alone by default.
    pub configured_voters: bool,
    /// Kafka's `broker.session.timeout.ms`.
    pub broker_session_timeout_ms: u64,
    /// Kafka's `broker.heartbeat.interval.ms`.
    pub broker_heartbeat_interval_ms: u64,
    /// Kafka's `replica.lag.time.max.ms`.
    pub replica_lag_time_max_ms: u64,
    /// Kafka's `auto.leader.rebalance.enable`.
    pub auto_leader_rebalance_enable: bool,
    /// Kafka's `leader.imbalance.check.interval.seconds`.
    pub leader_imbalance_check_interval_seconds: u64,
    /// Kafka's `offsets.topic.replication.factor` (capped by the live brokers when the topic
    /// is created).
    pub offsets_topic_replication_factor: i16,
    /// Whether consumers with a rack are sent to an in-sync replica in their rack (KIP-392).
    pub rack_aware_reads: bool,
}

/// Kafka's `replica.lag.time.max.ms` default.
pub const REPLICA_LAG_TIME_MAX_MS_DEFAULT: u64 = 30_000;
/// Kafka's `leader.imbalance.check.interval.seconds` default.
pub const LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS_DEFAULT: u64 = 300;
/// Kafka's `offsets.topic.replication.factor` default.
pub const OFFSETS_TOPIC_REPLICATION_FACTOR_DEFAULT: i16 = 3;

/// Kafka's `broker.session.timeout.ms` default.
pub const BROKER_SESSION_TIMEOUT_MS_DEFAULT: u64 = 9_000;
/// Kafka's `broker.heartbeat.interval.ms` default.
pub const BROKER_HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 2_000;

/// Kafka's `group.min.session.timeout.ms` default.
pub const GROUP_MIN_SESSION_TIMEOUT_MS_DEFAULT: i32 = 6_000;
/// Kafka's `group.max.session.timeout.ms` default.
pub const GROUP_MAX_SESSION_TIMEOUT_MS_DEFAULT: i32 = 1_800_000;

/// How fetched records get from a segment file to the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskReads {
    /// Read into memory, then write: one copy through user space.
    Copy,
    /// io_uring splice, file → pipe → socket: no copy through user space. The default: as fast
    /// as copy for small records and 10–50 % faster for 1 KiB records (bench/RESULTS.md).
    #[default]
    Splice,
}

/// Why a configuration could not be resolved; each says what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("{what} `{value}` is not a HOST:PORT address ({reason})")]
    Address { what: &'static str, value: String, reason: String },
    #[error("{what} must be between {min} and {max}, not {value}")]
    Range { what: &'static str, value: i64, min: i64, max: i64 },
    #[error("--process-roles `{value}`: {reason}; use broker, controller or broker,controller")]
    Roles { value: String, reason: String },
    #[error("--controller-quorum-voters: {0}")]
    Voters(#[from] VotersError),
    #[error("{0}")]
    Cluster(String),
    #[error("{0}")]
    Security(String),
    #[error("{0}")]
    Connections(String),
}

/// Defaults that depend on the host (autotune, `odradek_tuning::autotune`): used where no flag,
/// environment variable or config-file key sets the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostDefaults {
    pub smp: usize,
    pub fetch_cache_bytes: usize,
    pub direct_writes: bool,
}

impl HostDefaults {
    /// The built-in defaults: a shard per CPU, 32 MiB of recent batches per shard, writes
    /// through the page cache.
    #[cfg(test)]
    pub fn plain(cpus: usize) -> Self {
        Self {
            smp: cpus.max(1),
            fetch_cache_bytes: odradek_tuning::autotune::FETCH_CACHE_BYTES_DEFAULT as usize,
            direct_writes: false,
        }
    }
}

impl NodeConfig {
    /// Resolves flags (already merged with the environment by clap) over the config file over
    /// the built-in defaults for `cpus` CPUs.
    #[cfg(test)]
    pub fn resolve(args: &ServeArgs, cpus: usize) -> Result<Self, ConfigError> {
        Self::resolve_with(args, |_, _| HostDefaults::plain(cpus))
    }

    /// Resolves flags over the config file over `host_defaults`, which is asked once the data
    /// directory and the configured shard count (if any) are known (autotune reads the data
    /// dir's `iotune.json` and sizes memory per shard).
    pub fn resolve_with(
        args: &ServeArgs,
        host_defaults: impl FnOnce(&Path, Option<usize>) -> HostDefaults,
    ) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let given = given_broker_keys(args, &file);
        let node_id = args.node_id.or(file.node_id).unwrap_or(0);
        check_range("--node-id", i64::from(node_id), 0, i64::from(i32::MAX))?;
        let listen_raw =
            args.listen.clone().or(file.listen.clone()).unwrap_or_else(|| "0.0.0.0:9092".into());
        let listen = parse_addr("--listen", &listen_raw)?;
        let (group_min_session_timeout_ms, group_max_session_timeout_ms) =
            group_session_bounds(&file)?;
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DATA_DIR_DEFAULT));
        let configured_smp = args.smp.or(file.smp);
        let host = host_defaults(&data_dir, configured_smp);
        let advertise = match args.advertise.clone().or(file.advertise.clone()) {
            Some(raw) => split_host_port("--advertise", &raw)?,
            None if listen.ip().is_unspecified() => {
                (IpAddr::V4(Ipv4Addr::LOCALHOST).to_string(), listen.port())
            }
            None => (listen.ip().to_string(), listen.port()),
        };
        let listen_given = args.listen.is_some() || file.listen.is_some();
        let security = security::resolve(
            security::Raw {
                listeners: args.listeners.clone().or(file.listeners.clone()),
                advertised_listeners: args
                    .advertised_listeners
                    .clone()
                    .or(file.advertised_listeners.clone()),
                protocol_map: args
                    .listener_security_protocol_map
                    .clone()
                    .or(file.listener_security_protocol_map.clone()),
                inter_broker: args
                    .inter_broker_listener_name
                    .clone()
                    .or(file.inter_broker_listener_name.clone()),
                inter_broker_sasl_mechanism: args
                    .inter_broker_sasl_mechanism
                    .clone()
                    .or(file.inter_broker_sasl_mechanism.clone()),
                inter_broker_sasl_user: args
                    .inter_broker_sasl_user
                    .clone()
                    .or(file.inter_broker_sasl_user.clone()),
                controller_security_protocol: args
                    .controller_security_protocol
                    .clone()
                    .or(file.controller_security_protocol.clone()),
                ssl_cert: args.ssl_cert.clone().or(file.ssl_cert.clone()),
                ssl_key: args.ssl_key.clone().or(file.ssl_key.clone()),
                ssl_ca: args.ssl_ca.clone().or(file.ssl_ca.clone()),
                ssl_client_auth: args.ssl_client_auth.clone().or(file.ssl_client_auth.clone()),
                sasl_enabled_mechanisms: args
                    .sasl_enabled_mechanisms
                    .clone()
                    .or(file.sasl_enabled_mechanisms.clone()),
                sasl_plain_users: args.sasl_plain_users.clone().or(file.sasl_plain_users.clone()),
                connections_max_reauth_ms: args
                    .connections_max_reauth_ms
                    .or(file.connections_max_reauth_ms),
                authorizer: args.authorizer.clone().or(file.authorizer.clone()),
                super_users: args.super_users.clone().or(file.super_users.clone()),
                allow_everyone_if_no_acl_found: args
                    .allow_everyone_if_no_acl_found
                    .or(file.allow_everyone_if_no_acl_found),
            },
            listen,
            advertise.clone(),
            listen_given,
        )?;
        // The node's own address (outgoing connections, the admin port's default host, what
        // other brokers fetch from) is the inter-broker listener's.
        let (listen, advertise) = {
            let l = security.inter_broker();
            (l.addr, l.advertised.clone())
        };
        let cluster = resolve_cluster(args, &file, node_id, listen)?;
        let smp = configured_smp.unwrap_or(host.smp.max(1));
        check_range("--smp", smp as i64, 1, SMP_MAX as i64)?;
        let default_partitions = args.default_partitions.or(file.default_partitions).unwrap_or(1);
        check_range(
            "--default-partitions",
            i64::from(default_partitions),
            1,
            i64::from(PARTITIONS_MAX),
        )?;
        let rack = args.rack.clone().or(file.rack.clone()).filter(|r| !r.is_empty());
        let admin_listen = match args.admin_listen.clone().or(file.admin_listen.clone()) {
            Some(raw) if raw.eq_ignore_ascii_case("none") => None,
            Some(raw) => {
                Some(AdminListen { addr: parse_addr("--admin-listen", &raw)?, explicit: true })
            }
            None => Some(AdminListen {
                addr: SocketAddr::new(listen.ip(), ADMIN_PORT_DEFAULT),
                explicit: false,
            }),
        };
        let transactions = TxnConfig::resolve(args, &file)?;
        Ok(NodeConfig {
            data_dir,
            listen,
            admin_listen,
            advertise,
            smp,
            default_partitions,
            auto_create_topics: args.auto_create_topics.or(file.auto_create_topics).unwrap_or(true),
            node_id,
            rack,
            given,
            request_max_bytes: odradek_net::frame::SOCKET_REQUEST_MAX_BYTES_DEFAULT,
            connections_max_idle_ms: file
                .connections_max_idle_ms
                .unwrap_or(CONNECTIONS_MAX_IDLE_MS_DEFAULT)
                .max(1),
            connections_per_shard_max: file
                .connections_per_shard_max
                .unwrap_or(CONNECTIONS_PER_SHARD_MAX_DEFAULT)
                .max(1),
            connections_per_ip: connections_per_ip(&file)?,
            queued_max_request_bytes: file
                .queued_max_request_bytes
                .unwrap_or(QUEUED_MAX_REQUEST_BYTES_DEFAULT)
                .max(1),
            fetch_cache_bytes: file.fetch_cache_bytes.unwrap_or(host.fetch_cache_bytes),
            fetch_disk_reads: file.fetch_disk_reads.unwrap_or_default(),
            direct_writes: file.direct_writes.unwrap_or(host.direct_writes),
            writeback_bytes: file.writeback_bytes.unwrap_or(odradek_storage::WRITEBACK_BYTES),
            page_cache_window_bytes: file
                .page_cache_window_bytes
                .unwrap_or(odradek_storage::PAGE_CACHE_WINDOW_BYTES),
            pin_shards: file.pin_shards.unwrap_or(true),
            fetch_prefetch_bytes: file.fetch_prefetch_bytes.unwrap_or(FETCH_PREFETCH_BYTES_DEFAULT),
            offsets_retention_ms: file.offsets_retention_ms.unwrap_or(7 * 24 * 3600 * 1000),
            offsets_retention_check_interval_ms: file
                .offsets_retention_check_interval_ms
                .unwrap_or(600_000)
                .max(1),
            group_initial_rebalance_delay_ms: file.group_initial_rebalance_delay_ms.unwrap_or(3000),
            group_min_session_timeout_ms,
            group_max_session_timeout_ms,
            cluster,
            security,
            transactions,
        })
    }
}

/// `group.min.session.timeout.ms` and `group.max.session.timeout.ms` (file keys only), checked
/// against each other.
fn group_session_bounds(file: &FileConfig) -> Result<(i32, i32), ConfigError> {
    let min = file.group_min_session_timeout_ms.unwrap_or(GROUP_MIN_SESSION_TIMEOUT_MS_DEFAULT);
    let max = file.group_max_session_timeout_ms.unwrap_or(GROUP_MAX_SESSION_TIMEOUT_MS_DEFAULT);
    check_range("group_max_session_timeout_ms", i64::from(max), 1, i64::from(i32::MAX))?;
    check_range("group_min_session_timeout_ms", i64::from(min), 1, i64::from(max))?;
    Ok((min, max))
}

/// A voter runs the controller role and listens where the voter list says; a node without
/// the role is not in the list.
fn check_membership(
    roles: Roles,
    voters: &Voters,
    node_id: i32,
    listen_given: bool,
    controller_listen: SocketAddr,
) -> Result<(), ConfigError> {
    let node = u64::try_from(node_id).unwrap_or(u64::MAX);
    if roles.controller && !voters.contains(node) {
        return Err(ConfigError::Cluster(format!(
            "node {node_id} runs the controller role but is not in --controller-quorum-voters {}",
            voters.canonical()
        )));
    }
    if !roles.controller && voters.contains(node) {
        return Err(ConfigError::Cluster(format!(
            "node {node_id} is a voter in {} but --process-roles has no controller",
            voters.canonical()
        )));
    }
    if let (true, Some(addr)) = (listen_given, voters.addr(node))
        && roles.controller
        && addr != controller_listen
    {
        return Err(ConfigError::Cluster(format!(
            "--controller-listen {controller_listen} differs from this node's voter address {addr}"
        )));
    }
    Ok(())
}

/// Roles, voters and the controller listener: a node without `--controller-quorum-voters` is
/// the only voter of its own quorum, its controller listening on an ephemeral port of the
/// client listener's IP (nobody else needs to reach it).
fn resolve_cluster(
    args: &ServeArgs,
    file: &FileConfig,
    node_id: i32,
    listen: SocketAddr,
) -> Result<ClusterConfig, ConfigError> {
    let roles_raw = args.process_roles.clone().or(file.process_roles.clone());
    let roles = match &roles_raw {
        Some(raw) => Roles::parse(raw)?,
        None => Roles { broker: true, controller: true },
    };
    let voters_raw =
        args.controller_quorum_voters.clone().or(file.controller_quorum_voters.clone());
    let listen_raw = args.controller_listen.clone().or(file.controller_listen.clone());
    let controller_listen = match &listen_raw {
        Some(raw) => parse_addr("--controller-listen", raw)?,
        None if voters_raw.is_some() && roles.controller => {
            return Err(ConfigError::Cluster(
                "a voter needs --controller-listen (its address in --controller-quorum-voters)"
                    .into(),
            ));
        }
        None => SocketAddr::new(listen.ip(), 0),
    };
    let configured_voters = voters_raw.is_some();
    let voters = match &voters_raw {
        Some(raw) => Voters::parse(raw)?,
        None if roles.broker && roles.controller => {
            Voters::parse(&format!("{node_id}@{controller_listen}"))?
        }
        None => {
            return Err(ConfigError::Cluster(
                "--process-roles without both roles needs --controller-quorum-voters".into(),
            ));
        }
    };
    check_membership(roles, &voters, node_id, listen_raw.is_some(), controller_listen)?;
    let broker_session_timeout_ms = args
        .broker_session_timeout_ms
        .or(file.broker_session_timeout_ms)
        .unwrap_or(BROKER_SESSION_TIMEOUT_MS_DEFAULT);
    check_range("--broker-session-timeout-ms", broker_session_timeout_ms as i64, 100, 3_600_000)?;
    let broker_heartbeat_interval_ms = args
        .broker_heartbeat_interval_ms
        .or(file.broker_heartbeat_interval_ms)
        .unwrap_or(BROKER_HEARTBEAT_INTERVAL_MS_DEFAULT);
    check_range(
        "--broker-heartbeat-interval-ms",
        broker_heartbeat_interval_ms as i64,
        10,
        broker_session_timeout_ms as i64,
    )?;
    let replica_lag_time_max_ms = args
        .replica_lag_time_max_ms
        .or(file.replica_lag_time_max_ms)
        .unwrap_or(REPLICA_LAG_TIME_MAX_MS_DEFAULT);
    check_range("--replica-lag-time-max-ms", replica_lag_time_max_ms as i64, 100, 3_600_000)?;
    let auto_leader_rebalance_enable =
        args.auto_leader_rebalance_enable.or(file.auto_leader_rebalance_enable).unwrap_or(true);
    let leader_imbalance_check_interval_seconds = args
        .leader_imbalance_check_interval_seconds
        .or(file.leader_imbalance_check_interval_seconds)
        .unwrap_or(LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS_DEFAULT);
    check_range(
        "--leader-imbalance-check-interval-seconds",
        leader_imbalance_check_interval_seconds as i64,
        1,
        86_400,
    )?;
    let offsets_topic_replication_factor = args
        .offsets_topic_replication_factor
        .or(file.offsets_topic_replication_factor)
        .unwrap_or(OFFSETS_TOPIC_REPLICATION_FACTOR_DEFAULT);
    check_range(
        "--offsets-topic-replication-factor",
        i64::from(offsets_topic_replication_factor),
        1,
        i64::from(i16::MAX),
    )?;
    let rack_aware_reads =
        match args.replica_selector.as_deref().or(file.replica_selector.as_deref()) {
            None | Some("leader") => false,
            Some("rack-aware") => true,
            Some(other) => {
                return Err(ConfigError::Cluster(format!(
                    "--replica-selector must be `leader` or `rack-aware`, not `{other}`"
                )));
            }
        };
    Ok(ClusterConfig {
        roles,
        controller_listen,
        voters,
        configured_voters,
        broker_session_timeout_ms,
        broker_heartbeat_interval_ms,
        replica_lag_time_max_ms,
        auto_leader_rebalance_enable,
        leader_imbalance_check_interval_seconds,
        offsets_topic_replication_factor,
        rack_aware_reads,
    })
}

/// The Kafka names of the settings that `args` (flags and environment) or `file` give.
fn given_broker_keys(args: &ServeArgs, file: &FileConfig) -> Vec<&'static str> {
    [
        (args.data_dir.is_some() || file.data_dir.is_some(), "log.dirs"),
        (args.node_id.is_some() || file.node_id.is_some(), "node.id"),
        (args.node_id.is_some() || file.node_id.is_some(), "broker.id"),
        (args.rack.is_some() || file.rack.is_some(), "broker.rack"),
        (args.process_roles.is_some() || file.process_roles.is_some(), "process.roles"),
        (
            args.controller_quorum_voters.is_some() || file.controller_quorum_voters.is_some(),
            "controller.quorum.voters",
        ),
        (
            args.broker_session_timeout_ms.is_some() || file.broker_session_timeout_ms.is_some(),
            "broker.session.timeout.ms",
        ),
        (
            args.broker_heartbeat_interval_ms.is_some()
                || file.broker_heartbeat_interval_ms.is_some(),
            "broker.heartbeat.interval.ms",
        ),
        (
            args.replica_lag_time_max_ms.is_some() || file.replica_lag_time_max_ms.is_some(),
            "replica.lag.time.max.ms",
        ),
        (
            args.auto_leader_rebalance_enable.is_some()
                || file.auto_leader_rebalance_enable.is_some(),
            "auto.leader.rebalance.enable",
        ),
        (
            args.leader_imbalance_check_interval_seconds.is_some()
                || file.leader_imbalance_check_interval_seconds.is_some(),
            "leader.imbalance.check.interval.seconds",
        ),
        (
            args.offsets_topic_replication_factor.is_some()
                || file.offsets_topic_replication_factor.is_some(),
            "offsets.topic.replication.factor",
        ),
        (
            args.replica_selector.is_some() || file.replica_selector.is_some(),
            "replica.selector.class",
        ),
        (
            args.transaction_state_log_num_partitions.is_some()
                || file.transaction_state_log_num_partitions.is_some(),
            "transaction.state.log.num.partitions",
        ),
        (
            args.transaction_state_log_replication_factor.is_some()
                || file.transaction_state_log_replication_factor.is_some(),
            "transaction.state.log.replication.factor",
        ),
        (
            args.transaction_max_timeout_ms.is_some() || file.transaction_max_timeout_ms.is_some(),
            "transaction.max.timeout.ms",
        ),
        (
            args.transaction_abort_timed_out_transaction_cleanup_interval_ms.is_some()
                || file.transaction_abort_timed_out_transaction_cleanup_interval_ms.is_some(),
            "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        ),
        (args.listen.is_some() || file.listen.is_some(), "listeners"),
        (args.advertise.is_some() || file.advertise.is_some(), "advertised.listeners"),
        (args.default_partitions.is_some() || file.default_partitions.is_some(), "num.partitions"),
        (
            args.auto_create_topics.is_some() || file.auto_create_topics.is_some(),
            "auto.create.topics.enable",
        ),
        (file.connections_max_idle_ms.is_some(), "connections.max.idle.ms"),
        (file.queued_max_request_bytes.is_some(), "queued.max.request.bytes"),
        (file.max_connections_per_ip.is_some(), "max.connections.per.ip"),
        (file.max_connections_per_ip_overrides.is_some(), "max.connections.per.ip.overrides"),
        (file.offsets_retention_ms.is_some(), "offsets.retention.minutes"),
        (file.offsets_retention_check_interval_ms.is_some(), "offsets.retention.check.interval.ms"),
        (file.group_initial_rebalance_delay_ms.is_some(), "group.initial.rebalance.delay.ms"),
    ]
    .into_iter()
    .filter_map(|(given, name)| given.then_some(name))
    .collect()
}

/// `max_connections_per_ip` (Kafka's default, 2147483647, is no limit) and its overrides. As in
/// Kafka, 0 refuses every address without an override, so it needs overrides.
fn connections_per_ip(file: &FileConfig) -> Result<crate::server::per_ip::Limits, ConfigError> {
    let raw = file.max_connections_per_ip_overrides.as_deref().unwrap_or("");
    let overrides =
        crate::server::per_ip::parse_overrides(raw).map_err(ConfigError::Connections)?;
    let default = file.max_connections_per_ip.filter(|&n| n < MAX_CONNECTIONS_PER_IP_DEFAULT);
    if default == Some(0) && overrides.is_empty() {
        return Err(ConfigError::Connections(
            "max_connections_per_ip = 0 refuses every client; it needs max_connections_per_ip_overrides naming the addresses that may connect".into(),
        ));
    }
    Ok(crate::server::per_ip::Limits { default, overrides })
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    toml::from_str(&text)
        .map_err(|e| ConfigError::Parse { path: path.to_owned(), reason: e.to_string() })
}

fn parse_addr(what: &'static str, raw: &str) -> Result<SocketAddr, ConfigError> {
    let err = |reason: String| ConfigError::Address { what, value: raw.to_owned(), reason };
    raw.to_socket_addrs()
        .map_err(|e| err(e.to_string()))?
        .next()
        .ok_or_else(|| err("it resolves to no address".into()))
}

fn split_host_port(what: &'static str, raw: &str) -> Result<(String, u16), ConfigError> {
    let err =
        |reason: &str| ConfigError::Address { what, value: raw.to_owned(), reason: reason.into() };
    let (host, port) = raw.rsplit_once(':').ok_or_else(|| err("no port"))?;
    let port: u16 = port.parse().map_err(|_| err("the port is not a number in 0..=65535"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(err("no host"));
    }
    Ok((host.to_owned(), port))
}

fn check_range(what: &'static str, value: i64, min: i64, max: i64) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::Range { what, value, min, max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_need_no_file() {
        let c = NodeConfig::resolve(&ServeArgs::default(), 2).expect("defaults");
        assert_eq!(c.data_dir, PathBuf::from("./odradek-data"));
        assert_eq!(c.listen, "0.0.0.0:9092".parse().expect("addr"));
        assert_eq!(c.advertise, ("127.0.0.1".to_owned(), 9092), "0.0.0.0 advertises loopback");
        assert_eq!((c.smp, c.default_partitions, c.auto_create_topics), (2, 1, true));
    }

    #[test]
    fn host_defaults_fill_only_what_nothing_else_sets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tuned = HostDefaults { smp: 3, fetch_cache_bytes: 7, direct_writes: false };
        let mut asked = None;
        let args = ServeArgs { data_dir: Some(dir.path().to_owned()), ..ServeArgs::default() };
        let c = NodeConfig::resolve_with(&args, |d, smp| {
            asked = Some((d.to_owned(), smp));
            tuned
        })
        .expect("resolve");
        assert_eq!(asked, Some((dir.path().to_owned(), None)), "asked with the data dir");
        assert_eq!((c.smp, c.fetch_cache_bytes, c.direct_writes), (3, 7, false));

        let path = dir.path().join("odradek.toml");
        std::fs::write(&path, "fetch_cache_bytes = 9\ndirect_writes = true\n").expect("write");
        let args = ServeArgs { config: Some(path), smp: Some(1), ..args };
        let c = NodeConfig::resolve_with(&args, |_, smp| {
            assert_eq!(smp, Some(1), "the configured shard count");
            tuned
        })
        .expect("resolve");
        assert_eq!((c.smp, c.fetch_cache_bytes, c.direct_writes), (1, 9, true));
    }

    #[test]
    fn flags_beat_the_file_which_beats_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("odradek.toml");
        std::fs::write(&path, "data_dir = \"/from/file\"\nsmp = 3\nlisten = \"127.0.0.1:9999\"\n")
            .expect("write");
        let args = ServeArgs { config: Some(path.clone()), smp: Some(1), ..ServeArgs::default() };
        let c = NodeConfig::resolve(&args, 8).expect("resolve");
        assert_eq!(c.data_dir, PathBuf::from("/from/file"));
        assert_eq!(c.smp, 1, "the flag wins");
        assert_eq!(
            c.advertise,
            ("127.0.0.1".to_owned(), 9999),
            "advertise follows a concrete listen"
        );
        std::fs::write(&path, "data_dirr = \"typo\"\n").expect("write");
        let err = NodeConfig::resolve(&args, 8).expect_err("unknown key");
        assert!(err.to_string().contains("data_dirr"), "{err}");
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let bad = |a: ServeArgs| NodeConfig::resolve(&a, 2).expect_err("bad").to_string();
        assert!(
            bad(ServeArgs { listen: Some("nonsense".into()), ..Default::default() })
                .contains("--listen")
        );
        assert!(
            bad(ServeArgs { advertise: Some("host".into()), ..Default::default() })
                .contains("no port")
        );
        assert!(bad(ServeArgs { smp: Some(0), ..Default::default() }).contains("--smp"));
        assert!(
            bad(ServeArgs { default_partitions: Some(0), ..Default::default() })
                .contains("partitions")
        );
    }

    #[test]
    fn no_cluster_flags_make_a_quorum_of_one() {
        let args = ServeArgs {
            node_id: Some(4),
            listen: Some("127.0.0.3:9092".into()),
            ..Default::default()
        };
        let c = NodeConfig::resolve(&args, 2).expect("defaults").cluster;
        assert_eq!(c.roles, Roles { broker: true, controller: true });
        assert!(!c.configured_voters);
        assert_eq!(c.voters.canonical(), "4@127.0.0.3:0", "this node alone, an ephemeral port");
        assert_eq!((c.broker_session_timeout_ms, c.broker_heartbeat_interval_ms), (9000, 2000));
    }

    #[test]
    fn cluster_flags_and_file_keys_follow_kafkas_names() {
        let voters = "1@127.0.0.2:9093,2@127.0.0.3:9093,3@127.0.0.4:9093";
        let args = ServeArgs {
            node_id: Some(2),
            listen: Some("127.0.0.3:9092".into()),
            controller_listen: Some("127.0.0.3:9093".into()),
            controller_quorum_voters: Some(voters.into()),
            ..Default::default()
        };
        let c = NodeConfig::resolve(&args, 2).expect("a voter").cluster;
        assert!(c.configured_voters && c.roles.controller && c.roles.broker);
        assert_eq!(c.controller_listen, "127.0.0.3:9093".parse().expect("addr"));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("odradek.toml");
        std::fs::write(
            &path,
            format!(
                "node_id = 5\nprocess_roles = \"broker\"\ncontroller_quorum_voters = \"{voters}\"\n\
                 broker_session_timeout_ms = 3000\nbroker_heartbeat_interval_ms = 500\n"
            ),
        )
        .expect("write");
        let file = ServeArgs { config: Some(path), ..Default::default() };
        let c = NodeConfig::resolve(&file, 2).expect("an observer").cluster;
        assert_eq!(c.roles, Roles { broker: true, controller: false });
        assert_eq!((c.broker_session_timeout_ms, c.broker_heartbeat_interval_ms), (3000, 500));
        let bad = |a: ServeArgs| NodeConfig::resolve(&a, 2).expect_err("refused").to_string();
        let with = |f: fn(&mut ServeArgs)| {
            let mut a = args.clone();
            f(&mut a);
            a
        };
        assert!(bad(with(|a| a.process_roles = Some("borker".into()))).contains("unknown role"));
        assert!(bad(with(|a| a.node_id = Some(7))).contains("not in --controller-quorum-voters"));
        assert!(bad(with(|a| a.controller_listen = None)).contains("needs --controller-listen"));
        assert!(
            bad(with(|a| a.controller_listen = Some("127.0.0.3:9999".into())))
                .contains("differs from this node's voter address")
        );
        assert!(
            bad(with(|a| a.process_roles = Some("broker".into()))).contains("has no controller")
        );
        assert!(bad(with(|a| a.controller_quorum_voters = Some("1@x".into()))).contains("voters"));
        assert!(
            bad(with(|a| a.broker_heartbeat_interval_ms = Some(20_000)))
                .contains("--broker-heartbeat-interval-ms")
        );
    }

    #[test]
    fn leader_rebalance_flags_have_kafkas_defaults_and_come_from_flags_and_the_file() {
        let c = NodeConfig::resolve(&ServeArgs::default(), 2).expect("defaults").cluster;
        assert_eq!(
            (c.auto_leader_rebalance_enable, c.leader_imbalance_check_interval_seconds),
            (true, 300)
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("odradek.toml");
        std::fs::write(
            &path,
            "auto_leader_rebalance_enable = false\nleader_imbalance_check_interval_seconds = 7\n",
        )
        .expect("write");
        let file = ServeArgs { config: Some(path), ..Default::default() };
        let c = NodeConfig::resolve(&file, 2).expect("from the file").cluster;
        assert_eq!(
            (c.auto_leader_rebalance_enable, c.leader_imbalance_check_interval_seconds),
            (false, 7)
        );
        let flags = ServeArgs {
            auto_leader_rebalance_enable: Some(true),
            leader_imbalance_check_interval_seconds: Some(2),
            ..file.clone()
        };
        let c = NodeConfig::resolve(&flags, 2).expect("flags win").cluster;
        assert_eq!(
            (c.auto_leader_rebalance_enable, c.leader_imbalance_check_interval_seconds),
            (true, 2)
        );
        let zero = ServeArgs { leader_imbalance_check_interval_seconds: Some(0), ..flags };
        let err = NodeConfig::resolve(&zero, 2).expect_err("refused").to_string();
        assert!(err.contains("--leader-imbalance-check-interval-seconds"), "{err}");
    }

    #[test]
    fn session_timeout_bounds_have_kafkas_defaults_and_come_from_the_file() {
        let c = NodeConfig::resolve(&ServeArgs::default(), 2).expect("defaults");
        assert_eq!(
            (c.group_min_session_timeout_ms, c.group_max_session_timeout_ms),
            (6_000, 1_800_000)
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("odradek.toml");
        let args = ServeArgs { config: Some(path.clone()), ..ServeArgs::default() };
        std::fs::write(
            &path,
            "group_min_session_timeout_ms = 1000\ngroup_max_session_timeout_ms = 60000\n",
        )
        .expect("write");
        let c = NodeConfig::resolve(&args, 2).expect("resolve");
        assert_eq!(
            (c.group_min_session_timeout_ms, c.group_max_session_timeout_ms),
            (1000, 60_000)
        );
        for (text, names) in [
            ("group_min_session_timeout_ms = 70000\ngroup_max_session_timeout_ms = 60000\n", "min"),
            ("group_min_session_timeout_ms = 0\n", "min"),
            ("group_max_session_timeout_ms = 0\n", "max"),
        ] {
            std::fs::write(&path, text).expect("write");
            let err = NodeConfig::resolve(&args, 2).expect_err("out of range").to_string();
            assert!(err.contains(&format!("group_{names}_session_timeout_ms")), "{err}");
        }
    }

    #[test]
    fn connections_per_ip_follow_kafkas_keys_and_refuse_a_limit_of_zero_alone() {
        let c = NodeConfig::resolve(&ServeArgs::default(), 2).expect("defaults");
        assert_eq!(c.connections_per_ip, crate::server::per_ip::Limits::default());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("odradek.toml");
        let args = ServeArgs { config: Some(path.clone()), ..ServeArgs::default() };
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("address");
        std::fs::write(
            &path,
            "max_connections_per_ip = 0\nmax_connections_per_ip_overrides = \"10.1.1.1:20\"\n",
        )
        .expect("write");
        let c = NodeConfig::resolve(&args, 2).expect("resolve");
        assert_eq!(c.connections_per_ip.of(ip("10.1.1.1")), Some(20));
        assert_eq!(c.connections_per_ip.of(ip("10.1.1.2")), Some(0));
        assert!(c.given.contains(&"max.connections.per.ip"));
        // Kafka's default is no limit, whether left out or written.
        std::fs::write(&path, "max_connections_per_ip = 2147483647\n").expect("write");
        let c = NodeConfig::resolve(&args, 2).expect("resolve");
        assert_eq!(c.connections_per_ip.of(ip("10.1.1.2")), None);
        for text in [
            "max_connections_per_ip = 0\n",
            "max_connections_per_ip_overrides = \"10.1.1.1\"\n",
            "max_connections_per_ip = -1\n",
        ] {
            std::fs::write(&path, text).expect("write");
            let err = NodeConfig::resolve(&args, 2).expect_err(text).to_string();
            assert!(err.contains("max_connections_per_ip"), "{text}: {err}");
        }
    }
}
