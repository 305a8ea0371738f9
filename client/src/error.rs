//! The client's errors: one enum, each variant with the facts needed to act on it.

/// Why a request could not be made or its answer understood.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("encoding api {api} v{version}: {reason}")]
    Encode { api: i16, version: i16, reason: String },
    #[error("decoding the response of api {api} v{version}: {reason}")]
    Decode { api: i16, version: i16, reason: String },
    /// A consumer-protocol message (subscription, assignment) embedded in a group request.
    #[error("consumer protocol message v{version}: {reason}")]
    ConsumerProtocol { version: i16, reason: String },
    #[error("response correlation id {found}, expected {expected}")]
    Correlation { expected: i32, found: i32 },
    #[error("response frame of {len} bytes exceeds the limit of {max_bytes} bytes")]
    FrameTooLarge { len: usize, max_bytes: usize },
    #[error("negative response frame length {len}")]
    NegativeFrame { len: i32 },
    #[error("the broker does not support api {api}")]
    Unsupported { api: i16 },
    #[error(
        "no common version of api {api}: broker {broker_min}..={broker_max}, client up to {ours}"
    )]
    NoCommonVersion { api: i16, broker_min: i16, broker_max: i16, ours: i16 },
    /// The broker answered with a Kafka error code.
    #[error("{what}: Kafka error code {code}")]
    Broker { what: String, code: i16 },
    /// The broker's answer is well-formed but not what was asked for.
    #[error("{what}")]
    Unexpected { what: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A request that kept failing with retriable errors (a stale route, a lost connection)
    /// until its [`crate::routing::Retry`] bound.
    #[error("{what}: gave up after {attempts} tries in {elapsed:.1?}: {last}")]
    Exhausted { what: String, attempts: u32, elapsed: std::time::Duration, last: Box<ClientError> },
    #[error(transparent)]
    Records(#[from] odradek_records::CompressionError),
}

impl ClientError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClientError {
        let what = what.into();
        move |source| ClientError::Io { what, source }
    }

    pub(crate) fn broker(what: impl Into<String>, code: i16) -> ClientError {
        ClientError::Broker { what: what.into(), code }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

impl ClientError {
    /// The Kafka error code behind this error, if a broker answered with one (also the last
    /// one of an [`ClientError::Exhausted`] retry).
    pub fn kafka_code(&self) -> Option<i16> {
        match self {
            ClientError::Broker { code, .. } => Some(*code),
            ClientError::Exhausted { last, .. } => last.kafka_code(),
            _ => None,
        }
    }

    /// Whether the broker could not be reached or the connection broke (also the last error
    /// of an [`ClientError::Exhausted`] retry).
    pub fn is_connection(&self) -> bool {
        match self {
            ClientError::Io { .. } => true,
            ClientError::Exhausted { last, .. } => last.is_connection(),
            _ => false,
        }
    }
}

/// Kafka's name of an error code, as its documentation spells it (`TOPIC_ALREADY_EXISTS`).
pub fn kafka_error_name(code: i16) -> String {
    use kafka_protocol::error::ResponseError;
    match ResponseError::try_from_code(code) {
        None => "NONE".to_owned(),
        Some(ResponseError::Unknown(c)) => format!("UNKNOWN_ERROR_CODE_{c}"),
        Some(e) => {
            let camel = e.to_string();
            let mut out = String::with_capacity(camel.len() + 8);
            for (i, ch) in camel.chars().enumerate() {
                if ch.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(ch.to_ascii_uppercase());
            }
            out
        }
    }
}
