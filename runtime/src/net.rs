//! The two tasks behind a distributed node: a receiver that decodes frames (dropping and tracing
//! bad ones) and a pump that sends fresh frames, delayed acknowledgements, heartbeats and
//! retransmissions, and declares silent peers down. Both belong to the node and stop with
//! [`Node::shutdown`].

use std::net::SocketAddr;
use std::sync::Arc;

use futures::channel::mpsc;
use futures::StreamExt;

use crate::rt::{self, Instant, Socket};
use crate::session::Peer;
use crate::wire::{self, Frame, MAX_FRAME};
use crate::{event, Node};

/// Retransmissions per peer per tick.
const RESEND_PER_TICK: usize = 64;

pub(crate) async fn start(node: &Node, listen: SocketAddr) -> std::io::Result<()> {
    let socket = Arc::new(Socket::bind(listen).await?);
    let (kick_tx, kick_rx) = mpsc::unbounded();
    node.set_kick(kick_tx);
    {
        let mut st = node.lock();
        st.distributed = true;
        st.listen_addr = Some(socket.local_addr()?);
        let now = Instant::now();
        for (index, addr) in &node.config().peers {
            st.peers.insert(*index, Peer::new(*index, *addr, now));
        }
    }
    let receiver = node.spawn_service("net-receive", receive(node.clone(), socket.clone()));
    let pump = node.spawn_service("net-pump", pump(node.clone(), socket, kick_rx));
    let mut st = node.lock();
    st.net_tasks.push(receiver.abort_handle());
    st.net_tasks.push(pump.abort_handle());
    Ok(())
}

async fn receive(node: Node, socket: Arc<Socket>) {
    let mut buf = vec![0u8; MAX_FRAME + 1];
    let index = node.index();
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(_) => {
                rt::yield_now().await;
                continue;
            }
        };
        match wire::decode::<Frame>(&buf[..n]) {
            Ok(frame) => node.on_frame(frame, from),
            Err(e) => {
                let why = e.to_string();
                event!("drop", node = index, from = %from, reason = "bad-frame", msg = why.as_str());
            }
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
        let mut out: Vec<(SocketAddr, Frame)> = Vec::new();
        {
            let mut st = node.lock();
            st.unkick();
            let (me, incarnation) = (st.index, st.incarnation);
            let now = Instant::now();
            let mut down = Vec::new();
            for peer in st.peers.values_mut() {
                if let Some(why) = tick
                    .then(|| peer.check_silence(now, config.down_after))
                    .flatten()
                {
                    down.push((peer.index, why));
                }
                for f in peer.fresh_frames(me, incarnation) {
                    out.push((peer.addr, f));
                }
                if tick {
                    event!("heartbeat", node = me, peer = peer.index);
                    for f in peer.tick_frames(me, incarnation, RESEND_PER_TICK) {
                        out.push((peer.addr, f));
                    }
                } else if let Some(f) = peer.ack_frame(me, incarnation, now, ack_delay) {
                    out.push((peer.addr, f));
                }
            }
            next_ack = st
                .peers
                .values()
                .filter_map(|p| p.ack_deadline(ack_delay))
                .min();
            for (peer, why) in down {
                st.peer_down(peer, why);
            }
        }
        if tick {
            next_tick = Instant::now() + config.heartbeat;
        }
        for (addr, frame) in out {
            match wire::encode(&frame) {
                Ok(bytes) => {
                    let _ = socket.send_to(addr, &bytes).await;
                }
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
    }
}

#[cfg(test)]
mod tests;
