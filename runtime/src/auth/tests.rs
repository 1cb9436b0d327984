//! The handshake and frame authentication, without an executor: two `Auth`s passing datagrams
//! by hand, and a stranger who does not know the secret.

use rand::SeedableRng;

use super::*;
use crate::wire::Wire;
use crate::Pid;

fn secret(s: &str) -> Secret {
    Secret::new(format!("{s} sixteen bytes at least")).unwrap()
}

fn auth(me: u32, incarnation: u64, secret: &Secret) -> Auth {
    let rng = ChaCha8Rng::seed_from_u64(u64::from(me) * 1000 + incarnation);
    Auth::new(me, incarnation, secret.clone(), rng)
}

fn frame(from: u32, incarnation: u64, seq: u64) -> Frame {
    let pid = Pid {
        node: from,
        incarnation,
        id: 1,
    };
    let body = (seq > 0).then(|| Wire::Send {
        from: pid,
        to: pid,
        payload: vec![7; 3],
    });
    Frame::opening(from, incarnation, seq, body)
}

fn answer(opened: Opened) -> Vec<u8> {
    match opened {
        Opened::Answer(bytes) => bytes,
        other => panic!("expected an answer, got {other:?}"),
    }
}

fn reason(opened: Opened) -> &'static str {
    match opened {
        Opened::Dropped { reason, .. } => reason,
        other => panic!("expected a drop, got {other:?}"),
    }
}

/// `a` completes its handshake with `b`: a hello, b's welcome; the sealer that signs a's frames.
fn handshake(a: &mut Auth, b: &mut Auth) -> Sealer {
    let hello = a.hello(b.me);
    let welcome = answer(b.open(&hello));
    assert!(matches!(a.open(&welcome), Opened::Ready(peer, _) if peer == b.me));
    a.sealer(b.me).expect("ready after the welcome")
}

#[test]
fn nodes_with_the_secret_authenticate_and_exchange_frames() {
    let s = secret("cluster");
    let (mut a, mut b) = (auth(0, 1, &s), auth(1, 1, &s));
    assert!(a.sealer(1).is_none() && a.hello_due(1, false));
    let sealer = handshake(&mut a, &mut b);
    assert_eq!(
        b.stats().pending,
        1,
        "the responder waits for the first frame"
    );
    let f = frame(0, 1, 1);
    match b.open(&sealer.seal(&f).unwrap()) {
        Opened::Frame(got) => assert_eq!(got, f),
        other => panic!("{other:?}"),
    }
    let stats = b.stats();
    assert_eq!(
        (stats.pending, stats.authenticated, stats.rejected),
        (0, 1, 0)
    );
    assert_eq!(a.stats().handshakes, 1);
    // Later frames use the promoted key.
    assert!(matches!(
        b.open(&sealer.seal(&frame(0, 1, 2)).unwrap()),
        Opened::Frame(_)
    ));
}

#[test]
fn a_node_with_the_wrong_secret_is_refused_both_ways() {
    let (good, bad) = (secret("cluster"), secret("guess"));
    // As initiator: its hello is answered (hellos are unauthenticated), but the welcome's proof
    // names the real secret, and whatever it signs with its own key is refused.
    let (mut a, mut stranger) = (auth(0, 1, &good), auth(7, 1, &bad));
    let hello = stranger.hello(0);
    let welcome = answer(a.open(&hello));
    assert_eq!(reason(stranger.open(&welcome)), "bad-proof");
    // It forges a ready key anyway: frames under it fail the MAC.
    let forged = Sealer {
        from: 7,
        id: match wire::decode::<Packet>(&hello).unwrap() {
            Packet::Hello { nonce, .. } => nonce,
            _ => unreachable!(),
        },
        key: [0; 32],
        peer_incarnation: 1,
    };
    assert_eq!(
        reason(a.open(&forged.seal(&frame(7, 1, 1)).unwrap())),
        "bad-mac"
    );
    let stats = a.stats();
    assert_eq!(stats.authenticated, 0, "no peer state for the stranger");
    assert_eq!(stats.rejected, 1);
    // As responder: its welcome does not carry a proof `a` accepts.
    let mut stranger = auth(7, 1, &bad);
    let hello = a.hello(7);
    let welcome = answer(stranger.open(&hello));
    assert_eq!(reason(a.open(&welcome)), "bad-proof");
    assert!(a.sealer(7).is_none());
}

