//! What a running process sees: its [`Ctx`], the [`Event`]s it receives, and [`ReplyTo`] handles.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::{de::DeserializeOwned, Serialize};

use crate::mailbox::{Mailbox, Payload, Signal};
use crate::rt::{self, Duration};
use crate::{event, wire, CallError, ExitReason, Node, Pid, Ref, Registry, SendError, SpawnOpts};

/// Anything a process can send: local sends move the value, remote ones serialize it.
pub trait Message: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> Message for T {}

/// A request that names its reply type. [`Ctx::request`] returns exactly `Reply`, and
/// [`ReplyTo::answer`] accepts nothing else, so a caller expecting the wrong type is a compile
/// error instead of a run-time [`CallError::BadReply`]:
///
/// ```compile_fail
/// use groundhog_runtime::{Ctx, Pid, Request};
/// use groundhog_runtime::rt::Duration;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Balance(u32);
/// impl Request for Balance {
///     type Reply = u64;
/// }
///
/// async fn ask(ctx: &Ctx<()>, bank: Pid) {
///     let _: Result<String, _> = ctx.request(bank, Balance(7), Duration::from_secs(1)).await;
/// }
/// ```
pub trait Request: Message {
    type Reply: Message;
}

/// What a process receives.
#[derive(Debug)]
pub enum Event<M> {
    Msg {
        from: Pid,
        msg: M,
    },
    /// A request; answer it with [`ReplyTo::reply`], now or later.
    Call {
        from: Pid,
        msg: M,
        reply: ReplyTo,
    },
    /// An exit signal from a linked process (only while trapping exits).
    Exit {
        from: Pid,
        reason: ExitReason,
    },
    /// The one notification for a monitor.
    Down {
        reference: Ref,
        pid: Pid,
        reason: ExitReason,
    },
    Timer {
        reference: Ref,
        tag: u64,
    },
}

/// The right to answer one call. It can be kept and used later (a deferred reply), from the
/// process or from a task it started; a reply after the caller gave up is discarded.
#[derive(Clone)]
pub struct ReplyTo {
    node: Node,
    caller: Pid,
    reference: Ref,
}

impl ReplyTo {
    pub fn caller(&self) -> Pid {
        self.caller
    }

    pub fn reply<T: Message>(self, value: T) {
        self.node.reply(self.caller, self.reference, value);
    }

    /// Answers `request` with its own reply type (see [`Request`]).
    pub fn answer<R: Request>(self, request: &R, value: R::Reply) {
        let _ = request;
        self.reply(value);
    }
}

impl fmt::Debug for ReplyTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplyTo({} {})", self.caller, self.reference)
    }
}

/// A process's handle on itself and its node. `M` is the type of message it receives.
pub struct Ctx<M> {
    node: Node,
    pid: Pid,
    mailbox: Arc<Mailbox>,
    _msg: PhantomData<fn() -> M>,
}

