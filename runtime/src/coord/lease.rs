//! A lease lock with fencing tokens.
//!
//! One lock service process ([`Service`], supervised: [`child_spec`]) grants the lock to one
//! holder at a time for a lease duration; the holder renews or releases it. Every grant
//! carries a token larger than every earlier one, including across the service's restarts
//! (the counter is in the caller-owned [`LeaseStore`], like consensus's stable storage). A
//! holder that stops renewing loses the lock when its lease runs out; a holder that dies
//! (a `Down` other than `NoConnection`) loses it at once.
//!
//! **Clocks.** A lease is measured on the lock service's clock: it expires `duration` after
//! the service granted or renewed it. The holder measures conservatively on its own clock,
//! from when it *sent* the request ([`Lease::is_valid`]), so with clocks that run at the same
//! rate the holder stops believing before the service expires it. Per-node clock skew (an
//! offset) does not matter, only rates do: a holder whose clock runs slow (or a holder paused
//! after its check, or a write delayed in the network) can act after its lease ended. That is
//! what the token is for: a [`FencedResource`] rejects any token older than the newest it has
//! seen, so a stale holder's write is refused whatever the clocks did.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::rt::{Duration, Instant};
use crate::supervisor::ChildSpec;
use crate::{
    event, start_actor, Actor, CallError, Ctx, Event, ExitReason, Flow, Message, Node, Pid, Ref,
    StartError,
};

const INIT_TIMEOUT: Duration = Duration::from_secs(1);

/// The lock service's state that must survive its restarts: the last token granted and the
/// holder (so a restarted service neither reuses a token nor grants a lease still running).
#[derive(Debug, Clone, Default)]
pub struct LeaseState {
    pub last_token: u64,
    pub holder: Option<Holder>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: Pid,
    pub token: u64,
    /// On the service's clock.
    pub expires: Instant,
}

/// Shared by the service's incarnations; the caller decides whether it outlives the node.
#[derive(Clone, Default)]
pub struct LeaseStore(Arc<Mutex<LeaseState>>);

impl LeaseStore {
    pub fn new() -> LeaseStore {
        LeaseStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, LeaseState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn snapshot(&self) -> LeaseState {
        self.lock().clone()
    }
}

/// Requests to the lock service (calls).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Replies `Result<Grant, LeaseError>`.
    Acquire { lease: Duration },
    /// Replies `Result<Grant, LeaseError>`.
    Renew { token: u64, lease: Duration },
    /// Replies `Result<(), LeaseError>`.
    Release { token: u64 },
}

/// A grant as the service made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub token: u64,
    /// The lease granted (the request's, capped at the service's maximum).
    pub lease: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum LeaseError {
    /// Someone else holds an unexpired lease.
    #[error("held by {holder} (token {token}) for another {remaining:?}")]
    Held {
        holder: Pid,
        token: u64,
        remaining: Duration,
    },
    /// The caller already holds the lock (token given): renew it instead.
    #[error("already held by the caller with token {token}")]
    AlreadyHeld { token: u64 },
    /// The lease of `token` is over (expired, released, or another holder has it).
    #[error("the lease of token {token} is lost")]
    Lost { token: u64 },
    #[error("a lease of zero is no lease")]
    ZeroLease,
    /// The call failed (never sent by the service; client side only).
    #[error("lock service unreachable: {0}")]
    #[serde(skip)]
    Unreachable(CallError),
}

/// The holder's side of a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub token: u64,
    /// On the holder's clock: when it sent the request plus the lease granted.
    pub valid_until: Instant,
}

impl Lease {
    /// Whether the holder may still believe it holds the lock (see the module doc: a belief
    /// to act on only through a [`FencedResource`]).
    pub fn is_valid(&self) -> bool {
        Instant::now() < self.valid_until
    }
}

/// The lock service's configuration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The service's process name.
    pub name: String,
    /// Leases longer than this are cut to it.
    pub max_lease: Duration,
}

impl Config {
    pub fn new(name: &str) -> Config {
        Config {
            name: name.to_string(),
            max_lease: Duration::from_secs(60),
        }
    }

