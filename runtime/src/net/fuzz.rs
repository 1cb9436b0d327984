//! The distribution layer's fuzz target: datagrams from a hostile network into a node's receive
//! path (`Node::on_datagram`: authentication, frame decoding, the session, applying wire
//! messages), with no sockets, so millions of inputs run in seconds.
//!
//! Inputs, drawn from a fixed seed: random bytes; genuine datagrams with a few bytes changed;
//! handshake packets with hostile fields; and, the interesting part, well-formed frames signed
//! with a valid session key (a peer that knows the secret but is broken or malicious) whose
//! every field may be hostile: acknowledgements and sequence numbers far ahead, epochs from the
//! past and the future, extreme incarnations, bodies naming pids, references and names that do
//! not exist, payloads at the size limit. Every input must be dropped or applied, never panic,
//! and the node's tables must stay within their stated bounds.
//!
//! The budget is `GROUNDHOG_FUZZ_CASES` inputs per seed (default 5,000; `#[rt::test]` runs
//! seeds 0..4). The long run:
//! `GROUNDHOG_FUZZ_CASES=2500000 cargo test --release -p groundhog-runtime --lib fuzz`
//! (10^7 inputs over the four seeds).

use rand::{Rng, RngCore, SeedableRng};

use crate::auth::{Auth, Packet, Secret, PEER_LIMIT, PENDING_LIMIT};
use crate::rt::{ChaCha8Rng, Duration, Instant};
use crate::session::{Peer, CONTROL_RESERVE, OUTBOUND_LIMIT, REORDER_WINDOW};
use crate::wire::{self, Frame, Wire, MAX_PAYLOAD};
use crate::{Ctx, Event, ExitReason, Node, NodeConfig, Pid, Ref};