#[test]
fn spoofed_frames_are_refused_and_create_no_peer() {
    let s = secret("cluster");
    let (mut a, mut b) = (auth(0, 1, &s), auth(1, 1, &s));
    let sealer = handshake(&mut a, &mut b);
    assert!(matches!(
        b.open(&sealer.seal(&frame(0, 1, 1)).unwrap()),
        Opened::Frame(_)
    ));
    // A frame claiming to come from node 0 with a made-up key, and a genuine one re-signed
    // with the wrong key: the audit's spoofed `Exit(Kill)` would be either.
    let mut spoof = Packet::Data {
        from: 0,
        key: [9; 16],
        frame: wire::encode(&frame(0, 1, 2)).unwrap(),
        tag: [0; 32],
    };
    assert_eq!(
        reason(b.open(&wire::encode(&spoof).unwrap())),
        "unknown-key"
    );
    if let Packet::Data { key, .. } = &mut spoof {
        *key = sealer.id;
    }
    assert_eq!(reason(b.open(&wire::encode(&spoof).unwrap())), "bad-mac");
    // A genuine packet with one flipped bit in the frame.
    let mut bytes = sealer.seal(&frame(0, 1, 3)).unwrap();
    let at = bytes.len() - 40;
    bytes[at] ^= 1;
    assert!(matches!(reason(b.open(&bytes)), "bad-mac" | "bad-packet"));
    // A fake node 7 that never handshook.
    let fake = Packet::Data {
        from: 7,
        key: [1; 16],
        frame: wire::encode(&frame(7, 1, 1)).unwrap(),
        tag: [0; 32],
    };
    assert_eq!(reason(b.open(&wire::encode(&fake).unwrap())), "unknown-key");
    assert_eq!(b.stats().authenticated, 1);
    assert_eq!(b.stats().rejected, 4);
}

#[test]
fn an_authenticated_peer_cannot_speak_for_another_node_or_incarnation() {
    let s = secret("cluster");
    let (mut a, mut b) = (auth(0, 1, &s), auth(1, 1, &s));
    let sealer = handshake(&mut a, &mut b);
    assert_eq!(
        reason(b.open(&sealer.seal(&frame(2, 1, 1)).unwrap())),
        "bad-peer"
    );
    assert_eq!(
        reason(b.open(&sealer.seal(&frame(0, 9, 1)).unwrap())),
        "bad-incarnation"
    );
}

#[test]
fn a_flood_of_hellos_keeps_the_pending_table_bounded_and_never_amplifies() {
    let s = secret("cluster");
    let mut b = auth(1, 1, &s);
    let mut stranger = auth(5, 1, &secret("other"));
    for n in 0..10 * PENDING_LIMIT as u32 {
        let hello = stranger.hello(1);
        stranger.forget(1);
        let welcome = answer(b.open(&hello));
        assert!(
            welcome.len() <= hello.len(),
            "a welcome larger than its hello"
        );
        // Each hello claims a different node: no peer state either way.
        let _ = n;
    }
    let stats = b.stats();
    assert_eq!(stats.pending, PENDING_LIMIT);
    assert_eq!(stats.evicted, 9 * PENDING_LIMIT as u64);
    assert_eq!(stats.authenticated, 0);
    // A repeated hello gets the same welcome and no second entry.
    let hello = stranger.hello(1);
    assert_eq!(answer(b.open(&hello)), answer(b.open(&hello)));
}

#[test]
fn welcomes_nobody_asked_for_and_replayed_ones_are_refused() {
    let s = secret("cluster");
    let (mut a, mut b) = (auth(0, 1, &s), auth(1, 1, &s));
    let hello = a.hello(1);
    let welcome = answer(b.open(&hello));
    assert!(matches!(a.open(&welcome), Opened::Ready(1, _)));
    // Replayed after it was used, and after a new hello (a new nonce).
    assert_eq!(reason(a.open(&welcome)), "unexpected-welcome");
    a.forget(1);
    let _ = a.hello(1);
    assert_eq!(reason(a.open(&welcome)), "unexpected-welcome");
}

