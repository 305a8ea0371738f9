//! The SASL exchanges the node runs for SaslAuthenticate (`odradek_node::security::sasl`):
//! PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 over rsasl, with the node's own parsing of
//! librdkafka's legacy SCRAM client-final message, and the PLAIN verdict against a SCRAM
//! credential. The first byte chooses the mechanism; the rest is up to four client tokens
//! separated by 0xFE (a byte that never occurs in UTF-8 text). One user, `alice`, has SCRAM
//! credentials for both digests (one iteration, so that a PLAIN check stays cheap).
#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use odradek_node::config::security::Mechanism;
use odradek_node::security::SecurityView;
use odradek_node::security::sasl::{
    Exchange, Outcome, Step, check_plain_scram, credential_from_salted,
};

const TOKENS_MAX: usize = 4;

thread_local! {
    static VIEW: Arc<SecurityView> = {
        let mut creds = BTreeMap::new();
        for (name, salted) in [("SCRAM-SHA-256", vec![7u8; 32]), ("SCRAM-SHA-512", vec![7u8; 64])] {
            let c = credential_from_salted(name, 1, b"salt", &salted).expect("credential");
            creds.insert(name.to_owned(), c);
        }
        let mut scram = BTreeMap::new();
        scram.insert("alice".to_owned(), creds);
        Arc::new(SecurityView { acls: Default::default(), scram, quotas: Default::default() })
    };
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let mechanism = match selector % 3 {
        0 => Mechanism::Plain,
        1 => Mechanism::ScramSha256,
        _ => Mechanism::ScramSha512,
    };
    let view = VIEW.with(Arc::clone);
    let mut exchange = Exchange::start(mechanism, view.clone()).expect("start an exchange");
    for token in rest.split(|b| *b == 0xFE).take(TOKENS_MAX) {
        match exchange.step(token) {
            Ok(Step::Continue(_)) => {}
            Ok(Step::Done(_, outcome)) => {
                if let Outcome::Plain { user, password } = outcome
                    && let Some(creds) = view.scram.get(&user)
                {
                    let _ = check_plain_scram(creds, &password);
                }
                break;
            }
            Err(_) => break,
        }
    }
});
