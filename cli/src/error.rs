//! The CLI's errors: one line for stderr and the exit code that goes with it.

use odradek_client::{ClientError, kafka_error_name};

/// The exit codes of the CLI (documented in the README's "The CLI").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done.
    Ok = 0,
    /// The broker answered with a Kafka error, or its answer could not be used.
    Kafka = 1,
    /// Bad usage: flags, arguments, input (clap's own usage errors also exit 2).
    Usage = 2,
    /// No broker could be reached, or a connection broke.
    Connect = 3,
    /// `cluster health`: some partition has no leader or a short ISR.
    Unhealthy = 4,
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}

/// An error of a command: the line printed after `odradek: ` and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub exit: Exit,
    pub line: String,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line)
    }
}

impl std::error::Error for CliError {}

/// What to do about a Kafka error code met while working on `subject` (a topic or a group).
fn advice(code: i16, subject: &str) -> Option<String> {
    Some(match code {
        1 => "the offset is outside the partition's log; use -o start or -o end".into(),
        3 => {
            format!("no such topic or partition; 'odradek topic list' lists the topics ({subject})")
        }
        5 | 6 => {
            "the partition has no leader right now; retry, and see 'odradek cluster health'".into()
        }
        7 => "the broker did not finish in time; retry".into(),
        10 => "the record is larger than the broker or topic accepts (max.message.bytes)".into(),
        14..=16 => "the group coordinator is not ready; retry".into(),
        17 => "the name is not a valid topic name (letters, digits, '.', '_', '-')".into(),
        19 | 20 => "not enough in-sync replicas for acks=all; see 'odradek cluster health'".into(),
        22 | 25 | 27 => "the group rebalanced meanwhile; run the command again".into(),
        36 => format!("the topic exists; use 'odradek topic describe {subject}'"),
        37 => "partition counts must be positive, and a topic can only grow".into(),
        38 => "the replication factor must be between 1 and the number of live brokers".into(),
        39 => "the replica assignment is not valid".into(),
        40 => "a config key or value is not valid; 'odradek topic describe' lists the keys".into(),
        41 => "no controller is available; retry, and see 'odradek cluster info'".into(),
        42 => "the broker refused the request as invalid".into(),
        35 => "the broker does not support this request version".into(),
        68 => "the group has members; stop its consumers first".into(),
        69 => "no such group; 'odradek group list' lists the groups".into(),
        _ => return None,
    })
}

impl CliError {
    /// A usage error (exit 2).
    pub fn usage(line: impl Into<String>) -> CliError {
        CliError { exit: Exit::Usage, line: line.into() }
    }

    /// An error a broker's answer implies, without a Kafka error code (exit 1).
    pub fn kafka(line: impl Into<String>) -> CliError {
        CliError { exit: Exit::Kafka, line: line.into() }
    }

    /// A client error met while working on `subject` ("topic orders", "group g").
    pub fn client(subject: &str, err: &ClientError) -> CliError {
        if err.is_connection() {
            return CliError {
                exit: Exit::Connect,
                line: format!(
                    "{subject}: cannot reach the broker: {err}; check --brokers or ODRADEK_BROKERS"
                ),
            };
        }
        if let Some(code) = err.kafka_code() {
            let name = kafka_error_name(code);
            let bare = subject.rsplit(' ').next().unwrap_or(subject);
            let tail = match advice(code, bare) {
                Some(a) => a,
                None => err.to_string(),
            };
            return CliError { exit: Exit::Kafka, line: format!("{subject}: {name}: {tail}") };
        }
        let line = match err {
            ClientError::Unsupported { api } => format!(
                "{subject}: the broker does not support Kafka API {api}, which this command needs"
            ),
            other => format!("{subject}: {other}"),
        };
        CliError { exit: Exit::Kafka, line }
    }
}

/// `map_err` helper: a client error while working on `subject`.
pub(crate) fn on(subject: &str) -> impl Fn(ClientError) -> CliError + '_ {
    move |e| CliError::client(subject, &e)
}

pub(crate) type Result<T, E = CliError> = std::result::Result<T, E>;
