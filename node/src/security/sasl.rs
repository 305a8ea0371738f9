//! SASL on the SASL_PLAINTEXT and SASL_SSL listeners: the mechanisms are rsasl's (PLAIN,
//! SCRAM-SHA-256, SCRAM-SHA-512); this module supplies what they ask for — a user's stored
//! SCRAM credential from the cluster metadata, and the verdict on a PLAIN password (from the
//! `--sasl-plain-users` file, or checked against the user's SCRAM credential).
//!
//! A PLAIN password checked against a SCRAM credential costs a PBKDF2 derivation (thousands
//! of HMACs): it runs on the blocking pool, never on a shard thread, so that a loop of wrong
//! passwords cannot slow the shard's other clients.

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use odradek_controller::ScramCredential;
use rsasl::callback::{Context, Request, SessionCallback, SessionData};
use rsasl::mechanisms::scram::properties::ScramStoredPassword;
use rsasl::prelude::{Mechname, Registry, SASLConfig, SASLServer, Session, SessionError};
use rsasl::property::{AuthId, AuthzId, Password};
use rsasl::validate::{Validate, Validation, ValidationError};
use sha2::Digest;

use super::SecurityView;
use crate::config::security::Mechanism;

/// Longest user name or password in the users file.
const FIELD_BYTES_MAX: usize = 1024;
/// Most users in the users file.
const USERS_MAX: usize = 100_000;

/// PLAIN's users from `--sasl-plain-users`: `name:password` lines.
#[derive(Debug, Default)]
pub struct PlainUsers(HashMap<String, String>);

impl PlainUsers {
    /// Reads the file (at start-up, on the main thread).
    pub fn load(path: Option<&Path>) -> Result<Self, String> {
        let Some(path) = path else { return Ok(Self::default()) };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--sasl-plain-users {}: {e}", path.display()))?;
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, password) = line.split_once(':').ok_or_else(|| {
                format!("--sasl-plain-users {} line {}: not name:password", path.display(), i + 1)
            })?;
            if name.is_empty() || name.len() > FIELD_BYTES_MAX || password.len() > FIELD_BYTES_MAX {
                return Err(format!(
                    "--sasl-plain-users {} line {}: empty name or a field over {FIELD_BYTES_MAX} bytes",
                    path.display(),
                    i + 1
                ));
            }
            users.insert(name.to_owned(), password.to_owned());
            if users.len() > USERS_MAX {
                return Err(format!("--sasl-plain-users: more than {USERS_MAX} users"));
            }
        }
        Ok(Self(users))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The password of `user`, if the file has it (a broker's own login between brokers).
    pub fn password(&self, user: &str) -> Option<&str> {
        self.0.get(user).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Compares without an early exit, so the time taken does not tell how much matched.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a finished exchange yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// SCRAM proved the user (the mechanism checked the proof against the stored key).
    Authenticated(String),
    /// PLAIN's credentials, to be checked ([`check_plain`]).
    Plain { user: String, password: Vec<u8> },
    /// The exchange failed (wrong proof, bad authzid).
    Failed,
}

struct OutcomeOf;
impl Validation for OutcomeOf {
    type Value = Outcome;
}

struct Callback {
    view: Arc<SecurityView>,
    mechanism: Mechanism,
}

impl SessionCallback for Callback {
    fn callback(
        &self,
        _session: &SessionData,
        context: &Context<'_>,
        request: &mut Request<'_>,
    ) -> Result<(), SessionError> {
        let Some(user) = context.get_ref::<AuthId>() else { return Ok(()) };
        if let Some(c) = self.view.scram.get(user).and_then(|m| m.get(self.mechanism.name())) {
            request.satisfy::<ScramStoredPassword<'static>>(&ScramStoredPassword::new(
                c.iterations,
                &c.salt,
                &c.stored_key,
                &c.server_key,
            ))?;
        }
        Ok(())
    }

    fn validate(
        &self,
        _session: &SessionData,
        context: &Context<'_>,
        validate: &mut Validate<'_>,
    ) -> Result<(), ValidationError> {
        let user = context.get_ref::<AuthId>().unwrap_or("").to_owned();
        let authzid = context.get_ref::<AuthzId>().unwrap_or("");
        let outcome = if user.is_empty() || !(authzid.is_empty() || authzid == user) {
            Outcome::Failed
        } else if self.mechanism == Mechanism::Plain {
            let password = context.get_ref::<Password>().unwrap_or(&[]).to_vec();
            Outcome::Plain { user, password }
        } else {
            Outcome::Authenticated(user)
        };
        validate.with::<OutcomeOf, _>(|| Ok(outcome))?;
        Ok(())
    }
}

