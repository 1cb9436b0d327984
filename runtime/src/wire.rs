//! The distribution protocol's frames and their codec.
//!
//! A frame is one datagram: the sender's node, incarnation and session epoch, what it believes the
//! receiver's incarnation is, a cumulative acknowledgement, and at most one sequenced message.
//! Decoding is bounded by [`MAX_FRAME`]; anything oversized, truncated or undecodable is an error
//! the caller drops and traces, never a panic.

use bincode::Options;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::{ExitReason, Pid, Ref};

/// The largest frame, in bytes, a node sends or accepts (fits a UDP datagram).
pub const MAX_FRAME: usize = 60_000;

/// The largest encoded user message; leaves room for the frame header.
pub const MAX_PAYLOAD: usize = MAX_FRAME - 512;

/// How many encoded bytes of messages one frame carries at most: a frame that would grow past it
/// closes and the rest go in the next. A single message bigger than this still goes alone.
pub(crate) const BATCH_BYTES: usize = MAX_PAYLOAD;

/// One message between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Wire {
    Send {
        from: Pid,
        to: Pid,
        #[serde(with = "bytes")]
        payload: Vec<u8>,
    },
    Call {
        from: Pid,
        to: Pid,
        reference: Ref,
        #[serde(with = "bytes")]
        payload: Vec<u8>,
    },
    Reply {
        to: Pid,
        reference: Ref,
        #[serde(with = "bytes")]
        payload: Vec<u8>,
    },
    /// The callee's mailbox was full: the call fails at once instead of timing out.
    CallRefused {
        to: Pid,
        reference: Ref,
    },
    Link {
        from: Pid,
        to: Pid,
    },
    Unlink {
        from: Pid,
        to: Pid,
    },
    Exit {
        from: Pid,
        to: Pid,
        reason: ExitReason,
        linked: bool,
    },
    Monitor {
        reference: Ref,
        watcher: Pid,
        target: Pid,
    },
    Demonitor {
        reference: Ref,
        target: Pid,
    },
    Down {
        reference: Ref,
        watcher: Pid,
        pid: Pid,
        reason: ExitReason,
    },
    /// A message to whatever process is registered under `name` on the receiving node.
    SendName {
        from: Pid,
        name: String,
        #[serde(with = "bytes")]
        payload: Vec<u8>,
    },
}

impl Wire {
    /// A short name for traces.
    pub fn kind(&self) -> &'static str {
        match self {
            Wire::Send { .. } => "send",
            Wire::Call { .. } => "call",
            Wire::Reply { .. } => "reply",
            Wire::CallRefused { .. } => "call-refused",
            Wire::Link { .. } => "link",
            Wire::Unlink { .. } => "unlink",
            Wire::Exit { .. } => "exit",
            Wire::Monitor { .. } => "monitor",
            Wire::Demonitor { .. } => "demonitor",
            Wire::Down { .. } => "down",
            Wire::SendName { .. } => "send-name",
        }
    }
}

/// A frame's messages, decoded one by one as the datagram holds them: a hostile length prefix
/// never makes the decoder reserve room for messages that are not there.
mod msgs {
    use serde::de::{Deserializer, SeqAccess, Visitor};
    use serde::ser::{SerializeSeq, Serializer};

    use super::Wire;

    pub fn serialize<S: Serializer>(msgs: &[Wire], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(msgs.len()))?;
        for m in msgs {
            seq.serialize_element(m)?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Wire>, D::Error> {
        d.deserialize_seq(Msgs)
    }

    struct Msgs;

    impl<'de> Visitor<'de> for Msgs {
        type Value = Vec<Wire>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a sequence of messages")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Wire>, A::Error> {
            let mut out = Vec::new();
            while let Some(m) = seq.next_element()? {
                out.push(m);
            }
            Ok(out)
        }
    }
}

