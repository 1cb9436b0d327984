//! Node authentication: only nodes that know the cluster secret take part in distribution.
//!
//! Every datagram is a [`Packet`]. Each direction of a pair of nodes is authenticated on its
//! own, by a handshake the sending side starts:
//!
//! 1. The initiator sends `Hello` with a fresh nonce. It is unauthenticated, so answering it is
//!    all a stranger can make a node do: one `Welcome`, no larger than the `Hello` (a `Hello` is
//!    padded), and one entry in a bounded table of pending handshakes ([`PENDING_LIMIT`], oldest
//!    evicted first). No peer state is created.
//! 2. The responder answers `Welcome` with a nonce of its own and a proof: a MAC, keyed by the
//!    secret, over both nodes' indices and incarnations and both nonces. The initiator checks it
//!    (so a node that does not know the secret cannot pose as a peer) and derives the session key
//!    from the same inputs.
//! 3. Every frame the initiator sends after that is `Data`: the encoded frame and a MAC over it
//!    with the session key. The first valid one proves to the responder that the initiator knows
//!    the secret (the key depends on the responder's fresh nonce, so it cannot be replayed from an
//!    earlier handshake) and promotes the pending entry to the peer's inbound key. Only then does
//!    the node learn the peer. A replayed `Data` under a live key is a duplicate frame, which the
//!    session discards by sequence number.
//!
//! A node forgets its outbound key to a peer it declares down, or whose authenticated frames
//! come from a newer incarnation than the one that answered its handshake (a `Welcome` from an
//! incarnation that then crashed can arrive after the restart), and handshakes again; the previous inbound key stays valid next to the new one, so frames in flight across a
//! re-handshake are not lost. Unauthenticated or badly signed datagrams are dropped, traced and
//! counted ([`NetStats`]), never answered.
//!
//! The MACs and key derivations are BLAKE3 in keyed mode (the `blake3` crate). No I/O and no
//! clock reads here: the node passes datagrams in and sends what comes back.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::wire::{self, Frame, WireError};

/// Pending handshakes a node keeps (responder side); the oldest is evicted beyond it.
pub const PENDING_LIMIT: usize = 128;

/// Peers a node keeps authenticated sessions with; a new peer beyond it is refused
/// (`peer-table-full`).
pub const PEER_LIMIT: usize = 1024;

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET: usize = 16;

/// Padding that makes a `Hello` at least as large as the `Welcome` it earns.
const HELLO_PAD: usize = 48;

type Nonce = [u8; 16];
type Key = [u8; 32];
/// One end of a handshake: node index, incarnation, nonce.
type End = (u32, u64, Nonce);

/// The cluster secret every node of a cluster shares.
///
/// In the real build a distributed node must be given one ([`crate::NodeConfig::secret`]);
/// there is no default. In simulation a node without one uses a secret derived from the world's
/// seed, so the same code (and its cost) runs in every simulated run.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: Key,
}

/// Why a secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the cluster secret is {0} bytes; it must be at least {MIN_SECRET}")]
    TooShort(usize),
    #[error("the cluster secret variable {0} is not set")]
    Missing(String),
}

impl Secret {
    /// A secret from bytes shared by every node (at least [`MIN_SECRET`] of them).
    pub fn new(bytes: impl AsRef<[u8]>) -> Result<Secret, SecretError> {
        let bytes = bytes.as_ref();
        if bytes.len() < MIN_SECRET {
            return Err(SecretError::TooShort(bytes.len()));
        }
        Ok(Secret {
            key: blake3::derive_key("groundhog 2026-12 cluster secret", bytes),
        })
    }

    /// The secret held by environment variable `var`.
    pub fn from_env(var: &str) -> Result<Secret, SecretError> {
        match std::env::var_os(var) {
            Some(value) => Secret::new(value.as_encoded_bytes()),
            None => Err(SecretError::Missing(var.to_string())),
        }
    }

    /// The simulated cluster's secret: the same for every node of one seeded world.
    pub(crate) fn for_seed(seed: u64) -> Secret {
        Secret {
            key: blake3::derive_key("groundhog 2026-12 simulated secret", &seed.to_le_bytes()),
        }
    }