static PLAIN: &[rsasl::prelude::Mechanism] = &[rsasl::mechanisms::plain::PLAIN];
static SCRAM_SHA256: &[rsasl::prelude::Mechanism] = &[rsasl::mechanisms::scram::SCRAM_SHA256];
static SCRAM_SHA512: &[rsasl::prelude::Mechanism] = &[rsasl::mechanisms::scram::SCRAM_SHA512];

/// One authentication exchange on a connection.
pub struct Exchange {
    pub mechanism: Mechanism,
    session: Session<OutcomeOf>,
    view: Arc<SecurityView>,
    /// SCRAM's first messages, kept for [`legacy_client_final`].
    client_first: Option<Vec<u8>>,
    server_first: Option<Vec<u8>>,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange").field("mechanism", &self.mechanism).finish_non_exhaustive()
    }
}

/// A step's result.
#[derive(Debug)]
pub enum Step {
    /// Send this challenge and wait for the client's next token.
    Continue(Vec<u8>),
    /// The exchange is over: the last server message (possibly empty) and the outcome.
    Done(Vec<u8>, Outcome),
}

impl Exchange {
    /// Starts `mechanism` with the credentials of `view`.
    pub fn start(mechanism: Mechanism, view: Arc<SecurityView>) -> Result<Self, String> {
        let mechanisms = match mechanism {
            Mechanism::Plain => PLAIN,
            Mechanism::ScramSha256 => SCRAM_SHA256,
            Mechanism::ScramSha512 => SCRAM_SHA512,
        };
        let config = SASLConfig::builder()
            .with_registry(Registry::with_mechanisms(mechanisms))
            .with_callback(Callback { view: view.clone(), mechanism })
            .map_err(|e| e.to_string())?;
        let name = Mechname::parse(mechanism.name().as_bytes()).map_err(|e| e.to_string())?;
        let session = SASLServer::<OutcomeOf>::new(config)
            .start_suggested(name)
            .map_err(|e| e.to_string())?;
        Ok(Self { mechanism, session, view, client_first: None, server_first: None })
    }

    /// Feeds the client's token. `Err` is a malformed token (the exchange is over).
    pub fn step(&mut self, token: &[u8]) -> Result<Step, String> {
        let scram = self.mechanism != Mechanism::Plain;
        if scram && !scram_parts_sliceable(token, self.client_first.is_none()) {
            return Err("malformed SCRAM message: an attribute shorter than `x=`".to_owned());
        }
        if scram && self.client_first.is_none() {
            self.client_first = Some(token.to_vec());
        }
        let mut out = Cursor::new(Vec::new());
        let stepped = self.session.step(Some(token), &mut out);
        let out = out.into_inner();
        let done = match stepped {
            Ok(state) if state.is_running() => {
                if scram && self.server_first.is_none() {
                    self.server_first = Some(out.clone());
                }
                return Ok(Step::Continue(out));
            }
            Ok(_) => Ok(Step::Done(out, self.session.validation().unwrap_or(Outcome::Failed))),
            Err(e) => Err(e.to_string()),
        };
        // A SCRAM final message rsasl refused may be librdkafka's (before 2.x) longer nonce,
        // which Kafka accepts.
        if scram
            && !matches!(done, Ok(Step::Done(_, Outcome::Authenticated(_))))
            && let (Some(cf), Some(sf)) = (&self.client_first, &self.server_first)
            && let Some(step) = legacy_client_final(self.mechanism, &self.view, cf, sf, token)
        {
            return Ok(step);
        }
        done
    }
}

