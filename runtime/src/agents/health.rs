//! Agent monitors reporting to the agent registry: a relay process that turns each
//! [`HealthReport`] into a registry write, and keeps trying while the registry restarts.

use crate::agent_monitor::{Health as Seen, HealthReport};
use crate::rt::{self, Duration};
use crate::{event, Ctx, Event, ExitReason, Node, Pid, SpawnOpts};

use super::{AgentRef, AgentRegistry, Health, TxError};

/// How long the relay waits for each write, and between tries while the registry restarts.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
const RETRY_EVERY: Duration = Duration::from_millis(20);
/// Tries per report before the relay gives up and exits with an error (its parent sees it).
const TRIES: u32 = 100;

impl AgentRegistry {
    /// Starts the process that agent monitors report to: pass its pid as
    /// [`MonitorConfig::report_to`](crate::agent_monitor::MonitorConfig). `Healthy` and
    /// `Unhealthy` set the agent's health; `Down` unregisters the agent bound to that pid, if
    /// it still is when the registry applies it (a compare-and-delete). Reports are
    /// applied in the order they arrive; while the registry is restarting the relay retries, so
    /// a report is not lost to a registry crash. A report about an agent the registry does not
    /// know is refused by the registry and traced (`agents-abort`).
    pub fn start_health_relay(&self, node: &Node, parent: Option<Pid>) -> Pid {
        let registry = self.clone();
        let mut opts = SpawnOpts::named("agent-health-relay");
        opts.link = parent;
        node.spawn_opts(opts, move |mut ctx: Ctx<HealthReport>| async move {
            loop {
                if let Event::Msg { msg, .. } = ctx.recv().await {
                    if let Err(reason) = relay(&ctx, &registry, msg).await {
                        return reason;
                    }
                }
            }
        })
    }
}

async fn relay(
    ctx: &Ctx<HealthReport>,
    registry: &AgentRegistry,
    report: HealthReport,
) -> Result<(), ExitReason> {
    for _ in 0..TRIES {
        let written = match &report.health {
            Seen::Healthy => {
                registry
                    .report_health(
                        ctx,
                        AgentRef::Pid(report.agent),
                        Health::Healthy,
                        WRITE_TIMEOUT,
                    )
                    .await
            }
            Seen::Unhealthy(_) => {
                registry
                    .report_health(
                        ctx,
                        AgentRef::Pid(report.agent),
                        Health::Unhealthy,
                        WRITE_TIMEOUT,
                    )
                    .await
            }
            // Compare-and-delete in the registry: only the agent still bound to this pid
            // goes. Reading the table here and then unregistering by id would remove an agent
            // that its owner moved to a new pid in between.
            Seen::Down(_) => registry.report_down(ctx, report.agent, WRITE_TIMEOUT).await,
        };
        match written {
            Ok(_) | Err(TxError::Op { .. }) => return Ok(()),
            // Not applied: the registry is between incarnations, or did not answer in time.
            Err(e) => {
                let why = e.to_string();
                event!("note", node = ctx.pid().node, msg = "health report retried", agent = %report.agent, why = why.as_str());
                rt::sleep(RETRY_EVERY).await;
            }
        }
    }
    Err(ExitReason::error(format!(
        "health report for {} not applied after {TRIES} tries",
        report.agent
    )))
}
