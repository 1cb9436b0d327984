//! The workloads both builds measure, each in a Groundhog and a baseline version doing the same
//! work. Every function returns after its work is done; callers time it.

use std::net::SocketAddr;

use groundhog_runtime::rt::{self, Duration, Endpoint};
use groundhog_runtime::{Ctx, Event, ExitReason, Node, Pid, SendError};
use tokio::sync::{mpsc, oneshot};

/// A local echo server process: answers every call with its request, ignores casts.
pub fn echo_server(node: &Node) -> Pid {
    node.spawn("echo", |mut ctx: Ctx<u64>| async move {
        loop {
            if let Event::Call { msg, reply, .. } = ctx.recv().await {
                reply.reply(msg);
            }
        }
    })
}

/// The port raw-datagram baselines serve their echo on (clear of the runtime's own).
pub const ECHO_PORT: u16 = 7000;

/// Tags of a raw request and its response on an `rt::Endpoint`.
const REQUEST: u64 = 1;
const RESPONSE: u64 = 2;

/// The raw baseline of [`echo_server`]: answers every request datagram on `ep` with its bytes.
pub async fn endpoint_echo(ep: &Endpoint) {
    let mut buf = [0u8; 8];
    loop {
        let (len, from) = ep.recv_from(REQUEST, &mut buf).await.expect("recv");
        ep.send_to(from, RESPONSE, &buf[..len]).await.expect("send");
    }
}

/// One raw request/response round trip from `ep` to an [`endpoint_echo`] at `server`.
pub async fn endpoint_call(ep: &Endpoint, server: SocketAddr, value: u64) -> u64 {
    ep.send_to(server, REQUEST, &value.to_le_bytes())
        .await
        .expect("send");
    let mut buf = [0u8; 8];
    let (len, _) = ep.recv_from(RESPONSE, &mut buf).await.expect("recv");
    u64::from_le_bytes(buf[..len].try_into().expect("8 bytes"))
}

/// Sends `n` messages from one process to another on `node`, then one call on the same pair,
/// which returns once every message before it was delivered (per-pair FIFO).
pub async fn groundhog_sends(node: &Node, n: u64) {
    let server = echo_server(node);
    let (done, finished) = oneshot::channel();
    node.spawn("sender", move |ctx: Ctx<()>| async move {
        for i in 0..n {
            let mut msg = i;
            loop {
                match ctx.send(server, msg) {
                    Ok(()) => break,
                    Err(SendError::Full { msg: back, .. }) => {
                        msg = back;
                        rt::yield_now().await;
                    }
                    Err(e) => panic!("local send failed: {e}"),
                }
            }
        }
        let last: u64 = ctx
            .call(server, n, Duration::from_secs(60))
            .await
            .expect("echo answers");
        let _ = done.send(last);
        ExitReason::Normal
    });
    assert_eq!(finished.await.expect("the sender finishes"), n);
}

/// `n` sequential local calls between two processes.
pub async fn groundhog_calls(node: &Node, n: u64) {
    let server = echo_server(node);
    let (done, finished) = oneshot::channel();
    node.spawn("caller", move |ctx: Ctx<()>| async move {
        for i in 0..n {
            let got: u64 = ctx
                .call(server, i, Duration::from_secs(60))
                .await
                .expect("echo answers");
            assert_eq!(got, i);
        }
        let _ = done.send(());
        ExitReason::Normal
    });
    finished.await.expect("the caller finishes");
}

/// The raw baseline of [`groundhog_sends`]: a bounded tokio channel of the same capacity between
/// two tasks (tokio's sync primitives run on any executor, madsim's too), the last message
/// acknowledged over a oneshot.
pub async fn channel_sends(n: u64, capacity: usize) {
    let (tx, mut rx) = mpsc::channel::<(u64, Option<oneshot::Sender<u64>>)>(capacity);
    rt::spawn(async move {
        while let Some((v, ack)) = rx.recv().await {
            if let Some(ack) = ack {
                let _ = ack.send(v);
            }
        }
    });
    for i in 0..n {
        tx.send((i, None)).await.expect("receiver alive");
    }
    let (ack, acked) = oneshot::channel();
    tx.send((n, Some(ack))).await.expect("receiver alive");
    assert_eq!(acked.await.expect("acknowledged"), n);
}

/// The raw baseline of [`groundhog_calls`]: request over a channel, answer over a oneshot.
pub async fn channel_calls(n: u64) {
    let (tx, mut rx) = mpsc::channel::<(u64, oneshot::Sender<u64>)>(16);
    rt::spawn(async move {
        while let Some((v, reply)) = rx.recv().await {
            let _ = reply.send(v);
        }
    });
    for i in 0..n {
        let (reply, answer) = oneshot::channel();
        tx.send((i, reply)).await.expect("server alive");
        assert_eq!(answer.await.expect("answered"), i);
    }
}