/// Whether rsasl (2.3.1) can parse a SCRAM client message without panicking. Its parsers take
/// `&part[0..2]` of every attribute and `&authzid[2..]` of a non-empty authzid without checking
/// their length, so a client-first `n,,` or `y,x,n=u` or a client-final `c=biws,r` panicked
/// the shard thread (found by the `sasl` fuzz target). A well-formed message never has an
/// attribute shorter than `x=`, so refusing such a message changes nothing for real clients.
/// `first`: the client-first message (gs2 header: channel-binding flag and authzid first).
fn scram_parts_sliceable(token: &[u8], first: bool) -> bool {
    let mut parts = token.split(|b| *b == b',');
    if first {
        // The channel-binding flag is checked by rsasl with its length.
        let _flag = parts.next();
        if parts.next().is_some_and(|authzid| authzid.len() == 1) {
            return false;
        }
    }
    parts.all(|attribute| attribute.len() >= 2)
}

/// The value of attribute `name` in a SCRAM message (`r=...,s=...`).
fn attr(message: &str, name: char) -> Option<&str> {
    message.split(',').find_map(|a| a.strip_prefix(name)?.strip_prefix('='))
}

/// librdkafka before 2.x (kcat 1.7.1 has 2.0.2) writes, in its client-final message, its own
/// nonce followed by the *whole* server nonce (which already starts with its nonce), and
/// signs that. Kafka's server accepts it (it only checks that the nonce ends with the
/// server's: `ScramSaslServer`), rsasl does not. This checks such a message the way Kafka does:
/// the proof over the AuthMessage as the client wrote it, against the stored credential.
/// `None` unless the message has exactly that shape; otherwise the verdict, with the
/// server-final message (`v=ServerSignature`, or `e=invalid-proof`).
fn legacy_client_final(
    mechanism: Mechanism,
    view: &SecurityView,
    client_first: &[u8],
    server_first: &[u8],
    client_final: &[u8],
) -> Option<Step> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let (client_first, server_first, client_final) = (
        std::str::from_utf8(client_first).ok()?,
        std::str::from_utf8(server_first).ok()?,
        std::str::from_utf8(client_final).ok()?,
    );
    // client-first = gs2-header ("n,," or "n,a=...,") client-first-bare.
    let mut header = client_first.splitn(3, ',');
    let (_, _, bare) = (header.next()?, header.next()?, header.next()?);
    let full_nonce = attr(server_first, 'r')?;
    let client_nonce = attr(bare, 'r')?;
    let sent_nonce = attr(client_final, 'r')?;
    if sent_nonce != format!("{client_nonce}{full_nonce}") {
        return None;
    }
    let (without_proof, proof) = client_final.rsplit_once(",p=")?;
    let proof = b64.decode(proof).ok()?;
    let user = attr(bare, 'n')?.replace("=2C", ",").replace("=3D", "=");
    let cred = view.scram.get(&user)?.get(mechanism.name())?;
    let auth_message = format!("{bare},{server_first},{without_proof}");
    let verified = match mechanism {
        Mechanism::ScramSha256 => verify::<sha2::Sha256>(cred, &auth_message, &proof),
        Mechanism::ScramSha512 => verify::<sha2::Sha512>(cred, &auth_message, &proof),
        Mechanism::Plain => return None,
    };
    Some(match verified {
        Some(server_signature) => Step::Done(
            format!("v={}", b64.encode(server_signature)).into_bytes(),
            Outcome::Authenticated(user),
        ),
        None => Step::Done(b"e=invalid-proof".to_vec(), Outcome::Failed),
    })
}

