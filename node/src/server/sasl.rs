//! SASL on a connection (KIP-43, KIP-152, KIP-368): SaslHandshake picks the mechanism,
//! SaslAuthenticate (or, after a v0 handshake, bare length-prefixed tokens) carries its
//! exchange. Until it succeeds only ApiVersions and SaslHandshake are answered; a failure is
//! answered at once with SASL_AUTHENTICATION_FAILED, logged once with the peer, and the
//! connection is closed [`FAILED_AUTHENTICATION_DELAY`] after the answer, as Kafka's
//! `connection.failed.authentication.delay.ms` does: a loop of wrong passwords is slowed without
//! using the shard, and the client reads the answer before it sees the connection end (a client
//! that reads both in one go, as kafka-python does, drops the answer and reports only the close).

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use odradek_net::error_code as ec;
use odradek_net::request::Request;
use tracing::info;

use super::session::{Principal, SaslState, Session};
use super::stream::Stream;
use crate::config::security::Mechanism;
use crate::security::sasl::{self as mech, Exchange, Outcome, Step};
use crate::shard::Shard;

/// Kafka's `connection.failed.authentication.delay.ms` default: how long a connection stays
/// open after a failed authentication's answer (or, after SaslHandshake v0, instead of one).
pub const FAILED_AUTHENTICATION_DELAY: Duration = Duration::from_millis(100);

/// Refuses (closing the connection) a request the session may not make yet: anything but
/// ApiVersions and the SASL APIs before authentication, or anything once the session expired
/// without a re-authentication.
pub fn admit(session: &Session, api: ApiKey) -> Result<(), String> {
    match (&session.sasl, api) {
        (SaslState::None, _) | (_, ApiKey::ApiVersions) => Ok(()),
        (_, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate) => Ok(()),
        (SaslState::Done { expires }, _) => match expires {
            Some(t) if Instant::now() >= *t => Err(format!(
                "{api:?} after the SASL session expired (connections.max.reauth.ms) without a re-authentication"
            )),
            _ => Ok(()),
        },
        (_, _) => Err(format!("{api:?} before SASL authentication completed")),
    }
}

/// Answers SaslHandshake or SaslAuthenticate; the second value, if set, closes the connection
/// with that reason, [`FAILED_AUTHENTICATION_DELAY`] after the answer is sent.
pub async fn handle(
    ctx: &Shard,
    session: &mut Session,
    request: Request,
) -> (ResponseKind, Option<String>) {
    let version = request.header.request_api_version;
    match request.body {
        RequestKind::SaslHandshake(req) => handshake(ctx, session, version, &req.mechanism),
        RequestKind::SaslAuthenticate(req) => authenticate(ctx, session, &req.auth_bytes).await,
        _ => unreachable_api(),
    }
}

fn unreachable_api() -> (ResponseKind, Option<String>) {
    (
        ResponseKind::SaslHandshake(
            SaslHandshakeResponse::default().with_error_code(ec::ILLEGAL_SASL_STATE.code()),
        ),
        Some("not a SASL request".into()),
    )
}

fn handshake(
    ctx: &Shard,
    session: &mut Session,
    version: i16,
    mechanism: &str,
) -> (ResponseKind, Option<String>) {
    let enabled = &ctx.security.config.sasl_mechanisms;
    let answer = |code: ec::ErrorCode| {
        ResponseKind::SaslHandshake(
            SaslHandshakeResponse::default().with_error_code(code.code()).with_mechanisms(
                enabled.iter().map(|m| StrBytes::from_static_str(m.name())).collect(),
            ),
        )
    };
    let illegal = |why: &str| (answer(ec::ILLEGAL_SASL_STATE), Some(why.to_owned()));
    if !session.listener.protocol.sasl() {
        return illegal("SaslHandshake on a listener without SASL");
    }
    match &session.sasl {
        SaslState::Authenticating(_) | SaslState::RawTokens(_) => {
            return illegal("SaslHandshake in the middle of an authentication");
        }
        SaslState::Done { .. } if version == 0 => {
            return illegal("re-authentication needs SaslHandshake v1");
        }
        _ => {}
    }
    let Some(m) = Mechanism::parse(mechanism).filter(|m| enabled.contains(m)) else {
        info!(peer = %session.peer, mechanism, "SASL mechanism not enabled; closing");
        return (
            answer(ec::UNSUPPORTED_SASL_MECHANISM),
            Some(format!("SASL mechanism {mechanism:?} is not enabled")),
        );
    };
    match Exchange::start(m, ctx.metadata.snapshot().security.clone()) {
        Ok(exchange) => {
            session.sasl = if version == 0 {
                SaslState::RawTokens(Box::new(exchange))
            } else {
                SaslState::Authenticating(Box::new(exchange))
            };
            (answer(ec::NONE), None)
        }
        Err(e) => illegal(&format!("cannot start SASL {}: {e}", m.name())),
    }
}

