//! Simulation-build figures of the runtime against raw madsim, measured in fresh worlds.

use groundhog_runtime::rt::{self, Duration, Endpoint};
use groundhog_runtime::{Ctx, ExitReason, Node, NodeConfig, Pid};

use crate::measure::median_of;
use crate::sim_world::{give, handoff, in_world, start_node};
use crate::table::{Figure, Row, Table};
use crate::workloads;
use crate::Opts;

/// `n` remote calls from node 0 to an echo process on node 1, through Groundhog's `call`.
fn groundhog_remote_calls(n: u64) -> std::time::Duration {
    in_world(|control| async move {
        let (server_slot, server) = handoff::<Pid>();
        start_node(&control, 1, move || {
            let slot = server_slot.clone();
            async move {
                let node = Node::start(NodeConfig::cluster(1, 1, 2))
                    .await
                    .expect("port free");
                give(&slot, workloads::echo_server(&node));
            }
        });
        let server = server.await.expect("the server starts");
        let (done_slot, done) = handoff::<()>();
        start_node(&control, 0, move || {
            let slot = done_slot.clone();
            async move {
                let node = Node::start(NodeConfig::cluster(0, 1, 2))
                    .await
                    .expect("port free");
                node.spawn("caller", move |ctx: Ctx<()>| async move {
                    for i in 0..n {
                        let got: u64 = ctx
                            .call(server, i, Duration::from_secs(60))
                            .await
                            .expect("echo");
                        assert_eq!(got, i);
                    }
                    give(&slot, ());
                    ExitReason::Normal
                });
            }
        });
        done.await.expect("the caller finishes");
    })
    .0
}

/// The same `n` round trips as raw request/response datagrams over `rt::Endpoint`.
fn endpoint_round_trips(n: u64) -> std::time::Duration {
    in_world(|control| async move {
        let (ready_slot, ready) = handoff::<()>();
        start_node(&control, 1, move || {
            let slot = ready_slot.clone();
            async move {
                let ep = Endpoint::bind(rt::node_addr(1, workloads::ECHO_PORT))
                    .await
                    .expect("port free");
                give(&slot, ());
                workloads::endpoint_echo(&ep).await;
            }
        });
        ready.await.expect("the server binds");
        let (done_slot, done) = handoff::<()>();
        start_node(&control, 0, move || {
            let slot = done_slot.clone();
            async move {
                let ep = Endpoint::bind(rt::node_addr(0, workloads::ECHO_PORT))
                    .await
                    .expect("port free");
                let server = rt::node_addr(1, workloads::ECHO_PORT);
                for i in 0..n {
                    assert_eq!(workloads::endpoint_call(&ep, server, i).await, i);
                }
                give(&slot, ());
            }
        });
        done.await.expect("the client finishes");
    })
    .0
}

/// `n` local sends on one simulated node, Groundhog's or a raw channel's.
fn local_sends(n: u64, groundhog: bool) -> std::time::Duration {
    in_world(|control| async move {
        let (done_slot, done) = handoff::<()>();
        start_node(&control, 0, move || {
            let slot = done_slot.clone();
            async move {
                if groundhog {
                    let node = Node::local(0, 1);
                    workloads::groundhog_sends(&node, n).await;
                } else {
                    workloads::channel_sends(n, NodeConfig::local(0, 1).mailbox).await;
                }
                give(&slot, ());
            }
        });
        done.await.expect("the sends finish");
    })
    .0
}

/// Interleaves `samples` pairs of (Groundhog, baseline) runs and reports per-op medians.
fn compare(
    table: &mut Table,
    samples: usize,
    figure: &Figure<'_>,
    mut groundhog: impl FnMut() -> std::time::Duration,
    mut baseline: impl FnMut() -> std::time::Duration,
) {
    let n = figure.ops;
    let pairs: Vec<(f64, f64)> = (0..samples)
        .map(|_| {
            let g = groundhog().as_secs_f64() / n as f64;
            let b = baseline().as_secs_f64() / n as f64;
            (g, b)
        })
        .collect();
    let g = median_of(pairs.iter().map(|p| p.0).collect());
    let b = median_of(pairs.iter().map(|p| p.1).collect());
    let ratio = median_of(pairs.iter().map(|p| p.0 / p.1).collect());
    table.push(Row {
        figure: figure.name.into(),
        groundhog: format!("{:.2} µs/op", g * 1e6),
        baseline: format!("{}: {:.2} µs/op", figure.baseline, b * 1e6),
        ratio: format!("{ratio:.2}x"),
        target: format!("<= {}x", figure.target),
        met: Some(ratio <= figure.target),
    });
}

pub fn all(table: &mut Table, opts: &Opts) {
    let samples = opts.samples;
    let n = if opts.quick { 200 } else { 5_000 };
    if opts.wants("remote-call") {
        let figure = Figure {
            name: "simulated remote call round trip (wall per op)",
            ops: n,
            baseline: "raw madsim Endpoint request/response",
            target: 1.3,
        };
        compare(
            table,
            samples,
            &figure,
            || groundhog_remote_calls(n),
            || endpoint_round_trips(n),
        );
    }
    let n = if opts.quick { 1_000 } else { 100_000 };
    if opts.wants("local-send") {
        let figure = Figure {
            name: "simulated local send/deliver (wall per message)",
            ops: n,
            baseline: "tokio bounded mpsc",
            target: 1.5,
        };
        compare(
            table,
            samples,
            &figure,
            || local_sends(n, true),
            || local_sends(n, false),
        );
    }
}
