//! Sending, calling and replying: the message paths, local and remote.

use futures::channel::oneshot;

use super::{Node, State};
use crate::mailbox::{Payload, Refused, Signal};
use crate::rt::{self, Duration};
use crate::session::Unqueued;
use crate::trace::Digest;
use crate::wire::{self, Wire, WireError, MAX_PAYLOAD};
use crate::{event, CallError, Message, Pid, Ref, SendError};

/// The longest a buggified caller waits after its reply arrived (`call-reply-delay`).
const REPLY_DELAY_MAX: Duration = Duration::from_millis(50);

/// Encodes a user message for the network, within the payload limit.
pub(super) fn encode<T: Message>(to: Pid, msg: T) -> Result<(Vec<u8>, T), SendError<T>> {
    match wire::encode(&msg) {
        Ok(bytes) if bytes.len() <= MAX_PAYLOAD => Ok((bytes, msg)),
        Ok(bytes) => Err(SendError::TooLarge {
            to,
            size: bytes.len(),
            msg,
        }),
        Err(WireError::Oversized(size)) => Err(SendError::TooLarge { to, size, msg }),
        Err(WireError::Undecodable(error)) => Err(SendError::Encode { to, error, msg }),
    }
}

fn take_back<T: Message>(payload: Payload) -> T {
    match payload {
        Payload::Local(b) => *b
            .downcast::<T>()
            .expect("a refused payload is the one sent"),
        Payload::Remote(_) => unreachable!("local sends carry local payloads"),
    }
}

impl State {
    pub(crate) fn send<T: Message>(
        &mut self,
        from: Pid,
        to: Pid,
        msg: T,
    ) -> Result<(), SendError<T>> {
        if self.is_local(to) {
            event!("send", node = from.node, from = %from, to = %to);
            let payload = Payload::Local(Box::new(msg));
            return match self.deliver(to, Signal::Msg { from, payload }) {
                Ok(()) => Ok(()),
                Err(Refused::Full(Signal::Msg { payload, .. })) => Err(SendError::Full {
                    to,
                    msg: take_back(payload),
                }),
                Err(Refused::Closed(Signal::Msg { payload, .. })) => Err(SendError::NoProc {
                    to,
                    msg: take_back(payload),
                }),
                Err(_) => unreachable!("the mailbox hands back what it was given"),
            };
        }
        let (payload, msg) = encode(to, msg)?;
        let digest = Digest::of(&payload);
        match self.try_route(to.node, Wire::Send { from, to, payload }) {
            // Backpressure: the outbound queue to `to`'s node is at its bound.
            Err(Unqueued::Full) => Err(SendError::Full { to, msg }),
            // To a node known down the message is dropped (traced), as in Erlang.
            Ok(()) | Err(Unqueued::Down) => {
                event!("send", node = from.node, from = %from, to = %to, digest = %digest);
                Ok(())
            }
        }
    }
}

/// Cleans up a call however it ends (reply, error, timeout, or the caller being killed).
struct CallGuard<'a> {
    node: &'a Node,
    reference: Ref,
    deadline: Option<rt::Instant>,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        let mut st = self.node.lock();
        st.calls.remove(&self.reference);
        if let Some(at) = self.deadline {
            st.remove_deadline(at, self.reference);
        }
        st.demonitor(self.reference);
    }
}

impl Node {
    /// Sends `msg` from `from` to `to`. Local sends fail with the message handed back; remote
    /// ones fail if the message cannot be encoded within the frame limit, or with
    /// `SendError::Full` when the outbound queue to `to`'s node is at its bound (backpressure).
    /// A send to a node known down is dropped and traced; that loss shows through monitors.
    pub fn send<T: Message>(&self, from: Pid, to: Pid, msg: T) -> Result<(), SendError<T>> {
        self.lock().send(from, to, msg)
    }

    /// Calls `to` on behalf of `from`: monitors it for the duration, and returns the reply or
    /// the first of timeout, `NoProc`, `NodeDown` or `Exited`. A reply after that is discarded.
    pub async fn call<Req: Message, Resp: Message>(
        &self,
        from: Pid,
        to: Pid,
        request: Req,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let (tx, rx) = oneshot::channel();
        let (reference, deadline) = {
            let mut st = self.lock();
            let reference = st.make_ref();
            st.calls.insert(reference, tx);
            st.monitor(reference, from, to, true);
            if st.calls.contains_key(&reference) {
                let sent = if st.is_local(to) {
                    event!("send", node = from.node, from = %from, to = %to, call = %reference);
                    let payload = Payload::Local(Box::new(request));
                    let call = Signal::Call {
                        from,
                        reference,
                        payload,
                    };
                    st.deliver(to, call)
                        .map_err(|_| CallError::NotSent("mailbox full".into()))
                } else {
                    match encode(to, request) {
                        Ok((payload, _)) => {
                            event!("send", node = from.node, from = %from, to = %to, call = %reference, digest = %Digest::of(&payload));
                            let call = Wire::Call {
                                from,
                                to,
                                reference,
                                payload,
                            };
                            match st.try_route(to.node, call) {
                                Err(Unqueued::Full) => {
                                    Err(CallError::NotSent("outbound queue full".into()))
                                }
                                Ok(()) | Err(Unqueued::Down) => Ok(()),
                            }
                        }
                        Err(e) => Err(CallError::NotSent(e.to_string())),
                    }
                };
                if let Err(e) = sent {
                    st.calls.remove(&reference);
                    st.demonitor(reference);
                    return Err(e);
                }
            }
            // Still pending (not already failed by a NoProc monitor): it can time out.
            let deadline = if st.calls.contains_key(&reference) {
                st.add_deadline(self, reference, from, to, timeout)
            } else {
                None
            };
            (reference, deadline)
        };
        let _guard = CallGuard {
            node: self,
            reference,
            deadline,
        };
        // The node's deadline sweeper answers `Timeout` through the same channel.
        let payload = match rx.await {
            Ok(Ok(payload)) => payload,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(CallError::NoProc),
        };
        // Buggify: the caller wakes late with its reply (a slow scheduler). It is blocked in
        // this call, so nothing it receives meanwhile is reordered.
        if let Some(wait) = crate::buggify::delay("call-reply-delay", REPLY_DELAY_MAX) {
            rt::sleep(wait).await;
        }
        match payload {
            Payload::Local(b) => b
                .downcast::<Resp>()
                .map(|r| *r)
                .map_err(|_| CallError::BadReply("unexpected reply type".into())),
            Payload::Remote(bytes) => {
                wire::decode(&bytes).map_err(|e| CallError::BadReply(e.to_string()))
            }
        }
    }

    pub(crate) fn reply<T: Message>(&self, caller: Pid, reference: Ref, value: T) {
        let mut st = self.lock();
        if st.is_local(caller) {
            st.complete_call(reference, Payload::Local(Box::new(value)));
            return;
        }
        // The call's monitor, set up by the request, ends with the reply (nothing is sent for it).
        st.drop_target_side(reference);
        match encode(caller, value) {
            Ok((payload, _)) => st.route(
                caller.node,
                Wire::Reply {
                    to: caller,
                    reference,
                    payload,
                },
            ),
            Err(e) => {
                let error = e.to_string();
                event!("drop", node = st.index, reference = %reference, reason = "reply-unencodable", msg = error.as_str());
            }
        }
    }
}
