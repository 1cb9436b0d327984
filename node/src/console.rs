//! The line console: commands read from stdin, one answer line each on stdout.
//!
//! Parsing and formatting are pure functions (unit-tested below); [`run`] is the console
//! process that ties them to the node.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::channel::{mpsc, oneshot};
use futures::StreamExt;
use groundhog_runtime::rt::Duration;
use groundhog_runtime::{CallError, Ctx, ExitReason, Node, Pid, Registry};

use crate::{say, secret, Line};

/// A console command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    /// `whereis NAME`: the name's holder in the cluster registry.
    Whereis(String),
    /// `call TARGET TEXT`: calls an echo server by cluster name or by pid.
    Call { target: Target, text: String },
    /// `names`: every name the cluster registry shows here.
    Names,
    /// `peers`: the peers whose echo service this node sees.
    Peers,
    /// `stats`: the node's distribution counters (rejected datagrams first).
    Stats,
    /// `quit`: shut the node down and exit.
    Quit,
}

/// Whom a `call` goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Name(String),
    Pid(Pid),
}

const COMMANDS: &str = "whereis NAME, call NAME|PID TEXT, names, peers, stats, quit";

/// Parses one console line; `Ok(None)` for a blank line (no answer). The error is the text of
/// the `error BadCommand ...` answer.
pub(crate) fn parse(line: &str) -> Result<Option<Command>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    let (word, rest) = match line.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim_start()),
        None => (line, ""),
    };
    let bare = |command: Command| {
        if rest.is_empty() {
            Ok(Some(command))
        } else {
            Err(format!("`{word}` takes no arguments"))
        }
    };
    match word {
        "whereis" => match rest.split_whitespace().collect::<Vec<_>>()[..] {
            [name] => Ok(Some(Command::Whereis(name.to_string()))),
            _ => Err("usage: whereis NAME".to_string()),
        },
        "call" => {
            let Some((target, text)) = rest.split_once(char::is_whitespace) else {
                return Err("usage: call NAME|PID TEXT".to_string());
            };
            let target = if target.starts_with('<') {
                Target::Pid(parse_pid(target)?)
            } else {
                Target::Name(target.to_string())
            };
            Ok(Some(Command::Call {
                target,
                text: text.trim_start().to_string(),
            }))
        }
        "names" => bare(Command::Names),
        "peers" => bare(Command::Peers),
        "stats" => bare(Command::Stats),
        "quit" => bare(Command::Quit),
        other => Err(format!("unknown command `{other}` (commands: {COMMANDS})")),
    }
}

/// A pid as the runtime prints it: `<node.incarnation.id>`.
pub(crate) fn parse_pid(text: &str) -> Result<Pid, String> {
    let bad = || format!("`{text}` is not a pid (<node.incarnation.id>)");
    let inner = text
        .strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .ok_or_else(bad)?;
    let parts: Vec<&str> = inner.split('.').collect();
    let [node, incarnation, id] = parts[..] else {
        return Err(bad());
    };
    Ok(Pid {
        node: node.parse().map_err(|_| bad())?,
        incarnation: incarnation.parse().map_err(|_| bad())?,
        id: id.parse().map_err(|_| bad())?,
    })
}

/// The answer to a `call`: `reply TEXT`, or `error` and the runtime's [`CallError`] variant.
pub(crate) fn call_answer(result: &Result<String, CallError>) -> String {
    match result {
        Ok(text) => format!("reply {text}"),
        Err(CallError::Timeout) => "error Timeout".to_string(),
        Err(CallError::NoProc) => "error NoProc".to_string(),
        Err(CallError::NodeDown) => "error NodeDown".to_string(),
        Err(CallError::Exited(reason)) => format!("error Exited {reason}"),
        Err(CallError::NotSent(why)) => format!("error NotSent {why}"),
        Err(CallError::BadReply(why)) => format!("error BadReply {why}"),
    }
}

/// `peers` followed by the ids of the peers seen up, in order.
pub(crate) fn peers_answer(peers: &BTreeMap<u32, Pid>) -> String {
    let mut line = "peers".to_string();
    for id in peers.keys() {
        line.push_str(&format!(" {id}"));
    }
    line
}

/// `names` followed by `NAME=PID` for each visible name, in name order.
pub(crate) fn names_answer(names: &[(String, Pid)]) -> String {
    let mut line = "names".to_string();
    for (name, pid) in names {
        line.push_str(&format!(" {name}={pid}"));
    }
    line
}

/// What the console process needs besides its context.
pub(crate) struct Console {
    pub(crate) registry: Registry,
    pub(crate) peers: Arc<Mutex<BTreeMap<u32, Pid>>>,
    pub(crate) call_timeout: Duration,
    pub(crate) lines: mpsc::UnboundedReceiver<Line>,
    /// Told when the console ends (`quit`, or stdin closed).
    pub(crate) done: oneshot::Sender<()>,
}