async fn authenticate(
    ctx: &Shard,
    session: &mut Session,
    token: &[u8],
) -> (ResponseKind, Option<String>) {
    let fail = |message: String| {
        ResponseKind::SaslAuthenticate(
            SaslAuthenticateResponse::default()
                .with_error_code(ec::SASL_AUTHENTICATION_FAILED.code())
                .with_error_message(Some(StrBytes::from_string(message))),
        )
    };
    let SaslState::Authenticating(mut exchange) = std::mem::take(&mut session.sasl) else {
        let answer = ResponseKind::SaslAuthenticate(
            SaslAuthenticateResponse::default()
                .with_error_code(ec::ILLEGAL_SASL_STATE.code())
                .with_error_message(Some(StrBytes::from_static_str(
                    "SaslAuthenticate without a SaslHandshake v1 first",
                ))),
        );
        return (answer, Some("SaslAuthenticate out of order".into()));
    };
    let mechanism = exchange.mechanism;
    match exchange.step(token) {
        Ok(Step::Continue(challenge)) => {
            session.sasl = SaslState::Authenticating(exchange);
            let answer =
                SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(challenge));
            (ResponseKind::SaslAuthenticate(answer), None)
        }
        Ok(Step::Done(last, outcome)) => match finish(ctx, session, mechanism, outcome).await {
            Ok(lifetime_ms) => {
                let answer = SaslAuthenticateResponse::default()
                    .with_auth_bytes(Bytes::from(last))
                    .with_session_lifetime_ms(lifetime_ms);
                (ResponseKind::SaslAuthenticate(answer), None)
            }
            Err(message) => (fail(message.clone()), Some(message)),
        },
        Err(e) => {
            crate::metrics::ShardStats::add(&ctx.stats.auth_failures, 1);
            info!(peer = %session.peer, mechanism = mechanism.name(), error = %e, "malformed SASL token; closing");
            let message = format!("malformed SASL {} token", mechanism.name());
            (fail(message.clone()), Some(message))
        }
    }
}

/// After SaslHandshake v0: one bare token in, one bare token out. `Err` ends the exchange: the
/// connection closes, [`FAILED_AUTHENTICATION_DELAY`] later.
pub async fn raw_token(
    ctx: &Shard,
    session: &mut Session,
    stream: &mut Stream,
    token: &[u8],
) -> Result<(), String> {
    let SaslState::RawTokens(mut exchange) = std::mem::take(&mut session.sasl) else {
        return Err("a SASL token outside an authentication".into());
    };
    let mechanism = exchange.mechanism;
    let reply = match exchange.step(token) {
        Ok(Step::Continue(challenge)) => {
            session.sasl = SaslState::RawTokens(exchange);
            challenge
        }
        Ok(Step::Done(last, outcome)) => {
            finish(ctx, session, mechanism, outcome).await?;
            last
        }
        Err(e) => {
            crate::metrics::ShardStats::add(&ctx.stats.auth_failures, 1);
            info!(peer = %session.peer, mechanism = mechanism.name(), error = %e, "malformed SASL token; closing");
            return Err(format!("malformed SASL {} token", mechanism.name()));
        }
    };
    let mut out = BytesMut::with_capacity(4 + reply.len());
    out.put_u32(reply.len() as u32);
    out.put_slice(&reply);
    stream.write_buf(&mut out).await
}

/// Settles an exchange: the session's principal and expiry on success (its lifetime in ms, 0
/// for none), the message for the client on failure.
async fn finish(
    ctx: &Shard,
    session: &mut Session,
    mechanism: Mechanism,
    outcome: Outcome,
) -> Result<i64, String> {
    let user = match outcome {
        Outcome::Authenticated(user) => Some(user),
        Outcome::Failed => None,
        Outcome::Plain { user, password } => {
            let verdict = match mech::check_plain_file(&ctx.security.plain_users, &user, &password)
            {
                Some(v) => v,
                None => {
                    let creds = ctx.metadata.snapshot().security.scram.get(&user).cloned();
                    match creds {
                        None => false,
                        // PBKDF2: thousands of HMACs, off the shard.
                        Some(creds) => ctx
                            .pool
                            .run(move || mech::check_plain_scram(&creds, &password))
                            .await
                            .unwrap_or(false),
                    }
                }
            };
            verdict.then_some(user)
        }
    };
    let refused = |why: &str| {
        crate::metrics::ShardStats::add(&ctx.stats.auth_failures, 1);
        info!(peer = %session.peer, mechanism = mechanism.name(), reason = why, "SASL authentication failed");
        format!(
            "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
            mechanism.name()
        )
    };
    let Some(user) = user else {
        return Err(refused("invalid credentials"));
    };
    let principal = Principal::user(&user);
    if session.principal != Principal::anonymous() && session.principal != principal {
        return Err(refused("a re-authentication named another principal"));
    }
    let lifetime_ms = ctx.security.config.connections_max_reauth_ms;
    let expires = (lifetime_ms > 0).then(|| Instant::now() + Duration::from_millis(lifetime_ms));
    session.superuser = ctx.security.is_super(principal.as_str());
    session.principal = principal;
    session.sasl = SaslState::Done { expires };
    tracing::debug!(peer = %session.peer, principal = %session.principal, mechanism = mechanism.name(), "authenticated");
    Ok(i64::try_from(lifetime_ms).unwrap_or(i64::MAX))
}
