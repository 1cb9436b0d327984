//! `groundhog-node`: one Groundhog runtime node as an operating-system process.
//!
//! It starts a distributed node from its flags (`--node ID --listen ADDR --peer ID=ADDR ...
//! --secret-env VAR | --secret-file PATH`), runs an echo server registered in the cluster
//! registry as `echo-<ID>`, and answers line commands on stdin with one line each on stdout
//! (`whereis`, `call`, `names`, `peers`, `stats`, `quit`; see [`console`]). It prints `ready
//! ADDR` once listening, and `event peer-up ID PID` / `event peer-down ID REASON` as it sees
//! other nodes come and go ([`watch`]).
//!
//! It runs only in the real build (tokio, UDP): a simulation build's binary says so and exits 2.
//!
//! Incarnation: every start of a node needs a larger incarnation than its last (peers order a
//! node's sessions by incarnation, and a restart with the same or a smaller one is never heard:
//! tried with both). By default it is the wall clock in milliseconds since 1970, read once at
//! start; `--incarnation N` overrides it, for hosts whose clock may step back between two starts
//! of the same node.

mod console;
mod secret;
mod watch;

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};

use clap::{error::ErrorKind, ArgGroup, CommandFactory, Parser};
use futures::channel::{mpsc, oneshot};
use groundhog_runtime::rt::{self, Duration};
use groundhog_runtime::{Ctx, Event, ExitReason, Node, NodeConfig, Registry};

/// One Groundhog runtime node: an echo server in the cluster registry, and a console on
/// stdin/stdout.
#[derive(Parser, Debug)]
#[command(name = "groundhog-node", version)]
#[command(group(ArgGroup::new("secret").required(true).args(["secret_env", "secret_file"])))]
struct Args {
    /// This node's id; every node of the cluster has its own.
    #[arg(long = "node", value_name = "ID")]
    node: u32,
    /// The UDP address to listen on for other nodes (port 0: any free port; `ready` names it).
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// Another node of the cluster and its address; repeat for each.
    #[arg(long = "peer", value_name = "ID=ADDR", value_parser = parse_peer)]
    peers: Vec<(u32, SocketAddr)>,
    /// The environment variable that holds the cluster's shared secret (at least 16 bytes).
    #[arg(long, value_name = "VAR")]
    secret_env: Option<String>,
    /// A file that holds the cluster's shared secret (one trailing newline is not part of it).
    #[arg(long, value_name = "PATH")]
    secret_file: Option<PathBuf>,
    /// This start's incarnation: must be larger at every restart of the node. Default: the
    /// wall clock in milliseconds.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    incarnation: Option<u64>,
    /// Heartbeat (and retransmission) interval in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    heartbeat_ms: u64,
    /// A peer silent for longer than this many milliseconds is declared down.
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    down_after_ms: u64,
    /// How long a console `call` waits for its reply, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    call_timeout_ms: u64,
}

fn parse_peer(text: &str) -> Result<(u32, SocketAddr), String> {
    let (id, addr) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not ID=ADDR"))?;
    let id = id
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("`{id}` in `{text}` is not a node id"))?;
    let addr = addr
        .trim()
        .parse::<SocketAddr>()
        .map_err(|_| format!("`{addr}` in `{text}` is not an address like 127.0.0.1:4101"))?;
    Ok((id, addr))
}

/// The cluster name of node `id`'s echo server.
pub(crate) fn echo_name(id: u32) -> String {
    format!("echo-{id}")
}

/// Everything checked, ready to start.
struct Setup {
    config: NodeConfig,
    call_timeout: Duration,
}

impl Setup {
    fn from_args(args: Args) -> Result<Setup, String> {
        let mut peers = BTreeMap::new();
        for (id, addr) in &args.peers {
            if *id == args.node {
                return Err(format!("--peer {id}={addr}: {id} is this node's own id"));
            }
            if let Some(earlier) = peers.insert(*id, *addr) {
                return Err(format!(
                    "--peer {id}={addr}: node {id} is already given as {earlier}"
                ));
            }
        }
        if args.down_after_ms <= args.heartbeat_ms {
            return Err(format!(
                "--down-after-ms {} must be longer than --heartbeat-ms {}",
                args.down_after_ms, args.heartbeat_ms
            ));
        }
        let secret = match (&args.secret_env, &args.secret_file) {
            (Some(var), _) => secret::from_env(var)?,
            (None, Some(path)) => secret::from_file(path)?,
            (None, None) => unreachable!("clap requires one of the secret flags"),
        };
        let incarnation = match args.incarnation {
            Some(n) => n,
            None => wall_clock_incarnation()?,
        };
        let mut config = NodeConfig::local(args.node, incarnation).heartbeat(
            Duration::from_millis(args.heartbeat_ms),
            Duration::from_millis(args.down_after_ms),
        );
        config.listen = Some(args.listen);
        config.peers = peers;
        Ok(Setup {
            config: secret::configure(config, secret),
            call_timeout: Duration::from_millis(args.call_timeout_ms),
        })
    }
}

