//! Decoding a datagram never allocates more than the datagram holds, whatever its length
//! prefixes claim. Its own test binary with one test, so the counted allocator sees only the
//! decoder (the test harness's threads are idle while it runs).

use std::alloc::System;

use groundhog_runtime::wire::{decode, encode, Frame, Wire, MAX_FRAME};
use groundhog_runtime::Pid;
use rand::{Rng, RngCore, SeedableRng};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated while decoding `bytes` (the sum of all allocations, so at least the peak).
fn decode_cost(bytes: &[u8]) -> (bool, usize) {
    let region = Region::new(GLOBAL);
    let decoded = decode::<Frame>(bytes);
    let change = region.change();
    let ok = decoded.is_ok();
    drop(decoded);
    (
        ok,
        change.bytes_allocated + change.bytes_reallocated.max(0) as usize,
    )
}

/// What a datagram may cost: its own size twice over (the payload and an error message) and
/// a little for the frame's fixed parts.
fn bound(bytes: &[u8]) -> usize {
    2 * bytes.len() + 1024
}

fn pid() -> Pid {
    Pid {
        node: 1,
        incarnation: 2,
        id: 3,
    }
}

fn frame(payload: Vec<u8>) -> Frame {
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
            from: pid(),
            to: pid(),
            payload,
        }],
    }
}

#[test]
fn decoding_allocates_no_more_than_the_datagram_holds() {
    // A payload length prefix claiming far more than follows (decoded as a sequence of u8,
    // serde preallocated 1 MiB for it).
    let mut bytes = encode(&frame(Vec::new())).unwrap();
    assert_eq!(
        bytes.pop(),
        Some(0),
        "the empty payload's length ends the frame"
    );
    for claim in [1u64 << 40, 1 << 20, MAX_FRAME as u64, 4_000] {
        let mut lying = bytes.clone();
        lying.push(253);
        lying.extend_from_slice(&claim.to_le_bytes());
        let (ok, cost) = decode_cost(&lying);
        assert!(!ok, "a {claim}-byte claim decoded");
        assert!(
            cost <= bound(&lying),
            "a {}-byte datagram claiming {claim} bytes cost {cost} bytes to decode",
            lying.len()
        );
    }
    // A message count claiming more messages than follow (a frame batches several).
    let empty = Frame {
        seq: 0,
        msgs: Vec::new(),
        ..frame(Vec::new())
    };
    let mut bytes = encode(&empty).unwrap();
    assert_eq!(
        bytes.pop(),
        Some(0),
        "the empty message count ends the frame"
    );
    for claim in [1u64 << 40, 1 << 20, 4_000] {
        let mut lying = bytes.clone();
        lying.push(253);
        lying.extend_from_slice(&claim.to_le_bytes());
        let (ok, cost) = decode_cost(&lying);
        assert!(!ok, "a claim of {claim} messages decoded");
        assert!(
            cost <= bound(&lying),
            "a {}-byte datagram claiming {claim} messages cost {cost} bytes to decode",
            lying.len()
        );
    }
    // A full-size honest frame costs about its size.
    let big = encode(&frame(vec![7; MAX_FRAME - 600])).unwrap();
    let (ok, cost) = decode_cost(&big);
    assert!(ok && cost <= bound(&big), "{cost} bytes for {}", big.len());
    // Random bytes and mutated frames.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let valid = encode(&frame(vec![1, 2, 3])).unwrap();
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
            b
        };
        let (_, cost) = decode_cost(&bytes);
        assert!(
            cost <= bound(&bytes),
            "{cost} bytes to decode {} bytes: {bytes:?}",
            bytes.len()
        );
    }
}
