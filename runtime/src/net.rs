//! The tasks behind a distributed node: receivers that authenticate and decode datagrams
//! (dropping and tracing bad ones, answering handshakes) and a pump that says hello to peers it
//! has no key for yet and sends them fresh frames, delayed acknowledgements, heartbeats and
//! retransmissions, and declares silent peers down. All belong to the node and stop with
//! [`Node::shutdown`].

use std::net::SocketAddr;
use std::sync::Arc;

use futures::channel::mpsc;
use futures::StreamExt;

use crate::auth::{Auth, Sealer, Secret};
use crate::rt::{self, Instant, Socket};
use crate::session::Peer;
use crate::wire::{Frame, MAX_FRAME};
use crate::{event, Node};

/// Retransmissions per peer per tick.
const RESEND_PER_TICK: usize = 64;

/// Receive tasks per node. madsim delays every received datagram by at least 1 ms of simulated
/// time, so one task receives at most 1,000 datagrams per simulated second: a 64-node cluster's
/// heartbeats alone come close. Several tasks on one socket lift that cap (docs/madsim.md).
const RECEIVERS: usize = 4;

pub(crate) async fn start(node: &Node, listen: SocketAddr) -> std::io::Result<()> {
    let secret = match (node.config().secret.clone(), rt::world_seed()) {
        (Some(secret), _) => secret,
        (None, Some(seed)) => Secret::for_seed(seed),
        (None, None) => return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a distributed node needs a cluster secret (NodeConfig::secret); there is no default",
        )),
    };
    let socket = Arc::new(Socket::bind(listen).await?);
    let (kick_tx, kick_rx) = mpsc::unbounded();
    node.set_kick(kick_tx);
    {
        let mut st = node.lock();
        st.distributed = true;
        st.listen_addr = Some(socket.local_addr()?);
        let (index, incarnation) = (st.index, st.incarnation);
        st.auth = Some(Auth::new(
            index,
            incarnation,
            secret,
            rt::nonce_rng(index, incarnation),
        ));
        let now = Instant::now();
        st.last_tick = now;
        for (index, addr) in &node.config().peers {
            st.peers.insert(*index, Peer::new(*index, *addr, now));
            // The first pump round says hello to every configured peer.
            st.kick(*index);
        }
    }
    let mut tasks = Vec::new();
    for _ in 0..RECEIVERS {
        let receiver = node.spawn_service("net-receive", receive(node.clone(), socket.clone()));
        tasks.push(receiver.abort_handle());
    }
    let pump = node.spawn_service("net-pump", pump(node.clone(), socket, kick_rx));
    tasks.push(pump.abort_handle());
    node.lock().net_tasks.extend(tasks);
    Ok(())
}

async fn receive(node: Node, socket: Arc<Socket>) {
    let mut buf = vec![0u8; MAX_FRAME + 1];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(_) => {
                rt::yield_now().await;
                continue;
            }
        };
        if let Some(answer) = node.on_datagram(&buf[..n], from) {
            let _ = socket.send_to(from, &answer).await;
        }
    }
}

async fn pump(node: Node, socket: Arc<Socket>, mut kicks: mpsc::UnboundedReceiver<()>) {
    let config = node.config().clone();
    // Well inside a heartbeat, so a delayed ack never lets the peer's next tick resend.
    let ack_delay = config.heartbeat / 10;
    let mut next_tick = Instant::now() + config.heartbeat;
    let mut next_ack: Option<Instant> = None;
    loop {
        let wake = next_ack.map_or(next_tick, |a| a.min(next_tick));
        let wait = wake.saturating_duration_since(Instant::now());
        let tick = match rt::timeout(wait, kicks.next()).await {
            Ok(Some(())) => false,
            Ok(None) => return,
            Err(_) => Instant::now() >= next_tick,
        };
        // Frames to seal with the peer's key, and handshake packets, ready to go.
        let mut out: Vec<(SocketAddr, Sealer, Frame)> = Vec::new();
        let mut datagrams: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        {
            let mut guard = node.lock();
            let st = &mut *guard;
            st.unkick();
            let (me, incarnation) = (st.index, st.incarnation);
            let now = Instant::now();
            let mut down = Vec::new();
            let Some(auth) = st.auth.as_mut() else {
                return;
            };
            // A tick looks at every peer; a kick only at those with something due.
            let due = std::mem::take(&mut st.due);
            let visit: Vec<u32> = if tick {
                st.peers.keys().copied().collect()
            } else {
                due.into_iter().collect()
            };
            // A tick after a stall of this node's own (see `State::stalled`) declares every
            // peer down: nothing heard before it can be trusted.
            let stalled = tick && now.saturating_duration_since(st.last_tick) > st.stall_after;
            if tick {
                st.last_tick = now;
            }
            let mut acks_owed = Vec::new();
            for index in visit {
                let Some(peer) = st.peers.get_mut(&index) else {
                    continue;
                };
                if let Some(why) = tick
                    .then(|| peer.check_silence(now, config.down_after, stalled))
                    .flatten()
                {
                    down.push((peer.index, why));
                }
                let Some(sealer) = auth.sealer(peer.index) else {
                    // Nothing goes to a peer before our handshake with it completes; what is
                    // queued waits in the session. An unanswered hello is repeated every tick.
                    if auth.hello_due(peer.index, tick) {
                        datagrams.push((peer.addr, auth.hello(peer.index)));
                    }
                    continue;
                };
                for f in peer.fresh_frames(me, incarnation) {
                    out.push((peer.addr, sealer, f));
                }
                if tick {
                    event!("heartbeat", node = me, peer = peer.index);
                    for f in peer.tick_frames(me, incarnation, RESEND_PER_TICK) {
                        out.push((peer.addr, sealer, f));
                    }
                } else if let Some(f) = peer.ack_frame(me, incarnation, now, ack_delay) {
                    out.push((peer.addr, sealer, f));
                }
                if let Some(at) = peer.ack_deadline(ack_delay) {
                    acks_owed.push((index, at));
                }
            }
            // A peer still owed an acknowledgement stays due until it goes.
            next_ack = acks_owed.iter().map(|(_, at)| *at).min();
            st.due.extend(acks_owed.into_iter().map(|(index, _)| index));
            for (peer, why) in down {
                st.peer_down(peer, why);
            }
        }
        if tick {
            next_tick = Instant::now() + config.heartbeat;
        }
        for (addr, sealer, frame) in out {
            match sealer.seal(&frame) {
                Ok(bytes) => datagrams.push((addr, bytes)),
                Err(e) => {
                    let why = e.to_string();
                    event!(
                        "drop",
                        node = node.index(),
                        reason = "unencodable-frame",
                        msg = why.as_str()
                    );
                }
            }
        }
        // All at once: madsim holds each send for at least 1 ms of simulated time, so awaiting
        // them in turn made a round of k datagrams take k ms (docs/madsim.md).
        futures::future::join_all(
            datagrams
                .iter()
                .map(|(addr, bytes)| socket.send_to(*addr, bytes)),
        )
        .await;
    }
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