/// Milliseconds since 1970 by the wall clock (the real build's `rt::system_time`).
fn wall_clock_incarnation() -> Result<u64, String> {
    let since = rt::system_time()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| "the wall clock is before 1970: give --incarnation".to_string())?;
    u64::try_from(since.as_millis())
        .ok()
        .filter(|ms| *ms > 0)
        .ok_or_else(|| "the wall clock is out of range: give --incarnation".to_string())
}

/// Writes one line to stdout. Nobody reading it any more means nobody to serve: exit.
pub(crate) fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(1);
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One line of stdin, as the console gets it.
pub(crate) enum Line {
    Text(String),
    /// Longer than this many bytes; the rest of it was skipped.
    TooLong(usize),
    NotUtf8,
}

/// The longest console line taken.
const MAX_LINE: usize = 1 << 20;

/// Reads stdin on its own thread (the binary is not a simulation) until it ends.
fn read_stdin(lines: mpsc::UnboundedSender<Line>) {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let limit = (MAX_LINE + 1) as u64;
        match (&mut input).take(limit).read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = if buf.len() > MAX_LINE && !buf.ends_with(b"\n") {
            // Skip to the end of the overlong line.
            let mut rest = Vec::new();
            loop {
                rest.clear();
                match (&mut input).take(limit).read_until(b'\n', &mut rest) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if rest.ends_with(b"\n") => break,
                    Ok(_) => {}
                }
            }
            Line::TooLong(MAX_LINE)
        } else {
            match std::str::from_utf8(&buf) {
                Ok(text) => Line::Text(text.to_string()),
                Err(_) => Line::NotUtf8,
            }
        };
        if lines.unbounded_send(line).is_err() {
            return;
        }
    }
}

/// The echo server: answers every call with its own text.
async fn echo(mut ctx: Ctx<String>) -> ExitReason {
    loop {
        if let Event::Call { msg, reply, .. } = ctx.recv().await {
            reply.reply(msg);
        }
    }
}