/// The console process: answers each line in turn until `quit` or the end of stdin.
pub(crate) async fn run(ctx: Ctx<()>, mut console: Console) -> ExitReason {
    while let Some(line) = console.lines.next().await {
        let command = match line {
            Line::Text(text) => parse(&text),
            Line::TooLong(limit) => Err(format!("line longer than {limit} bytes")),
            Line::NotUtf8 => Err("line is not UTF-8".to_string()),
        };
        let command = match command {
            Ok(Some(command)) => command,
            Ok(None) => continue,
            Err(why) => {
                say(&format!("error BadCommand {why}"));
                continue;
            }
        };
        let answer = match command {
            Command::Whereis(name) => match console.registry.whereis(&name) {
                Some(pid) => format!("pid {pid}"),
                None => "none".to_string(),
            },
            Command::Call { target, text } => {
                let result = match target {
                    Target::Name(name) => {
                        ctx.call_name(&console.registry, &name, text, console.call_timeout)
                            .await
                    }
                    Target::Pid(pid) => ctx.call(pid, text, console.call_timeout).await,
                };
                call_answer(&result)
            }
            Command::Names => names_answer(&console.registry.registered()),
            Command::Peers => peers_answer(&crate::lock(&console.peers)),
            Command::Stats => stats_answer(ctx.node()),
            Command::Quit => {
                say("bye");
                break;
            }
        };
        say(&answer);
    }
    let _ = console.done.send(());
    ExitReason::Normal
}

/// `stats` and the node's distribution counters (see `groundhog_runtime::NetStats`).
fn stats_answer(node: &Node) -> String {
    let stats = node.net_stats();
    format!(
        "stats rejected={} hellos={} handshakes={} authenticated={}",
        secret::rejected(node),
        stats.hellos,
        stats.handshakes,
        stats.authenticated
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(node: u32, incarnation: u64, id: u64) -> Pid {
        Pid {
            node,
            incarnation,
            id,
        }
    }

    #[test]
    fn commands_parse() {
        assert_eq!(
            parse("whereis echo-1"),
            Ok(Some(Command::Whereis("echo-1".into())))
        );
        assert_eq!(
            parse("  call echo-2   hello there "),
            Ok(Some(Command::Call {
                target: Target::Name("echo-2".into()),
                text: "hello there".into()
            }))
        );
        assert_eq!(
            parse("call <2.17.4> hi"),
            Ok(Some(Command::Call {
                target: Target::Pid(pid(2, 17, 4)),
                text: "hi".into()
            }))
        );
        assert_eq!(parse("peers"), Ok(Some(Command::Peers)));
        assert_eq!(parse("names"), Ok(Some(Command::Names)));
        assert_eq!(parse("stats"), Ok(Some(Command::Stats)));
        assert_eq!(parse("quit"), Ok(Some(Command::Quit)));
        assert_eq!(parse("   "), Ok(None));
    }

    #[test]
    fn bad_commands_are_errors_that_say_why() {
        let err = |line: &str| parse(line).unwrap_err();
        assert!(err("frobnicate").contains("unknown command `frobnicate`"));
        assert_eq!(err("whereis"), "usage: whereis NAME");
        assert_eq!(err("whereis a b"), "usage: whereis NAME");
        assert_eq!(err("call echo-1"), "usage: call NAME|PID TEXT");
        assert_eq!(err("peers now"), "`peers` takes no arguments");
        assert!(err("call <1.2> hi").contains("is not a pid"));
        assert!(err("call <1.x.3> hi").contains("is not a pid"));
        assert!(err("call <1.2.99999999999999999999999> hi").contains("is not a pid"));
    }

    #[test]
    fn pids_round_trip_through_their_printed_form() {
        let p = pid(3, 1_718_000_000_123, 9);
        assert_eq!(parse_pid(&p.to_string()), Ok(p));
        assert!(parse_pid("3.1.9").is_err());
        assert!(parse_pid("<3.1.9").is_err());
        assert!(parse_pid("<-1.1.9>").is_err());
    }

    #[test]
    fn answers_name_the_runtime_errors() {
        assert_eq!(call_answer(&Ok("hi there".into())), "reply hi there");
        assert_eq!(call_answer(&Err(CallError::Timeout)), "error Timeout");
        assert_eq!(call_answer(&Err(CallError::NoProc)), "error NoProc");
        assert_eq!(call_answer(&Err(CallError::NodeDown)), "error NodeDown");
        assert_eq!(
            call_answer(&Err(CallError::Exited(ExitReason::Killed))),
            "error Exited killed"
        );
        let peers: BTreeMap<u32, Pid> = [(2, pid(2, 5, 1)), (0, pid(0, 5, 1))].into();
        assert_eq!(peers_answer(&peers), "peers 0 2");
        assert_eq!(peers_answer(&BTreeMap::new()), "peers");
        assert_eq!(
            names_answer(&[("echo-0".into(), pid(0, 5, 3))]),
            "names echo-0=<0.5.3>"
        );
    }
}