/// RFC 5802's check of a client proof: ClientKey = proof XOR HMAC(StoredKey, AuthMessage) must
/// hash to StoredKey; then the ServerSignature, HMAC(ServerKey, AuthMessage).
fn verify<D>(cred: &ScramCredential, auth_message: &str, proof: &[u8]) -> Option<Vec<u8>>
where
    D: Digest + digest_traits::BlockSizeUser + Clone,
{
    use hmac::{Mac, SimpleHmac};
    let mut mac = <SimpleHmac<D> as Mac>::new_from_slice(&cred.stored_key).ok()?;
    mac.update(auth_message.as_bytes());
    let client_signature = mac.finalize().into_bytes();
    if proof.len() != client_signature.len() {
        return None;
    }
    let client_key: Vec<u8> =
        proof.iter().zip(client_signature.iter()).map(|(p, s)| p ^ s).collect();
    if !same_bytes(&D::digest(&client_key), &cred.stored_key) {
        return None;
    }
    let mut mac = <SimpleHmac<D> as Mac>::new_from_slice(&cred.server_key).ok()?;
    mac.update(auth_message.as_bytes());
    Some(mac.finalize().into_bytes().to_vec())
}

/// How a replica fetcher logs in on a SASL inter-broker listener: the client side of the
/// mechanism (rsasl's), over SaslHandshake v1 and SaslAuthenticate.
pub struct Login {
    pub mechanism: Mechanism,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("mechanism", &self.mechanism)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Most SaslAuthenticate round trips a login takes (SCRAM takes two).
const LOGIN_STEPS_MAX: usize = 4;

impl Login {
    /// Authenticates `conn` (already past ApiVersions), each call bounded by `limit`.
    pub async fn log_in(
        &self,
        conn: &mut odradek_client::compio::AsyncConn,
        limit: std::time::Duration,
    ) -> Result<(), String> {
        use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
        use kafka_protocol::protocol::StrBytes;
        let name = self.mechanism.name();
        let handshake =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(name));
        let answer = conn.call_at(1, &handshake, limit).await.map_err(|e| e.to_string())?;
        if answer.error_code != 0 {
            return Err(format!("SaslHandshake {name}: error {}", answer.error_code));
        }
        let config = SASLConfig::with_credentials(None, self.user.clone(), self.password.clone())
            .map_err(|e| e.to_string())?;
        let mechname = Mechname::parse(name.as_bytes()).map_err(|e| e.to_string())?;
        let mut session = rsasl::prelude::SASLClient::new(config)
            .start_suggested(&[mechname])
            .map_err(|e| e.to_string())?;
        let mut input: Option<Vec<u8>> = None;
        for _ in 0..LOGIN_STEPS_MAX {
            let mut out = Cursor::new(Vec::new());
            let state = session.step(input.as_deref(), &mut out).map_err(|e| e.to_string())?;
            if state.has_sent_message() {
                let req = SaslAuthenticateRequest::default()
                    .with_auth_bytes(bytes::Bytes::from(out.into_inner()));
                let answer = conn.call(&req, limit).await.map_err(|e| e.to_string())?;
                if answer.error_code != 0 {
                    return Err(format!(
                        "SaslAuthenticate {name}: error {}: {}",
                        answer.error_code,
                        answer.error_message.as_deref().unwrap_or("")
                    ));
                }
                input = Some(answer.auth_bytes.to_vec());
            }
            if state.is_finished() {
                return Ok(());
            }
        }
        Err(format!("{name} took more than {LOGIN_STEPS_MAX} steps"))
    }
}

/// PLAIN against the users file: `None` when the file does not name the user.
pub fn check_plain_file(users: &PlainUsers, user: &str, password: &[u8]) -> Option<bool> {
    users.0.get(user).map(|expected| same_bytes(expected.as_bytes(), password))
}

/// PLAIN against a user's SCRAM credentials (mechanism → credential), derived as the client
/// would: call it off the shard threads.
pub fn check_plain_scram(creds: &BTreeMap<String, ScramCredential>, password: &[u8]) -> bool {
    creds.iter().any(|(mechanism, c)| match mechanism.as_str() {
        "SCRAM-SHA-256" => same_bytes(&stored_key::<sha2::Sha256>(password, c), &c.stored_key),
        "SCRAM-SHA-512" => same_bytes(&stored_key::<sha2::Sha512>(password, c), &c.stored_key),
        _ => false,
    })
}