async fn run(setup: Setup) -> ExitCode {
    let id = setup.config.index;
    let listen = setup.config.listen;
    let node = match Node::start(setup.config).await {
        Ok(node) => node,
        Err(e) => {
            let addr = listen.map(|a| a.to_string()).unwrap_or_default();
            eprintln!("error: cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    let registry = Registry::cluster(&node);
    let server = node.spawn("echo", echo);
    if let Err(e) = registry.register(&echo_name(id), server) {
        eprintln!("error: cannot register {}: {e}", echo_name(id));
        node.shutdown();
        return ExitCode::from(1);
    }
    let peers: watch::Peers = Arc::default();
    let (view, names) = (peers.clone(), registry.clone());
    node.spawn("peer-watch", move |ctx: Ctx<()>| {
        watch::run(ctx, names, view)
    });
    let addr = node
        .listen_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    say(&format!("ready {addr}"));
    let (lines_tx, lines_rx) = mpsc::unbounded();
    std::thread::spawn(move || read_stdin(lines_tx));
    let (done_tx, done_rx) = oneshot::channel();
    let console = console::Console {
        registry,
        peers,
        call_timeout: setup.call_timeout,
        lines: lines_rx,
        done: done_tx,
    };
    node.spawn("console", move |ctx: Ctx<()>| console::run(ctx, console));
    let _ = done_rx.await;
    node.shutdown();
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args = Args::parse();
    if rt::SIMULATED {
        eprintln!(
            "error: groundhog-node runs only in the real build (this one has --cfg madsim): \
             RUSTFLAGS= CARGO_TARGET_DIR=target/real cargo run -p groundhog-node -- ..."
        );
        return ExitCode::from(2);
    }
    let setup = match Setup::from_args(args) {
        Ok(setup) => setup,
        Err(why) => Args::command()
            .error(ErrorKind::ValueValidation, why)
            .exit(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the executor: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(setup))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Result<Args, clap::Error> {
        let mut argv = vec!["groundhog-node", "--node", "1", "--listen", "127.0.0.1:0"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv)
    }

    /// A secret file in a directory of its own, removed on drop.
    struct SecretFile(PathBuf);

    impl SecretFile {
        fn new(tag: &str, contents: &[u8]) -> SecretFile {
            let dir =
                std::env::temp_dir().join(format!("groundhog-node-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("secret"), contents).unwrap();
            SecretFile(dir)
        }

        fn path(&self) -> String {
            self.0.join("secret").display().to_string()
        }
    }

    impl Drop for SecretFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn flags_parse_into_a_configuration() {
        let secret = SecretFile::new("flags", b"a secret of enough bytes\n");
        let a = args(&[
            "--peer",
            "0=127.0.0.1:4100",
            "--peer",
            "2 = 127.0.0.1:4102",
            "--secret-file",
            &secret.path(),
            "--incarnation",
            "7",
            "--heartbeat-ms",
            "50",
            "--down-after-ms",
            "3000",
        ])
        .unwrap();
        let setup = Setup::from_args(a).unwrap();
        let c = &setup.config;
        assert_eq!((c.index, c.incarnation), (1, 7));
        assert_eq!(c.listen, Some("127.0.0.1:0".parse().unwrap()));
        let peers: Vec<String> = c.peers.iter().map(|(i, a)| format!("{i}={a}")).collect();
        assert_eq!(peers, ["0=127.0.0.1:4100", "2=127.0.0.1:4102"]);
        assert_eq!(
            (c.heartbeat, c.down_after),
            (Duration::from_millis(50), Duration::from_secs(3))
        );
        assert_eq!(setup.call_timeout, Duration::from_secs(2));
    }

    #[test]
    fn bad_flags_are_clap_errors() {
        let kind = |extra: &[&str]| args(extra).unwrap_err().kind();
        // No secret flag, or both.
        assert_eq!(kind(&[]), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            kind(&["--secret-env", "A", "--secret-file", "b"]),
            ErrorKind::ArgumentConflict
        );
        let with_secret = |extra: &[&str]| {
            let mut v = vec!["--secret-env", "A"];
            v.extend_from_slice(extra);
            args(&v).unwrap_err().to_string()
        };
        assert!(with_secret(&["--peer", "2"]).contains("`2` is not ID=ADDR"));
        assert!(with_secret(&["--peer", "x=127.0.0.1:1"]).contains("is not a node id"));
        assert!(with_secret(&["--peer", "2=nowhere"]).contains("is not an address"));
        assert!(with_secret(&["--incarnation", "0"]).contains("--incarnation"));
    }

    #[test]
    fn inconsistent_flags_are_refused_with_the_reason() {
        let setup = |extra: &[&str]| {
            let mut v = vec!["--secret-env", "GROUNDHOG_NODE_TEST_UNSET_VARIABLE"];
            v.extend_from_slice(extra);
            Setup::from_args(args(&v).unwrap()).err().unwrap()
        };
        assert_eq!(
            setup(&["--peer", "1=127.0.0.1:9"]),
            "--peer 1=127.0.0.1:9: 1 is this node's own id"
        );
        assert_eq!(
            setup(&["--peer", "2=127.0.0.1:9", "--peer", "2=127.0.0.1:10"]),
            "--peer 2=127.0.0.1:10: node 2 is already given as 127.0.0.1:9"
        );
        assert_eq!(
            setup(&["--heartbeat-ms", "500", "--down-after-ms", "500"]),
            "--down-after-ms 500 must be longer than --heartbeat-ms 500"
        );
        assert_eq!(
            setup(&[]),
            "--secret-env GROUNDHOG_NODE_TEST_UNSET_VARIABLE: the variable is not set"
        );
    }

    #[test]
    #[cfg_attr(madsim, ignore = "real build only: reads the wall clock")]
    fn the_default_incarnation_is_the_wall_clock_in_milliseconds() {
        let a = wall_clock_incarnation().unwrap();
        // 2020-01-01 in milliseconds: any real clock is past it.
        assert!(a > 1_577_836_800_000, "{a}");
    }
}