    /// A MAC keyed by the secret over a label and both ends of a handshake (fixed-width
    /// fields, the label ended by a NUL, so no two inputs run together).
    fn mac(&self, label: &str, initiator: End, responder: End) -> Key {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(label.as_bytes());
        h.update(&[0]);
        for (node, incarnation, nonce) in [initiator, responder] {
            h.update(&node.to_le_bytes());
            h.update(&incarnation.to_le_bytes());
            h.update(&nonce);
        }
        *h.finalize().as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// One datagram of the distribution protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Packet {
    Hello {
        from: u32,
        to: u32,
        incarnation: u64,
        nonce: Nonce,
        #[serde(with = "wire::bytes")]
        pad: Vec<u8>,
    },
    Welcome {
        from: u32,
        to: u32,
        incarnation: u64,
        nonce: Nonce,
        /// The initiator's nonce this answers.
        echo: Nonce,
        proof: Key,
    },
    Data {
        from: u32,
        /// Which handshake's key signed it (the initiator's nonce).
        key: Nonce,
        #[serde(with = "wire::bytes")]
        frame: Vec<u8>,
        tag: Key,
    },
}

/// Counters of a node's distribution layer ([`crate::Node::net_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetStats {
    /// Datagrams dropped as unauthenticated or badly signed: undecodable, a wrong MAC or proof,
    /// an unknown key, a `Welcome` nobody asked for.
    pub rejected: u64,
    /// `Hello`s answered (each costs one `Welcome` and one pending entry).
    pub hellos: u64,
    /// Handshakes this node started that completed.
    pub handshakes: u64,
    /// Pending handshakes evicted to keep the table at [`PENDING_LIMIT`].
    pub evicted: u64,
    /// Pending handshakes held now.
    pub pending: usize,
    /// Peers with an authenticated inbound key now.
    pub authenticated: usize,
}

/// What signs one direction's frames.
#[derive(Clone, Copy)]
pub(crate) struct Sealer {
    from: u32,
    id: Nonce,
    key: Key,
    /// The incarnation of the peer that answered the handshake.
    peer_incarnation: u64,
}

impl Sealer {
    /// The datagram carrying `frame`.
    pub(crate) fn seal(&self, frame: &Frame) -> Result<Vec<u8>, WireError> {
        let frame = wire::encode(frame)?;
        let tag = *blake3::keyed_hash(&self.key, &frame).as_bytes();
        wire::encode(&Packet::Data {
            from: self.from,
            key: self.id,
            frame,
            tag,
        })
    }
}

enum Outbound {
    /// Our `Hello` with this nonce waits for its `Welcome`.
    Hello(Nonce),
    Ready(Sealer),
}

#[derive(Clone, Copy)]
struct InKey {
    id: Nonce,
    key: Key,
    incarnation: u64,
}

struct Inbound {
    current: InKey,
    previous: Option<InKey>,
}

struct Pending {
    from: u32,
    nonce: Nonce,
    key: InKey,
    welcome: Packet,
}

/// What a datagram meant.
#[derive(Debug)]
pub(crate) enum Opened {
    /// An authenticated frame from its sender.
    Frame(Frame),
    /// A `Hello`: send this `Welcome` back to where it came from.
    Answer(Vec<u8>),
    /// Our handshake with this peer (index, incarnation that answered) completed: its queued
    /// frames can go.
    Ready(u32, u64),
    /// Dropped, for this reason (the claimed sender, if the datagram named one).
    Dropped {
        reason: &'static str,
        from: Option<u32>,
    },
}

/// One node's authentication state.
pub(crate) struct Auth {
    me: u32,
    incarnation: u64,
    secret: Secret,
    rng: ChaCha8Rng,
    outbound: BTreeMap<u32, Outbound>,
    inbound: BTreeMap<u32, Inbound>,
    pending: VecDeque<Pending>,
    stats: NetStats,
}