fn stored_key<D>(password: &[u8], c: &ScramCredential) -> Vec<u8>
where
    D: Digest + digest_traits::BlockSizeUser + digest_traits::FixedOutputReset + Clone + Sync,
{
    let mut salted = digest_traits::Output::<D>::default();
    rsasl::mechanisms::scram::tools::hash_password::<D>(
        password,
        c.iterations,
        &c.salt,
        &mut salted,
    );
    let (client_key, _) = rsasl::mechanisms::scram::tools::derive_keys::<D>(salted.as_slice());
    D::digest(client_key).to_vec()
}

/// The SCRAM credential Kafka's AlterUserScramCredentials asks for: the client sends the salt
/// and the salted password; the broker keeps StoredKey and ServerKey (RFC 5802).
pub fn credential_from_salted(
    mechanism: &str,
    iterations: u32,
    salt: &[u8],
    salted_password: &[u8],
) -> Option<ScramCredential> {
    fn keys<D>(salted: &[u8]) -> (Vec<u8>, Vec<u8>)
    where
        D: Digest + digest_traits::BlockSizeUser + digest_traits::FixedOutputReset + Clone + Sync,
    {
        let (client_key, server_key) = rsasl::mechanisms::scram::tools::derive_keys::<D>(salted);
        (D::digest(client_key).to_vec(), server_key.to_vec())
    }
    let (stored_key, server_key) = match mechanism {
        "SCRAM-SHA-256" => keys::<sha2::Sha256>(salted_password),
        "SCRAM-SHA-512" => keys::<sha2::Sha512>(salted_password),
        _ => return None,
    };
    Some(ScramCredential { iterations, salt: salt.to_vec(), stored_key, server_key })
}

