//! The broker's life in the cluster: it registers with the active controller (its id, the
//! data directory's incarnation, its advertised endpoint and rack), then heartbeats every
//! `broker.heartbeat.interval.ms`; the first heartbeat unfences it, and the controller fences
//! it again when heartbeats stop for `broker.session.timeout.ms`. A refused heartbeat (a newer
//! registration, or the broker was unregistered) makes it register again. A registration
//! refused because another data directory holds the id stops the node: that is the lost-disk
//! case, which an operator resolves (README, "Replacing a broker whose disk was lost"). On a
//! graceful stop the heartbeats end first and then [`leave`] has the controller fence the
//! broker (a controlled shutdown), so that no heartbeat can unfence it again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use event_listener::Event;
use futures_util::future::{Either, select};
use odradek_controller::{Command, CommandError, CommandResult, ControllerError};
use tracing::{debug, info, warn};
use uuid::Uuid;

use super::quorum::QuorumStore;

/// Pause between registration attempts while there is no quorum.
const REGISTER_RETRY: Duration = Duration::from_millis(500);

/// What the broker tells the controller about itself.
#[derive(Debug, Clone)]
pub struct Registration {
    pub broker_id: i32,
    /// The data directory's `directory.id`.
    pub incarnation: Uuid,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    /// Every listener's advertised endpoint.
    pub listeners: Vec<odradek_controller::Endpoint>,
}

/// A stop signal that a late listener cannot miss.
#[derive(Debug, Default)]
pub struct Stop {
    stopped: AtomicBool,
    event: Event,
}

impl Stop {
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.event.notify(usize::MAX);
    }

    /// Sleeps `d`; `false` if stopped before or meanwhile.
    pub async fn sleep(&self, d: Duration) -> bool {
        let listener = self.event.listen();
        if self.stopped.load(Ordering::SeqCst) {
            return false;
        }
        matches!(select(std::pin::pin!(compio::time::sleep(d)), listener).await, Either::Left(_))
    }
}

/// Why the broker cannot be part of the cluster.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub CommandError);

/// Registers and heartbeats until `stop` is notified; `Err` if the controller refuses this
/// broker for good (the node should stop). `registered` is notified after every unfencing
/// heartbeat, for a start-up that waits until it is serving.
pub async fn run(
    store: Arc<QuorumStore>,
    me: Registration,
    heartbeat: Duration,
    stop: Arc<Stop>,
    registered: Arc<Event>,
) -> Result<(), Refused> {
    loop {
        let Some(epoch) = register(&store, &me, &stop).await? else { return Ok(()) };
        info!(broker_id = me.broker_id, broker_epoch = epoch, "broker registered");
        store.set_registered(epoch);
        let mut unfenced = false;
        loop {
            let beat = Command::BrokerHeartbeat { broker_id: me.broker_id, epoch };
            match store.propose_raw(beat).await {
                Ok(_) => {
                    if !unfenced {
                        unfenced = true;
                        info!(broker_id = me.broker_id, broker_epoch = epoch, "broker unfenced");
                    }
                    registered.notify(usize::MAX);
                }
                Err(ControllerError::Refused(e)) => {
                    warn!(broker_id = me.broker_id, error = %e, "heartbeat refused; registering again");
                    break;
                }
                Err(ControllerError::ShutDown) => return Ok(()),
                Err(e) => debug!(broker_id = me.broker_id, error = %e, "heartbeat not answered"),
            }
            if !stop.sleep(heartbeat).await {
                return Ok(());
            }
        }
    }
}

/// How long a stopping broker waits for the controller to fence it.
pub const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);

/// A controlled shutdown's first step (Kafka's `wantShutDown`): once the heartbeats have
/// stopped, asks the controller to fence this broker, so that clients and the other brokers
/// see it gone at once instead of after its session timeout. Bounded by [`LEAVE_TIMEOUT`]: a
/// node without a quorum still stops (its session timeout fences it later).
pub async fn leave(store: &QuorumStore, broker_id: i32) {
    let fence = store.propose_raw(Command::FenceBroker { broker_id });
    match compio::time::timeout(LEAVE_TIMEOUT, fence).await {
        Ok(Ok(_)) => info!(broker_id, "broker fenced for its shutdown"),
        Ok(Err(e)) => {
            warn!(broker_id, error = %e, "could not fence this broker before stopping; its session timeout will")
        }
        Err(_) => warn!(
            broker_id,
            timeout_ms = LEAVE_TIMEOUT.as_millis() as u64,
            "the controller did not fence this broker in time; its session timeout will"
        ),
    }
}

/// The new registration's epoch; `None` if stopped first.
async fn register(
    store: &QuorumStore,
    me: &Registration,
    stop: &Stop,
) -> Result<Option<u64>, Refused> {
    let mut attempts: u64 = 0;
    loop {
        let command = Command::RegisterBroker {
            broker_id: me.broker_id,
            incarnation: me.incarnation,
            host: me.host.clone(),
            port: me.port,
            rack: me.rack.clone(),
            listeners: me.listeners.clone(),
        };
        match store.propose_raw(command).await {
            Ok(CommandResult::BrokerRegistered { broker_epoch }) => return Ok(Some(broker_epoch)),
            Ok(other) => {
                warn!(broker_id = me.broker_id, reply = ?other, "odd reply to a registration")
            }
            Err(ControllerError::Refused(e)) => return Err(Refused(e)),
            Err(ControllerError::ShutDown) => return Ok(None),
            Err(e) => {
                attempts += 1;
                // Quietly at first: a cluster being formed has no quorum for a while.
                if attempts.is_multiple_of(20) {
                    warn!(broker_id = me.broker_id, attempts, error = %e, "still registering with the controller quorum");
                } else {
                    debug!(broker_id = me.broker_id, error = %e, "registration not answered");
                }
            }
        }
        if !stop.sleep(REGISTER_RETRY).await {
            return Ok(None);
        }
    }
}
