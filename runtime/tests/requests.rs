//! Calls by name and requests that name their reply type, through the public API, in both builds.

use futures::channel::oneshot;
use groundhog_runtime::rt::{self, Duration};
use groundhog_runtime::{CallError, Ctx, Event, ExitReason, Node, Pid, Registry, Request};
use serde::{Deserialize, Serialize};

const SEC: Duration = Duration::from_secs(1);

#[derive(Debug, Serialize, Deserialize)]
struct Double(u32);

impl Request for Double {
    type Reply = u64;
}

/// Answers every `Double(n)` with `2n`, typed.
fn doubler(node: &Node) -> Pid {
    node.spawn("doubler", |mut ctx: Ctx<Double>| async move {
        loop {
            if let Event::Call { msg, reply, .. } = ctx.recv().await {
                let twice = u64::from(msg.0) * 2;
                reply.answer(&msg, twice);
            }
        }
    })
}

async fn as_process<T: Send + 'static, F>(
    node: &Node,
    body: impl FnOnce(Ctx<()>) -> F + Send + 'static,
) -> T
where
    F: std::future::Future<Output = T> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    node.spawn("caller", move |ctx: Ctx<()>| async move {
        let _ = tx.send(body(ctx).await);
        ExitReason::Normal
    });
    rx.await.expect("the caller finished")
}

#[rt::test]
async fn a_typed_request_gets_its_reply_type() {
    let node = Node::local(0, 1);
    let server = doubler(&node);
    let got = as_process(&node, move |ctx| async move {
        ctx.request(server, Double(21), SEC).await
    })
    .await;
    assert_eq!(got, Ok(42u64));
}

#[rt::test]
async fn call_name_resolves_in_the_registry_given_and_unknown_names_are_noproc() {
    let node = Node::local(0, 1);
    let local = Registry::local(&node);
    let cluster = Registry::cluster(&node);
    let server = doubler(&node);
    local.register("doubler", server).unwrap();
    let (l, c, unknown) = as_process(&node, move |ctx| async move {
        let l = ctx.request_name(&local, "doubler", Double(5), SEC).await;
        // The name lives in the local registry only: the cluster one does not know it.
        let c = ctx.request_name(&cluster, "doubler", Double(5), SEC).await;
        let unknown: Result<u64, _> = ctx.call_name(&local, "nobody", Double(1), SEC).await;
        (l, c, unknown)
    })
    .await;
    assert_eq!(l, Ok(10));
    assert_eq!(c, Err(CallError::NoProc));
    assert_eq!(unknown, Err(CallError::NoProc));
}
