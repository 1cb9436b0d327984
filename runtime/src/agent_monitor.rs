//! Agent monitors: one supervised process per agent that watches its health and reports changes
//! to a `report_to` process as [`HealthReport`] messages.
//!
//! A monitor calls [`Ctx::monitor`] on its agent *before* it first checks on it, so an agent that
//! dies at any moment (before the monitor starts, between the monitor and the first probe, during
//! a probe) yields exactly one `Down` and therefore exactly one [`Health::Down`] report, after
//! which the monitor stops. Before it reports `Healthy`, a monitor takes any queued `Down` first,
//! so once the agent's failure is known on the monitor's node it is never reported healthy.
//!
//! Monitors run under a dynamic supervisor ([`start_supervisor`], then [`watch`]) as *transient*
//! children: a monitor that finished (it reported `Down`, exit `Normal`) is not restarted, and
//! one that crashed is, so an agent is never left silently unwatched. A restarted monitor
//! monitors again; if the agent died meanwhile that gives `Down` with `NoProc`.
//!
//! A monitor whose report cannot be queued (the receiver is gone, or its mailbox is full) exits
//! with an error, so its supervisor sees the failure instead of it being swallowed.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::rt::Duration;
use crate::supervisor::{self, Restart, Shutdown};
use crate::{
    event, CallError, Ctx, Event, ExitReason, Message, Node, Pid, Ref, SpawnOpts, StartError,
};

/// What a monitor knows about its agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Health {
    /// The agent answered its last probe `Ok` (or, without probes, it is being monitored alive).
    Healthy,
    /// The agent answered its last probe with an error, or did not answer it in time.
    Unhealthy(String),
    /// The agent's `Down` arrived: it exited with this reason (`NoProc` if it was already gone
    /// when monitored, `NoConnection` if its node became unreachable). Always the last report.
    Down(ExitReason),
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::Healthy => f.write_str("healthy"),
            Health::Unhealthy(why) => write!(f, "unhealthy: {why}"),
            Health::Down(reason) => write!(f, "down: {reason}"),
        }
    }
}

/// Sent to `report_to` whenever an agent's health changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    pub agent: Pid,
    pub health: Health,
}

/// The default probe request. An agent answers it (by call) with `Result<(), String>`:
/// `Ok(())` is healthy, `Err(why)` unhealthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck;

/// How monitors probe and whom they report to. `Q` is the request an agent answers with
/// `Result<(), String>`; agents with their own message type pass one of its values.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MonitorConfig<Q = HealthCheck> {
    /// Receives every [`HealthReport`].
    pub report_to: Pid,
    /// The probe; `None` watches for `Down` only (reporting `Healthy` once monitored alive).
    pub probe: Option<Q>,
    /// Time between the end of one probe and the start of the next.
    pub interval: Duration,
    /// How long a probe may take before the agent counts as unhealthy.
    pub probe_timeout: Duration,
}

impl<Q: Message + Clone + Sync> MonitorConfig<Q> {
    /// Probes with `probe` every second, each within one second.
    pub fn new(report_to: Pid, probe: Option<Q>) -> Self {
        MonitorConfig {
            report_to,
            probe,
            interval: Duration::from_secs(1),
            probe_timeout: Duration::from_secs(1),
        }
    }

    pub fn interval(mut self, every: Duration) -> Self {
        self.interval = every;
        self
    }

    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = timeout;
        self
    }

    fn validate(&self) -> Result<(), StartError> {
        if self.interval.is_zero() {
            return Err(StartError::Invalid("monitor interval is zero".into()));
        }
        if self.probe_timeout.is_zero() {
            return Err(StartError::Invalid("probe timeout is zero".into()));
        }
        Ok(())
    }
}

/// Starts a dynamic supervisor of agent monitors on `node`, linked to `parent`. Its children are
/// transient; more than `intensity.0` monitor crashes within `intensity.1` make it give up.
pub async fn start_supervisor<Q: Message + Clone + Sync>(
    node: &Node,
    parent: Option<Pid>,
    intensity: (u32, Duration),
    config: MonitorConfig<Q>,
) -> Result<Pid, StartError> {
    config.validate()?;
    supervisor::start_dynamic(
        node,
        "agent-monitors",
        parent,
        intensity,
        Restart::Transient,
        Shutdown::Timeout(Duration::from_secs(1)),
        move |node: Node, sup: Pid, agent: Pid| {
            let config = config.clone();
            async move { Ok(spawn_monitor(&node, Some(sup), agent, config)) }
        },
    )
    .await
}

/// Asks monitor supervisor `sup` to start watching `agent`; returns the monitor's pid.
pub async fn watch<M: Message>(
    ctx: &Ctx<M>,
    sup: Pid,
    agent: Pid,
    timeout: Duration,
) -> Result<Result<Pid, StartError>, CallError> {
    supervisor::start_child(ctx, sup, agent, timeout).await
}