/// Payloads as byte strings, not sequences of `u8` (the same bytes on the wire). Decoded as a
/// sequence, a hostile length prefix makes serde preallocate up to 1 MiB before the datagram
/// runs out; as a byte string the length is checked against the frame limit and the datagram
/// first, so decoding never allocates more than the datagram holds.
pub(crate) mod bytes {
    use serde::de::{Deserializer, Error, SeqAccess, Visitor};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(Bytes)
    }

    struct Bytes;

    impl<'de> Visitor<'de> for Bytes {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            // Self-describing formats may hand bytes over as a sequence; grow as they come.
            let mut out = Vec::new();
            while let Some(b) = seq.next_element()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

/// One datagram between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    pub from: u32,
    pub from_incarnation: u64,
    /// The sender's outbound session; a new epoch means everything unacknowledged was dropped.
    pub epoch: u64,
    /// The receiver's outbound epoch the sender had heard when `epoch` began (0: none). A node
    /// that declared the sender down refuses epochs based on one from before its node-down.
    pub base_epoch: u64,
    /// The receiver incarnation the sender believes in; 0 when it does not know yet.
    pub to_incarnation: u64,
    /// The receiver's outbound epoch this acknowledgement refers to.
    pub ack_epoch: u64,
    /// Every sequence number up to this one was delivered.
    pub ack: u64,
    /// The receiver's outbound epoch that the sender has declared down and so refuses (0: none).
    /// The receiver must start a new epoch: without this, a receiver that had itself declared
    /// the sender down earlier (flapping partitions) would keep sending in the refused epoch.
    pub refused_epoch: u64,
    /// The sequence number of the first of `msgs`; the others follow it in order. 0 for a
    /// frame that carries no message (a heartbeat, an acknowledgement).
    pub seq: u64,
    /// Everything queued for the receiver since the last frame, up to `BATCH_BYTES`: one
    /// datagram carries a burst of sends, calls and signals to one peer.
    #[serde(with = "msgs")]
    pub msgs: Vec<Wire>,
}

#[cfg(test)]
impl Frame {
    /// For tests: the first frame of `from`'s first session, with nothing heard from the
    /// receiver yet, carrying `body` as message `seq` (0: none).
    pub(crate) fn opening(from: u32, from_incarnation: u64, seq: u64, body: Option<Wire>) -> Frame {
        Frame {
            from,
            from_incarnation,
            epoch: 1,
            base_epoch: 0,
            to_incarnation: 0,
            ack_epoch: 0,
            ack: 0,
            refused_epoch: 0,
            seq,
            msgs: body.into_iter().collect(),
        }
    }
}

/// Why bytes were not a frame (or a payload).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("oversized: {0} bytes")]
    Oversized(usize),
    #[error("undecodable: {0}")]
    Undecodable(String),
}

fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_limit(MAX_FRAME as u64)
        .reject_trailing_bytes()
}