#[test]
fn frames_in_flight_across_a_re_handshake_still_count() {
    let s = secret("cluster");
    let (mut a, mut b) = (auth(0, 1, &s), auth(1, 1, &s));
    let old = handshake(&mut a, &mut b);
    let late = old.seal(&frame(0, 1, 2)).unwrap();
    assert!(matches!(
        b.open(&old.seal(&frame(0, 1, 1)).unwrap()),
        Opened::Frame(_)
    ));
    a.forget(1);
    let new = handshake(&mut a, &mut b);
    assert!(matches!(
        b.open(&new.seal(&frame(0, 1, 3)).unwrap()),
        Opened::Frame(_)
    ));
    assert!(
        matches!(b.open(&late), Opened::Frame(_)),
        "the previous key is still accepted"
    );
    // A restarted peer (new incarnation) handshakes afresh and is accepted under its new key.
    let mut a2 = auth(0, 2, &s);
    let restarted = handshake(&mut a2, &mut b);
    assert!(matches!(
        b.open(&restarted.seal(&frame(0, 2, 1)).unwrap()),
        Opened::Frame(_)
    ));
}

#[test]
fn secrets_are_checked_and_never_printed() {
    assert_eq!(Secret::new("short").unwrap_err(), SecretError::TooShort(5));
    assert_eq!(format!("{:?}", secret("x")), "Secret(..)");
    assert_eq!(
        Secret::from_env("GROUNDHOG_TEST_SURELY_UNSET_VARIABLE").unwrap_err(),
        SecretError::Missing("GROUNDHOG_TEST_SURELY_UNSET_VARIABLE".into())
    );
    assert_ne!(secret("a"), secret("b"));
}

/// Random bytes and mutated genuine packets into `open`: a drop, never a panic, and nothing
/// mutated is accepted as a frame unless it still carries a valid MAC.
#[test]
fn open_never_panics_on_hostile_datagrams() {
    use rand::{Rng, RngCore};
    let s = secret("cluster");
    let (mut a, mut b) = (auth(0, 1, &s), auth(1, 1, &s));
    let sealer = handshake(&mut a, &mut b);
    let genuine = [
        sealer.seal(&frame(0, 1, 1)).unwrap(),
        a.hello(1),
        answer(b.open(&auth(3, 1, &s).hello(1))),
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut accepted = 0;
    for _ in 0..20_000 {
        let bytes = if rng.gen_bool(0.3) {
            let mut bytes = vec![0u8; rng.gen_range(0..300)];
            rng.fill_bytes(&mut bytes);
            bytes
        } else {
            let mut bytes = genuine[rng.gen_range(0..genuine.len())].clone();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..bytes.len());
                bytes[i] = rng.gen();
            }
            bytes
        };
        if genuine.contains(&bytes) {
            continue;
        }
        if let Opened::Frame(_) = b.open(&bytes) {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 0, "a mutated frame passed its MAC");
    assert!(b.stats().rejected > 10_000);
}

/// A welcome from an incarnation that has since restarted arrives after the restart (long
/// latency): taken, it would sign our frames with a key the new incarnation never had. Once the
/// new incarnation's own frames arrive, the stale key is dropped and a new handshake starts;
/// a stale welcome arriving after those frames is refused outright.
#[test]
fn a_welcome_from_a_restarted_peer_does_not_stick() {
    let s = secret("cluster");
    let mut a = auth(0, 1, &s);
    let mut old_b = auth(1, 1, &s);
    let mut new_b = auth(1, 2, &s);
    let hello = a.hello(1);
    let stale = answer(old_b.open(&hello));
    let fresh = answer(new_b.open(&hello));
    assert!(matches!(a.open(&stale), Opened::Ready(1, _)));
    // new_b's own handshake with a, then its first frame: a learns of incarnation 2.
    let b_sealer = handshake(&mut new_b, &mut a);
    assert!(matches!(
        a.open(&b_sealer.seal(&frame(1, 2, 1)).unwrap()),
        Opened::Frame(_)
    ));
    assert!(a.sealer(1).is_none(), "the stale key is forgotten");
    assert!(a.hello_due(1, false));
    // A second stale welcome, for the new hello, is refused; the new incarnation's is taken.
    let hello = a.hello(1);
    let stale = answer(old_b.open(&hello));
    assert_eq!(reason(a.open(&stale)), "stale-welcome");
    let fresh_again = answer(new_b.open(&hello));
    assert!(matches!(a.open(&fresh_again), Opened::Ready(1, _)));
    let sealer = a.sealer(1).unwrap();
    assert!(matches!(
        new_b.open(&sealer.seal(&frame(0, 1, 1)).unwrap()),
        Opened::Frame(_)
    ));
    let _ = fresh;
}