/// Spawns one monitor of `agent` on `node`, linked to `parent` (its supervisor) if given.
/// Prefer [`watch`]; this is the child start function, public for callers with their own tree.
pub fn spawn_monitor<Q: Message + Clone + Sync>(
    node: &Node,
    parent: Option<Pid>,
    agent: Pid,
    config: MonitorConfig<Q>,
) -> Pid {
    let mut opts = SpawnOpts::named("agent-monitor");
    opts.link = parent;
    node.spawn_opts(opts, move |ctx: Ctx<()>| run(ctx, agent, config))
}

/// A probe's outcome, or the agent's end.
enum Seen {
    Health(Health),
    Down(ExitReason),
}

async fn run<Q: Message + Clone + Sync>(
    mut ctx: Ctx<()>,
    agent: Pid,
    config: MonitorConfig<Q>,
) -> ExitReason {
    // Monitor first: from here on, exactly one Down for `m` is coming, whenever the agent dies.
    let m = ctx.monitor(agent);
    let mut last: Option<Health> = None;
    loop {
        let seen = match probe(&ctx, agent, &config).await {
            Some(health) => match take_down(&mut ctx, m) {
                // The agent's end is known here: it is never reported healthy after that.
                Some(reason) => Seen::Down(reason),
                None => Seen::Health(health),
            },
            // It died, or its node is unreachable: the monitor's Down says why.
            None => Seen::Down(
                wait_down(&mut ctx, m, None)
                    .await
                    .unwrap_or(ExitReason::NoProc),
            ),
        };
        match seen {
            Seen::Down(reason) => {
                return match report(&ctx, agent, Health::Down(reason), &config) {
                    Ok(()) => ExitReason::Normal,
                    Err(e) => e,
                };
            }
            Seen::Health(health) => {
                if last.as_ref() != Some(&health) {
                    if let Err(e) = report(&ctx, agent, health.clone(), &config) {
                        ctx.demonitor(m, true);
                        return e;
                    }
                    last = Some(health);
                }
            }
        }
        if let Some(reason) = wait_down(&mut ctx, m, Some(config.interval)).await {
            return match report(&ctx, agent, Health::Down(reason), &config) {
                Ok(()) => ExitReason::Normal,
                Err(e) => e,
            };
        }
    }
}

/// One check on the agent: its health, or `None` if the call shows it is gone.
async fn probe<Q: Message + Clone + Sync>(
    ctx: &Ctx<()>,
    agent: Pid,
    config: &MonitorConfig<Q>,
) -> Option<Health> {
    let Some(request) = config.probe.clone() else {
        return ctx.is_alive(agent).then_some(Health::Healthy);
    };
    let answer: Result<Result<(), String>, CallError> =
        ctx.call(agent, request, config.probe_timeout).await;
    match answer {
        Ok(Ok(())) => Some(Health::Healthy),
        Ok(Err(why)) => Some(Health::Unhealthy(why)),
        Err(CallError::Timeout) => Some(Health::Unhealthy("probe timed out".into())),
        Err(e @ (CallError::NotSent(_) | CallError::BadReply(_))) => {
            Some(Health::Unhealthy(e.to_string()))
        }
        Err(CallError::NoProc | CallError::NodeDown | CallError::Exited(_)) => None,
    }
}

/// The queued `Down` for `m`, if one is already there; other events are discarded.
fn take_down(ctx: &mut Ctx<()>, m: Ref) -> Option<ExitReason> {
    let mut found = None;
    while ctx.pending() > 0 && found.is_none() {
        // A pending signal is ready: this completes without waiting.
        let event = futures::FutureExt::now_or_never(ctx.recv());
        match event {
            Some(Event::Down {
                reference, reason, ..
            }) if reference == m => found = Some(reason),
            Some(_) => {}
            None => break,
        }
    }
    found
}

/// Waits for the `Down` of `m`, up to `limit` (forever when `None`).
async fn wait_down(ctx: &mut Ctx<()>, m: Ref, limit: Option<Duration>) -> Option<ExitReason> {
    let tick = limit.map(|after| ctx.send_after(after, 0));
    loop {
        match ctx.recv().await {
            Event::Down {
                reference, reason, ..
            } if reference == m => {
                if let Some(t) = tick {
                    ctx.cancel_timer(t);
                }
                return Some(reason);
            }
            Event::Timer { reference, .. } if Some(reference) == tick => return None,
            _ => {}
        }
    }
}

/// Sends one report; an undeliverable one ends the monitor with an error.
fn report<Q>(
    ctx: &Ctx<()>,
    agent: Pid,
    health: Health,
    config: &MonitorConfig<Q>,
) -> Result<(), ExitReason> {
    let me = ctx.pid();
    let shown = health.to_string();
    event!("health", node = me.node, monitor = %me, agent = %agent, health = shown.as_str());
    ctx.send(config.report_to, HealthReport { agent, health })
        .map_err(|e| ExitReason::error(format!("health report undelivered: {e}")))
}

#[cfg(test)]
mod tests;