    pub fn max_lease(mut self, max: Duration) -> Self {
        self.max_lease = max;
        self
    }
}

/// The lock service (an [`Actor`]).
pub struct Service {
    config: Config,
    store: LeaseStore,
    /// The monitor on the current holder.
    watching: Option<(Ref, Pid)>,
}

impl Service {
    pub fn new(config: Config, store: LeaseStore) -> Service {
        Service {
            config,
            store,
            watching: None,
        }
    }

    fn grant(
        &mut self,
        ctx: &Ctx<Request>,
        from: Pid,
        lease: Duration,
    ) -> Result<Grant, LeaseError> {
        if lease.is_zero() {
            return Err(LeaseError::ZeroLease);
        }
        let lease = lease.min(self.config.max_lease);
        let now = Instant::now();
        let mut st = self.store.lock();
        if let Some(h) = st.holder.as_ref().filter(|h| h.expires > now) {
            return Err(if h.pid == from {
                LeaseError::AlreadyHeld { token: h.token }
            } else {
                LeaseError::Held {
                    holder: h.pid,
                    token: h.token,
                    remaining: h.expires - now,
                }
            });
        }
        st.last_token += 1;
        let token = st.last_token;
        st.holder = Some(Holder {
            pid: from,
            token,
            expires: now + lease,
        });
        drop(st);
        let me = ctx.pid();
        event!("lease-grant", node = me.node, token = token, holder = %from, lease_ms = lease.as_millis() as u64);
        self.watch(ctx, from);
        Ok(Grant { token, lease })
    }

    fn watch(&mut self, ctx: &Ctx<Request>, pid: Pid) {
        if self.watching.is_some_and(|(_, p)| p == pid) {
            return;
        }
        if let Some((r, _)) = self.watching.take() {
            ctx.demonitor(r, true);
        }
        self.watching = Some((ctx.monitor(pid), pid));
    }

    fn renew(&mut self, from: Pid, token: u64, lease: Duration) -> Result<Grant, LeaseError> {
        if lease.is_zero() {
            return Err(LeaseError::ZeroLease);
        }
        let lease = lease.min(self.config.max_lease);
        let now = Instant::now();
        let mut st = self.store.lock();
        match st.holder.as_mut() {
            Some(h) if h.token == token && h.pid == from && h.expires > now => {
                h.expires = now + lease;
                Ok(Grant { token, lease })
            }
            _ => Err(LeaseError::Lost { token }),
        }
    }

    fn release(&mut self, ctx: &Ctx<Request>, from: Pid, token: u64) -> Result<(), LeaseError> {
        let mut st = self.store.lock();
        match &st.holder {
            Some(h) if h.token == token && h.pid == from => {
                st.holder = None;
                drop(st);
                let me = ctx.pid();
                event!("lease-release", node = me.node, token = token, holder = %from);
                if let Some((r, _)) = self.watching.take() {
                    ctx.demonitor(r, true);
                }
                Ok(())
            }
            _ => Err(LeaseError::Lost { token }),
        }
    }
}

impl Actor for Service {
    type Msg = Request;

    async fn init(&mut self, ctx: &mut Ctx<Request>) -> Result<(), ExitReason> {
        // A holder from before a restart is watched again: its death still frees the lock.
        let holder = self.store.lock().holder.clone();
        if let Some(h) = holder {
            self.watch(ctx, h.pid);
        }
        Ok(())
    }

    async fn handle(&mut self, ctx: &mut Ctx<Request>, event: Event<Request>) -> Flow {
        match event {
            Event::Call { from, msg, reply } => match msg {
                Request::Acquire { lease } => reply.reply(self.grant(ctx, from, lease)),
                Request::Renew { token, lease } => reply.reply(self.renew(from, token, lease)),
                Request::Release { token } => reply.reply(self.release(ctx, from, token)),
            },
            Event::Down {
                reference, reason, ..
            } if self.watching.is_some_and(|(r, _)| r == reference) => {
                self.watching = None;
                // Cut off is not dead: a partitioned holder keeps its lease until it runs out.
                if reason != ExitReason::NoConnection {
                    let mut st = self.store.lock();
                    if let Some(h) = st.holder.take() {
                        drop(st);
                        let me = ctx.pid();
                        let why = reason.to_string();
                        event!("lease-expire", node = me.node, token = h.token, holder = %h.pid, reason = why.as_str());
                    }
                }
            }
            Event::Msg { from, .. } => {
                let me = ctx.pid();
                event!("drop", node = me.node, from = %from, to = %me, reason = "lease-not-a-call");
            }
            Event::Down { .. } | Event::Timer { .. } | Event::Exit { .. } => {}
        }
        Flow::Continue
    }
}