impl Auth {
    pub(crate) fn new(me: u32, incarnation: u64, secret: Secret, rng: ChaCha8Rng) -> Auth {
        Auth {
            me,
            incarnation,
            secret,
            rng,
            outbound: BTreeMap::new(),
            inbound: BTreeMap::new(),
            pending: VecDeque::new(),
            stats: NetStats::default(),
        }
    }

    pub(crate) fn stats(&self) -> NetStats {
        NetStats {
            pending: self.pending.len(),
            authenticated: self.inbound.len(),
            ..self.stats
        }
    }

    /// The key our frames to `peer` are signed with, once our handshake completed.
    pub(crate) fn sealer(&self, peer: u32) -> Option<Sealer> {
        match self.outbound.get(&peer) {
            Some(Outbound::Ready(sealer)) => Some(*sealer),
            _ => None,
        }
    }

    /// Whether a `Hello` to `peer` is due: none sent yet (`retry` false), or one is unanswered
    /// (`retry` true: the caller's retransmission tick).
    pub(crate) fn hello_due(&self, peer: u32, retry: bool) -> bool {
        match self.outbound.get(&peer) {
            None => true,
            Some(Outbound::Hello(_)) => retry,
            Some(Outbound::Ready(_)) => false,
        }
    }

    /// Our `Hello` to `peer` (the same nonce until it is answered).
    pub(crate) fn hello(&mut self, peer: u32) -> Vec<u8> {
        let nonce = match self.outbound.get(&peer) {
            Some(Outbound::Hello(nonce)) => *nonce,
            _ => {
                let nonce = self.nonce();
                self.outbound.insert(peer, Outbound::Hello(nonce));
                nonce
            }
        };
        encode(&Packet::Hello {
            from: self.me,
            to: peer,
            incarnation: self.incarnation,
            nonce,
            pad: vec![0; HELLO_PAD],
        })
    }

    /// Our frames to `peer` need a new handshake (we declared it down, or it restarted).
    pub(crate) fn forget(&mut self, peer: u32) {
        self.outbound.remove(&peer);
    }

    fn nonce(&mut self) -> Nonce {
        let mut nonce = [0; 16];
        self.rng.fill_bytes(&mut nonce);
        nonce
    }

    fn session_key(&self, initiator: End, responder: End) -> Key {
        self.secret.mac("session key", initiator, responder)
    }

    fn proof(&self, initiator: End, responder: End) -> Key {
        self.secret.mac("welcome proof", initiator, responder)
    }

    fn reject(&mut self, reason: &'static str, from: Option<u32>) -> Opened {
        self.stats.rejected += 1;
        Opened::Dropped { reason, from }
    }

    /// Makes sense of one datagram.
    pub(crate) fn open(&mut self, bytes: &[u8]) -> Opened {
        let packet = match wire::decode::<Packet>(bytes) {
            Ok(packet) => packet,
            Err(_) => return self.reject("bad-packet", None),
        };
        match packet {
            Packet::Hello {
                from,
                to,
                incarnation,
                nonce,
                pad,
            } => {
                if to != self.me || from == self.me || incarnation == 0 || pad.len() < HELLO_PAD {
                    return self.reject("bad-hello", Some(from));
                }
                self.stats.hellos += 1;
                Opened::Answer(encode(&self.welcome(from, incarnation, nonce)))
            }
            Packet::Welcome {
                from,
                to,
                incarnation,
                nonce,
                echo,
                proof,
            } => {
                let asked =
                    matches!(self.outbound.get(&from), Some(Outbound::Hello(n)) if *n == echo);
                if to != self.me || !asked {
                    return self.reject("unexpected-welcome", Some(from));
                }
                if self
                    .inbound
                    .get(&from)
                    .is_some_and(|i| incarnation < i.current.incarnation)
                {
                    // Sent by an incarnation that has since restarted (the new one has no
                    // pending entry for it); the new one's answer to the same hello follows.
                    return Opened::Dropped {
                        reason: "stale-welcome",
                        from: Some(from),
                    };
                }
                let initiator = (self.me, self.incarnation, echo);
                let responder = (from, incarnation, nonce);
                if blake3::Hash::from(proof) != blake3::Hash::from(self.proof(initiator, responder))
                {
                    return self.reject("bad-proof", Some(from));
                }
                let key = self.session_key(initiator, responder);
                self.outbound.insert(
                    from,
                    Outbound::Ready(Sealer {
                        from: self.me,
                        id: echo,
                        key,
                        peer_incarnation: incarnation,
                    }),
                );
                self.stats.handshakes += 1;
                Opened::Ready(from, incarnation)
            }
            Packet::Data {
                from,
                key,
                frame,
                tag,
            } => self.open_data(from, key, &frame, tag),
        }
    }