/// The encoded size of `value` (what [`encode`] would produce), without encoding it.
pub(crate) fn encoded_len<T: Serialize>(value: &T) -> usize {
    options()
        .serialized_size(value)
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    let bytes = options().serialize(value).map_err(|e| match *e {
        bincode::ErrorKind::SizeLimit => WireError::Oversized(MAX_FRAME + 1),
        other => WireError::Undecodable(other.to_string()),
    })?;
    if bytes.len() > MAX_FRAME {
        return Err(WireError::Oversized(bytes.len()));
    }
    Ok(bytes)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    if bytes.len() > MAX_FRAME {
        return Err(WireError::Oversized(bytes.len()));
    }
    options()
        .deserialize(bytes)
        .map_err(|e| WireError::Undecodable(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, RngCore, SeedableRng};

    fn sample() -> Frame {
        let pid = Pid {
            node: 1,
            incarnation: 2,
            id: 3,
        };
        Frame {
            from: 1,
            from_incarnation: 2,
            epoch: 1,
            base_epoch: 0,
            to_incarnation: 0,
            ack_epoch: 1,
            ack: 4,
            refused_epoch: 0,
            seq: 5,
            msgs: vec![Wire::Send {
                from: pid,
                to: pid,
                payload: vec![1, 2, 3],
            }],
        }
    }

    #[test]
    fn frames_round_trip() {
        let f = sample();
        assert_eq!(decode::<Frame>(&encode(&f).unwrap()).unwrap(), f);
    }

    #[test]
    fn oversized_is_rejected_both_ways() {
        let big = vec![0u8; MAX_FRAME + 1];
        assert!(matches!(encode(&big), Err(WireError::Oversized(_))));
        assert!(matches!(
            decode::<Frame>(&big),
            Err(WireError::Oversized(_))
        ));
    }

    #[test]
    fn truncated_frames_are_errors() {
        let bytes = encode(&sample()).unwrap();
        for n in 0..bytes.len() {
            assert!(decode::<Frame>(&bytes[..n]).is_err(), "prefix {n} decoded");
        }
    }

    /// Decodes `bytes`; whatever decodes must re-encode within the datagram's size (a decoded
    /// structure is never larger than its input). The allocation bound itself is checked by
    /// `runtime/tests/wire_alloc.rs`, which counts the allocator.
    fn check_decode(bytes: &[u8]) -> bool {
        match decode::<Frame>(bytes) {
            Ok(frame) => {
                let again = encode(&frame).expect("a decoded frame re-encodes");
                assert!(again.len() <= bytes.len() && again.len() <= MAX_FRAME);
                true
            }
            Err(_) => false,
        }
    }

    fn frame_pid() -> Pid {
        Pid {
            node: 1,
            incarnation: 2,
            id: 3,
        }
    }

    /// Random bytes and mutated valid frames into the decoder: errors, never a panic, and
    /// whatever decodes re-encodes within the datagram's size. Some mutations must decode, or
    /// the success path is not being tested.
    #[test]
    fn frame_fuzz_never_panics_and_decodes_no_larger_than_its_input() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let valid = encode(&sample()).unwrap();
        let mut decoded = 0;
        for _ in 0..20_000 {
            let bytes = if rng.gen_bool(0.5) {
                let mut b = vec![0u8; rng.gen_range(0..200)];
                rng.fill_bytes(&mut b);
                b
            } else {
                let mut b = valid.clone();
                for _ in 0..rng.gen_range(1..4) {
                    let i = rng.gen_range(0..b.len());
                    b[i] = rng.gen();
                }
                if rng.gen_bool(0.2) {
                    b.truncate(rng.gen_range(0..b.len()));
                }
                b
            };
            decoded += usize::from(check_decode(&bytes));
        }
        assert!(decoded > 100, "only {decoded} inputs decoded");
    }

    /// Well-formed frames with hostile field values round-trip exactly; byte strings of any
    /// length up to past the limit never panic the decoder.
    #[test]
    fn hostile_frames_round_trip_and_any_bytes_decode_within_bounds() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

        let field = || {
            prop_oneof![
                0u64..4,
                Just(u64::MAX),
                (1u64 << 62)..u64::MAX,
                any::<u64>()
            ]
        };
        let payload = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            Just(vec![0u8; MAX_PAYLOAD]),
        ];
        let frame = (
            (field(), field(), field(), field()),
            (field(), field(), field(), field()),
            proptest::option::of(payload),
        )
            .prop_map(|((a, b, c, d), (e, f, g, h), payload)| Frame {
                from: a as u32,
                from_incarnation: a,
                epoch: b,
                base_epoch: c,
                to_incarnation: d,
                ack_epoch: e,
                ack: f,
                refused_epoch: g,
                seq: h,
                msgs: payload
                    .map(|payload| Wire::Send {
                        from: frame_pid(),
                        to: frame_pid(),
                        payload,
                    })
                    .into_iter()
                    .collect(),
            });
        let config = Config {
            cases: 256,
            failure_persistence: None,
            ..Config::default()
        };
        let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
        let mut runner = TestRunner::new_with_rng(config.clone(), rng.clone());
        runner
            .run(&frame, |frame| {
                let bytes = encode(&frame).unwrap();
                prop_assert!(bytes.len() <= MAX_FRAME);
                prop_assert_eq!(decode::<Frame>(&bytes).unwrap(), frame);
                Ok(())
            })
            .unwrap();
        let mut runner = TestRunner::new_with_rng(config, rng);
        let any_bytes = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..512),
            proptest::collection::vec(any::<u8>(), MAX_FRAME - 8..MAX_FRAME + 8),
        ];
        runner
            .run(&any_bytes, |bytes| {
                check_decode(&bytes);
                Ok(())
            })
            .unwrap();
    }
}
