//! Datagrams between scenario nodes over `rt::Endpoint`, JSON-encoded and traced.

use groundhog_runtime::event;
use groundhog_runtime::rt::{self, Endpoint};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Every scenario node listens here.
pub const PORT: u16 = 7000;
/// Largest datagram a scenario node accepts.
const MAX_FRAME: usize = 4096;

/// Binds node `node`'s endpoint on `port`.
pub async fn bind(node: u32, port: u16) -> Endpoint {
    Endpoint::bind(rt::node_addr(node, port))
        .await
        .unwrap_or_else(|e| panic!("node {node} cannot bind port {port}: {e}"))
}

/// Sends `msg` from `node` to `to`'s `port`. Loss is the network's business: nothing is returned.
pub async fn send<T: Serialize>(ep: &Endpoint, node: u32, to: u32, port: u16, tag: u64, msg: &T) {
    let bytes = serde_json::to_vec(msg).expect("scenario messages always encode");
    let text = String::from_utf8_lossy(&bytes);
    event!("send", node = node, to = to, msg = text.as_ref());
    if let Err(e) = ep.send_to(rt::node_addr(to, port), tag, &bytes).await {
        event!(
            "drop",
            node = node,
            to = to,
            reason = e.to_string().as_str()
        );
    }
}

/// Receives the next decodable `T` on `tag`, with the sender's node index and port. Undecodable
/// frames and frames from outside the cluster are dropped and traced.
pub async fn recv<T: DeserializeOwned>(ep: &Endpoint, node: u32, tag: u64) -> (T, u32, u16) {
    let mut buf = vec![0u8; MAX_FRAME];
    loop {
        let (len, from) = match ep.recv_from(tag, &mut buf).await {
            Ok(x) => x,
            Err(e) => {
                event!("drop", node = node, reason = e.to_string().as_str());
                continue;
            }
        };
        let Some(from_node) = rt::node_index(from) else {
            event!("drop", node = node, reason = "sender outside the cluster");
            continue;
        };
        match serde_json::from_slice::<T>(&buf[..len]) {
            Ok(msg) => {
                let text = String::from_utf8_lossy(&buf[..len]);
                event!(
                    "deliver",
                    node = node,
                    from = from_node,
                    msg = text.as_ref()
                );
                return (msg, from_node, from.port());
            }
            Err(e) => {
                event!(
                    "drop",
                    node = node,
                    from = from_node,
                    reason = e.to_string().as_str()
                );
            }
        }
    }
}