    /// The `Welcome` for a `Hello`; a repeated `Hello` gets the same one.
    fn welcome(&mut self, from: u32, incarnation: u64, nonce: Nonce) -> Packet {
        if let Some(p) = self
            .pending
            .iter()
            .find(|p| p.from == from && p.nonce == nonce && p.key.incarnation == incarnation)
        {
            return p.welcome.clone();
        }
        let ours = self.nonce();
        let initiator = (from, incarnation, nonce);
        let responder = (self.me, self.incarnation, ours);
        let welcome = Packet::Welcome {
            from: self.me,
            to: from,
            incarnation: self.incarnation,
            nonce: ours,
            echo: nonce,
            proof: self.proof(initiator, responder),
        };
        if self.pending.len() >= PENDING_LIMIT {
            self.pending.pop_front();
            self.stats.evicted += 1;
        }
        self.pending.push_back(Pending {
            from,
            nonce,
            key: InKey {
                id: nonce,
                key: self.session_key(initiator, responder),
                incarnation,
            },
            welcome: welcome.clone(),
        });
        welcome
    }

    fn open_data(&mut self, from: u32, id: Nonce, frame: &[u8], tag: Key) -> Opened {
        let known = self.inbound.get(&from).and_then(|i| {
            std::iter::once(i.current)
                .chain(i.previous)
                .find(|k| k.id == id)
        });
        let (key, promote) = match known {
            Some(key) => (key, None),
            None => match self
                .pending
                .iter()
                .position(|p| p.from == from && p.nonce == id)
            {
                Some(at) => (self.pending[at].key, Some(at)),
                None => return self.reject("unknown-key", Some(from)),
            },
        };
        if blake3::Hash::from(tag) != blake3::keyed_hash(&key.key, frame) {
            return self.reject("bad-mac", Some(from));
        }
        if let Some(at) = promote {
            if !self.inbound.contains_key(&from) && self.inbound.len() >= PEER_LIMIT {
                return Opened::Dropped {
                    reason: "peer-table-full",
                    from: Some(from),
                };
            }
            self.pending.remove(at);
            let previous = self.inbound.get(&from).map(|i| i.current);
            self.inbound.insert(
                from,
                Inbound {
                    current: key,
                    previous,
                },
            );
        }
        // Authentic from here on: what follows is the session's to judge, not an attack.
        match wire::decode::<Frame>(frame) {
            Ok(f) if f.from != from => Opened::Dropped {
                reason: "bad-peer",
                from: Some(from),
            },
            Ok(f) if f.from_incarnation != key.incarnation => Opened::Dropped {
                reason: "bad-incarnation",
                from: Some(from),
            },
            Ok(f) => {
                // The peer restarted since it answered our handshake (a welcome from the old
                // incarnation can arrive after the restart): the new one cannot check our
                // frames, so we handshake again.
                if matches!(self.outbound.get(&from),
                    Some(Outbound::Ready(s)) if s.peer_incarnation < key.incarnation)
                {
                    self.outbound.remove(&from);
                }
                Opened::Frame(f)
            }
            Err(_) => Opened::Dropped {
                reason: "bad-frame",
                from: Some(from),
            },
        }
    }
}

/// Handshake packets are small and fixed in shape; they always encode.
fn encode(packet: &Packet) -> Vec<u8> {
    wire::encode(packet).unwrap_or_default()
}

#[cfg(test)]
mod tests;