impl<M: Message> Ctx<M> {
    pub(crate) fn new(node: Node, pid: Pid, mailbox: Arc<Mailbox>) -> Ctx<M> {
        Ctx {
            node,
            pid,
            mailbox,
            _msg: PhantomData,
        }
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The next event. A message that is not an `M` (or does not decode) is dropped and traced.
    pub async fn recv(&mut self) -> Event<M> {
        loop {
            let signal = self.mailbox.recv_where(|_| true).await;
            if let Some(event) = self.decode(signal) {
                return event;
            }
        }
    }

    /// The next event, or `None` after `timeout`.
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Option<Event<M>> {
        rt::timeout(timeout, self.recv()).await.ok()
    }

    /// Waits up to `timeout` for the exit signal from `pid`, leaving other events queued.
    pub async fn recv_exit_from(&mut self, pid: Pid, timeout: Duration) -> Option<ExitReason> {
        let wait = self
            .mailbox
            .recv_where(|s| matches!(s, Signal::Exit { from, .. } if *from == pid));
        match rt::timeout(timeout, wait).await {
            Ok(Signal::Exit { reason, .. }) => Some(reason),
            _ => None,
        }
    }

    /// Events waiting in the mailbox.
    pub fn pending(&self) -> usize {
        self.mailbox.len()
    }

    fn decode(&self, signal: Signal) -> Option<Event<M>> {
        let decode = |from: Pid, payload: Payload| -> Option<M> {
            let result = match payload {
                Payload::Local(b) => b
                    .downcast::<M>()
                    .map(|m| *m)
                    .map_err(|_| "wrong-type".to_string()),
                Payload::Remote(bytes) => wire::decode::<M>(&bytes).map_err(|e| e.to_string()),
            };
            match result {
                Ok(m) => Some(m),
                Err(why) => {
                    event!("drop", node = self.pid.node, from = %from, to = %self.pid, reason = "undecodable", msg = why.as_str());
                    None
                }
            }
        };
        Some(match signal {
            Signal::Msg { from, payload } => Event::Msg {
                from,
                msg: decode(from, payload)?,
            },
            Signal::Call {
                from,
                reference,
                payload,
            } => Event::Call {
                from,
                msg: decode(from, payload)?,
                reply: ReplyTo {
                    node: self.node.clone(),
                    caller: from,
                    reference,
                },
            },
            Signal::Exit { from, reason } => Event::Exit { from, reason },
            Signal::Down {
                reference,
                pid,
                reason,
            } => Event::Down {
                reference,
                pid,
                reason,
            },
            Signal::Timer { reference, tag } => Event::Timer { reference, tag },
        })
    }

    pub fn send<T: Message>(&self, to: Pid, msg: T) -> Result<(), SendError<T>> {
        self.node.send(self.pid, to, msg)
    }

    /// Sends to the process registered as `name` on node `node`; see [`Node::send_to_name`].
    pub fn send_to_name<T: Message>(
        &self,
        node: u32,
        name: &str,
        msg: T,
    ) -> Result<(), SendError<T>> {
        self.node.send_to_name(self.pid, node, name, msg)
    }

    pub async fn call<Req: Message, Resp: Message>(
        &self,
        to: Pid,
        request: Req,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        self.node.call(self.pid, to, request, timeout).await
    }

    /// A call whose reply type the request names (see [`Request`]).
    pub async fn request<R: Request>(
        &self,
        to: Pid,
        request: R,
        timeout: Duration,
    ) -> Result<R::Reply, CallError> {
        self.call(to, request, timeout).await
    }

    /// Calls the process `registry` knows as `name`, as OTP's `gen_server:call(Name, ...)` does
    /// with a locally registered or a `{global, Name}` name: the name is resolved once, then
    /// that pid is called and monitored, so a name taken over meanwhile is not followed. An
    /// unregistered name is [`CallError::NoProc`] (OTP exits the caller with `noproc`).
    pub async fn call_name<Req: Message, Resp: Message>(
        &self,
        registry: &Registry,
        name: &str,
        request: Req,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        match registry.whereis(name) {
            Some(pid) => self.call(pid, request, timeout).await,
            None => Err(CallError::NoProc),
        }
    }

    /// [`call_name`](Self::call_name) with a request that names its reply type.
    pub async fn request_name<R: Request>(
        &self,
        registry: &Registry,
        name: &str,
        request: R,
        timeout: Duration,
    ) -> Result<R::Reply, CallError> {
        self.call_name(registry, name, request, timeout).await
    }

    /// Spawns a process on this node (not linked).
    pub fn spawn<N, F, Fut>(&self, name: &str, body: F) -> Pid
    where
        N: Message,
        F: FnOnce(Ctx<N>) -> Fut + Send + 'static,
        Fut: Future<Output = ExitReason> + Send + 'static,
    {
        self.node.spawn(name, body)
    }

    /// Spawns a process linked to this one before it runs.
    pub fn spawn_link<N, F, Fut>(&self, name: &str, body: F) -> Pid
    where
        N: Message,
        F: FnOnce(Ctx<N>) -> Fut + Send + 'static,
        Fut: Future<Output = ExitReason> + Send + 'static,
    {
        self.node
            .spawn_opts(SpawnOpts::named(name).link(self.pid), body)
    }

    pub fn link(&self, pid: Pid) {
        self.node.lock().link(self.pid, pid);
    }

    pub fn unlink(&self, pid: Pid) {
        self.node.lock().unlink(self.pid, pid);
    }

    /// Monitors `pid`: exactly one `Down` for the returned reference follows (`NoProc` if it is
    /// already dead, `NoConnection` if its node is or becomes unreachable), unless demonitored.
    pub fn monitor(&self, pid: Pid) -> Ref {
        let mut st = self.node.lock();
        let reference = st.make_ref();
        event!("monitor", node = self.pid.node, watcher = %self.pid, pid = %pid, reference = %reference);
        st.monitor(reference, self.pid, pid, false);
        reference
    }

    /// Stops a monitor; with `flush`, a `Down` already queued for it is removed too. Returns
    /// true if the monitor was still live.
    pub fn demonitor(&self, reference: Ref, flush: bool) -> bool {
        let live = self.node.lock().demonitor(reference);
        if flush {
            self.mailbox.flush_down(reference);
        }
        live
    }

    /// Whether exit signals become `Exit` events (except a direct `Kill`).
    pub fn trap_exit(&self, on: bool) {
        self.mailbox.set_trap_exit(on);
    }

    /// Sends an exit signal to `pid` (not over a link: `Kill` cannot be trapped).
    pub fn exit(&self, pid: Pid, reason: ExitReason) {
        self.node.lock().send_exit(self.pid, pid, reason, false);
    }

    /// Racy by nature; see [`Node::is_alive`].
    pub fn is_alive(&self, pid: Pid) -> bool {
        self.node.is_alive(pid)
    }

    /// An `Event::Timer { tag }` after `after`, unless cancelled or the process exits first.
    pub fn send_after(&self, after: Duration, tag: u64) -> Ref {
        self.node
            .send_after(self.pid, after, tag)
            .expect("a running process has a table entry")
    }

    pub fn cancel_timer(&self, reference: Ref) -> bool {
        self.node.cancel_timer(self.pid, reference)
    }
}