fn budget() -> usize {
    std::env::var("GROUNDHOG_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000)
}

/// A value an attacker or a broken peer may put in a numeric field.
fn hostile(rng: &mut ChaCha8Rng) -> u64 {
    match rng.gen_range(0..6) {
        0 => rng.gen_range(0..6),
        1 => u64::MAX - rng.gen_range(0..2),
        2 => rng.gen_range(1u64 << 62..u64::MAX),
        3 => rng.gen_range(1_000..1_100),
        _ => rng.gen(),
    }
}

fn pid(rng: &mut ChaCha8Rng, real: &[Pid]) -> Pid {
    if rng.gen_bool(0.5) {
        real[rng.gen_range(0..real.len())]
    } else {
        Pid {
            node: rng.gen_range(0..4),
            incarnation: hostile(rng),
            id: hostile(rng),
        }
    }
}

fn reference(rng: &mut ChaCha8Rng) -> Ref {
    Ref {
        node: rng.gen_range(0..4),
        incarnation: hostile(rng),
        n: hostile(rng),
    }
}

fn payload(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let len = if rng.gen_bool(0.01) {
        MAX_PAYLOAD
    } else {
        rng.gen_range(0..64)
    };
    let mut bytes = vec![0; len];
    rng.fill_bytes(&mut bytes);
    bytes
}

fn reason(rng: &mut ChaCha8Rng) -> ExitReason {
    match rng.gen_range(0..7) {
        0 => ExitReason::Normal,
        1 => ExitReason::Shutdown,
        2 => ExitReason::Kill,
        3 => ExitReason::Killed,
        4 => ExitReason::NoProc,
        5 => ExitReason::NoConnection,
        _ => ExitReason::error("x".repeat(rng.gen_range(0..300))),
    }
}

fn body(rng: &mut ChaCha8Rng, real: &[Pid]) -> Wire {
    match rng.gen_range(0..11) {
        0 => Wire::Send {
            from: pid(rng, real),
            to: pid(rng, real),
            payload: payload(rng),
        },
        1 => Wire::Call {
            from: pid(rng, real),
            to: pid(rng, real),
            reference: reference(rng),
            payload: payload(rng),
        },
        2 => Wire::Reply {
            to: pid(rng, real),
            reference: reference(rng),
            payload: payload(rng),
        },
        3 => Wire::CallRefused {
            to: pid(rng, real),
            reference: reference(rng),
        },
        4 => Wire::Link {
            from: pid(rng, real),
            to: pid(rng, real),
        },
        5 => Wire::Unlink {
            from: pid(rng, real),
            to: pid(rng, real),
        },
        6 => Wire::Exit {
            from: pid(rng, real),
            to: pid(rng, real),
            reason: reason(rng),
            linked: rng.gen(),
        },
        7 => Wire::Monitor {
            reference: reference(rng),
            watcher: pid(rng, real),
            target: pid(rng, real),
        },
        8 => Wire::Demonitor {
            reference: reference(rng),
            target: pid(rng, real),
        },
        9 => Wire::Down {
            reference: reference(rng),
            watcher: pid(rng, real),
            pid: pid(rng, real),
            reason: reason(rng),
        },
        _ => Wire::SendName {
            from: pid(rng, real),
            name: "n".repeat(rng.gen_range(0..200)),
            payload: payload(rng),
        },
    }
}

/// A frame of the authenticated peer `from`: an honest shape with any field made hostile.
fn frame(rng: &mut ChaCha8Rng, from: u32, real: &[Pid]) -> Frame {
    let pick = |honest: u64, rng: &mut ChaCha8Rng| {
        if rng.gen_bool(0.3) {
            hostile(rng)
        } else {
            honest
        }
    };
    let seq = pick(rng.gen_range(1..20), rng);
    Frame {
        from,
        from_incarnation: 1,
        epoch: pick(1, rng),
        base_epoch: pick(0, rng),
        to_incarnation: pick(1, rng),
        ack_epoch: pick(1, rng),
        ack: pick(rng.gen_range(0..5), rng),
        refused_epoch: pick(0, rng),
        seq,
        msgs: if seq != 0 || rng.gen_bool(0.1) {
            let n = rng.gen_range(1..4);
            (0..n).map(|_| body(rng, real)).collect()
        } else {
            Vec::new()
        },
    }
}

fn mutate(rng: &mut ChaCha8Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.gen_range(1..4) {
        let i = rng.gen_range(0..bytes.len());
        bytes[i] = rng.gen();
    }
    if rng.gen_bool(0.2) {
        bytes.truncate(rng.gen_range(0..bytes.len()));
    }
    bytes
}

fn hostile_handshake(rng: &mut ChaCha8Rng) -> Packet {
    let mut nonce = [0; 16];
    rng.fill_bytes(&mut nonce);
    if rng.gen_bool(0.5) {
        Packet::Hello {
            from: rng.gen_range(0..3000),
            to: rng.gen_range(0..2),
            incarnation: hostile(rng),
            nonce,
            pad: vec![0; rng.gen_range(0..80)],
        }
    } else {
        Packet::Welcome {
            from: rng.gen_range(0..3),
            to: rng.gen_range(0..2),
            incarnation: hostile(rng),
            nonce,
            echo: nonce,
            proof: [rng.gen(); 32],
        }
    }
}

#[crate::rt::test]
async fn datagrams_from_a_hostile_network_never_panic_the_node() {
    let secret = Secret::new("fuzzed cluster's secret").unwrap();
    let node = Node::with_config(NodeConfig::local(0, 1));
    {
        let mut st = node.lock();
        st.distributed = true;
        st.auth = Some(Auth::new(
            0,
            1,
            secret.clone(),
            ChaCha8Rng::seed_from_u64(1),
        ));
        let addr = "10.0.0.2:4369".parse().unwrap();
        st.peers.insert(1, Peer::new(1, addr, Instant::now()));
    }
    let mut real = Vec::new();
    for name in ["a", "b", "trapper"] {
        real.push(node.spawn(name, move |mut ctx: Ctx<Vec<u8>>| async move {
            ctx.trap_exit(name == "trapper");
            loop {
                if let Event::Call { reply, .. } = ctx.recv().await {
                    reply.reply(vec![1u8]);
                }
            }
        }));
    }
    // Peer 1 knows the secret: its handshake completes, so its frames reach the session.
    let from = "10.0.0.2:4369".parse().unwrap();
    let mut peer = Auth::new(1, 1, secret, ChaCha8Rng::seed_from_u64(2));
    let welcome = node.on_datagram(&peer.hello(0), from).expect("a welcome");
    let _ = peer.open(&welcome);
    let sealer = peer.sealer(0).expect("peer 1 authenticated");
    let genuine = sealer.seal(&frame(&mut ChaCha8Rng::seed_from_u64(3), 1, &real));
    let genuine = genuine.expect("a genuine frame encodes");

    let mut rng = ChaCha8Rng::seed_from_u64(crate::rt::world_seed().unwrap_or(0));
    let mut framed = 0;
    for _ in 0..budget() {
        let bytes = match rng.gen_range(0..10) {
            0 => {
                let mut bytes = vec![0; rng.gen_range(0..400)];
                rng.fill_bytes(&mut bytes);
                bytes
            }
            1 | 2 => mutate(&mut rng, genuine.clone()),
            3 => wire::encode(&hostile_handshake(&mut rng)).unwrap(),
            _ => match sealer.seal(&frame(&mut rng, 1, &real)) {
                Ok(bytes) => {
                    framed += 1;
                    bytes
                }
                Err(_) => continue,
            },
        };
        let _ = node.on_datagram(&bytes, from);
        let st = node.lock();
        assert!(st.peers.len() <= PEER_LIMIT);
        let auth = st.auth.as_ref().unwrap().stats();
        assert!(auth.pending <= PENDING_LIMIT && auth.authenticated <= PEER_LIMIT);
        for p in st.peers.values() {
            assert!(p.unacked() <= OUTBOUND_LIMIT + CONTROL_RESERVE);
            assert!(p.early() <= REORDER_WINDOW as usize);
        }
    }
    assert!(framed > budget() / 2, "only {framed} authenticated frames");
    // The node still serves: a local call is answered.
    let server = real[0];
    let (tx, rx) = futures::channel::oneshot::channel();
    node.spawn("client", move |ctx: Ctx<()>| async move {
        let r: Result<Vec<u8>, _> = ctx
            .call(server, Vec::<u8>::new(), Duration::from_secs(1))
            .await;
        let _ = tx.send(r.is_ok() || !ctx.is_alive(server));
        ExitReason::Normal
    });
    assert!(rx.await.unwrap(), "the node stopped serving calls");
}