/// Starts the lock service on `node`, linked to `parent`.
pub async fn start(
    node: &Node,
    parent: Option<Pid>,
    config: Config,
    store: LeaseStore,
) -> Result<Pid, StartError> {
    let name = config.name.clone();
    start_actor(
        node,
        &name,
        parent,
        INIT_TIMEOUT,
        Service::new(config, store),
    )
    .await
}

/// The lock service as a supervisor's child; restarts reuse `store`.
pub fn child_spec(config: Config, store: LeaseStore) -> ChildSpec {
    let id = config.name.clone();
    ChildSpec::new(&id, move |node, sup| {
        let (config, store) = (config.clone(), store.clone());
        async move { start(&node, Some(sup), config, store).await }
    })
}

/// Asks `service` for the lock for `lease`.
pub async fn acquire<M: Message>(
    ctx: &Ctx<M>,
    service: Pid,
    lease: Duration,
    timeout: Duration,
) -> Result<Lease, LeaseError> {
    let sent = Instant::now();
    let answer: Result<Grant, LeaseError> = ctx
        .call(service, Request::Acquire { lease }, timeout)
        .await
        .map_err(LeaseError::Unreachable)?;
    let grant = answer?;
    Ok(Lease {
        token: grant.token,
        valid_until: sent + grant.lease,
    })
}

/// Extends `lease`; on success the returned lease replaces it.
pub async fn renew<M: Message>(
    ctx: &Ctx<M>,
    service: Pid,
    lease: &Lease,
    duration: Duration,
    timeout: Duration,
) -> Result<Lease, LeaseError> {
    let sent = Instant::now();
    let request = Request::Renew {
        token: lease.token,
        lease: duration,
    };
    let answer: Result<Grant, LeaseError> = ctx
        .call(service, request, timeout)
        .await
        .map_err(LeaseError::Unreachable)?;
    let grant = answer?;
    Ok(Lease {
        token: grant.token,
        valid_until: sent + grant.lease,
    })
}

/// Gives the lock back.
pub async fn release<M: Message>(
    ctx: &Ctx<M>,
    service: Pid,
    lease: Lease,
    timeout: Duration,
) -> Result<(), LeaseError> {
    let answer: Result<(), LeaseError> = ctx
        .call(service, Request::Release { token: lease.token }, timeout)
        .await
        .map_err(LeaseError::Unreachable)?;
    answer
}

/// A resource guarded by fencing tokens: it accepts a write only with a token at least as
/// new as every token it accepted before, so once a newer holder wrote, an older one cannot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FencedResource<T> {
    newest: u64,
    value: T,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("token {token} is older than {newest}, already used")]
pub struct StaleToken {
    pub token: u64,
    pub newest: u64,
}

impl<T> FencedResource<T> {
    pub fn new(value: T) -> FencedResource<T> {
        FencedResource { newest: 0, value }
    }

    /// Applies `write` if `token` is not stale.
    pub fn write<R>(
        &mut self,
        token: u64,
        write: impl FnOnce(&mut T) -> R,
    ) -> Result<R, StaleToken> {
        if token < self.newest {
            return Err(StaleToken {
                token,
                newest: self.newest,
            });
        }
        self.newest = token;
        Ok(write(&mut self.value))
    }

    pub fn get(&self) -> &T {
        &self.value
    }

    /// The newest token accepted.
    pub fn newest(&self) -> u64 {
        self.newest
    }
}

#[cfg(test)]
mod tests;