/// The digest traits rsasl's SCRAM tools are generic over.
mod digest_traits {
    pub use sha2::digest::core_api::BlockSizeUser;
    pub use sha2::digest::{FixedOutputReset, Output};
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SCRAM messages with an attribute shorter than `x=` (the `sasl` fuzz target's findings and
    /// their neighbours) end the exchange with an error instead of panicking inside rsasl;
    /// well-formed ones still get a server-first message.
    #[test]
    fn scram_messages_with_short_attributes_are_refused_not_panicked_on() {
        let cred = credential_from_salted("SCRAM-SHA-256", 4096, b"salt", &[7u8; 32])
            .expect("known mechanism");
        let mut view = SecurityView::default();
        view.scram.insert("bob".into(), BTreeMap::from([("SCRAM-SHA-256".into(), cred)]));
        let view = Arc::new(view);
        // The fuzz target's first crash (`y,\xCAy,`), then each sliced part too short.
        let firsts: [&[u8]; 7] =
            [b"y,\xCAy,", b"n,,", b"n,,n", b"n,,n=bob,r", b"n,a,n=bob,r=x", b"y,,,", b"n,,n=bob,"];
        for first in firsts {
            let mut ex = Exchange::start(Mechanism::ScramSha256, view.clone()).expect("starts");
            assert!(ex.step(first).is_err(), "{:?} refused", String::from_utf8_lossy(first));
        }
        let finals: [&[u8]; 5] = [b"", b"c", b"c=biws,r", b"c=biws,r=x,", b"c=biws,r=x,p"];
        for last in finals {
            let mut ex = Exchange::start(Mechanism::ScramSha256, view.clone()).expect("starts");
            let first = ex.step(b"n,,n=bob,r=cnonce");
            assert!(matches!(first, Ok(Step::Continue(_))), "a good client-first continues");
            assert!(
                !matches!(ex.step(last), Ok(Step::Done(_, Outcome::Authenticated(_)))),
                "{:?} does not authenticate",
                String::from_utf8_lossy(last)
            );
        }
    }

    /// A client-final message as librdkafka 2.0 writes it (its nonce, then the whole server
    /// nonce), signed over that message, is accepted as Kafka accepts it; a wrong password
    /// or a differently shaped nonce is not.
    #[test]
    fn librdkafka_2_0s_scram_nonce_is_accepted_as_kafka_does() {
        use base64::Engine;
        use hmac::{Mac, SimpleHmac};
        let b64 = base64::engine::general_purpose::STANDARD;
        let (salt, iterations) = (b"0123456789abcdef".to_vec(), 4096);
        let salted_of = |password: &[u8]| {
            let mut salted = digest_traits::Output::<sha2::Sha512>::default();
            rsasl::mechanisms::scram::tools::hash_password::<sha2::Sha512>(
                password,
                iterations,
                &salt,
                &mut salted,
            );
            salted
        };
        let cred = credential_from_salted("SCRAM-SHA-512", iterations, &salt, &salted_of(b"pw"))
            .expect("known mechanism");
        let mut view = SecurityView::default();
        view.scram.insert("bob".into(), BTreeMap::from([("SCRAM-SHA-512".into(), cred)]));
        let view = Arc::new(view);

        let run = |password: &[u8], doubled: bool| -> Outcome {
            let mut ex = Exchange::start(Mechanism::ScramSha512, view.clone()).expect("starts");
            let client_first = "n,,n=bob,r=cnonce123";
            let Ok(Step::Continue(server_first)) = ex.step(client_first.as_bytes()) else {
                panic!("no server-first")
            };
            let server_first = String::from_utf8(server_first).expect("utf8");
            let full = attr(&server_first, 'r').expect("nonce").to_owned();
            let nonce = if doubled { format!("cnonce123{full}") } else { full };
            let without_proof = format!("c=biws,r={nonce}");
            let auth = format!("n=bob,r=cnonce123,{server_first},{without_proof}");
            // The client's side, as RFC 5802 (and librdkafka) compute it.
            let salted = salted_of(password);
            let mut mac = <SimpleHmac<sha2::Sha512> as Mac>::new_from_slice(&salted).expect("key");
            mac.update(b"Client Key");
            let client_key = mac.finalize().into_bytes();
            let stored = <sha2::Sha512 as Digest>::digest(client_key);
            let mut mac = <SimpleHmac<sha2::Sha512> as Mac>::new_from_slice(&stored).expect("key");
            mac.update(auth.as_bytes());
            let signature = mac.finalize().into_bytes();
            let proof: Vec<u8> =
                client_key.iter().zip(signature.iter()).map(|(a, b)| a ^ b).collect();
            let client_final = format!("{without_proof},p={}", b64.encode(proof));
            match ex.step(client_final.as_bytes()) {
                Ok(Step::Done(_, outcome)) => outcome,
                Ok(Step::Continue(_)) => panic!("still running"),
                Err(_) => Outcome::Failed,
            }
        };
        assert_eq!(run(b"pw", false), Outcome::Authenticated("bob".into()), "RFC 5802");
        assert_eq!(run(b"pw", true), Outcome::Authenticated("bob".into()), "librdkafka 2.0");
        assert_eq!(run(b"wrong", true), Outcome::Failed);
        assert_eq!(run(b"wrong", false), Outcome::Failed);
    }

    #[test]
    fn plain_checks_the_file_then_scram_credentials() {
        let mut users = PlainUsers::default();
        users.0.insert("admin".into(), "s3cret".into());
        assert_eq!(check_plain_file(&users, "admin", b"s3cret"), Some(true));
        assert_eq!(check_plain_file(&users, "admin", b"s3cret!"), Some(false));
        assert_eq!(check_plain_file(&users, "bob", b"pw"), None);
        // A SCRAM credential made the way Kafka's admin client makes one.
        let salt = b"0123456789abcdef";
        let mut salted = digest_traits::Output::<sha2::Sha512>::default();
        rsasl::mechanisms::scram::tools::hash_password::<sha2::Sha512>(
            b"pw",
            4096,
            salt,
            &mut salted,
        );
        let cred = credential_from_salted("SCRAM-SHA-512", 4096, salt, &salted).expect("known");
        let scram = BTreeMap::from([("SCRAM-SHA-512".to_owned(), cred)]);
        assert!(check_plain_scram(&scram, b"pw"));
        assert!(!check_plain_scram(&scram, b"wrong"));
    }
}
