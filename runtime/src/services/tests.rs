use std::sync::{Arc, Mutex};

use super::*;
use crate::rt::{self, Duration};
use crate::supervisor::ChildSpec;
use crate::{start_actor, Actor, Ctx, Event, ExitReason, Flow, Node};

fn graph(services: &[(&str, &[&str])]) -> StartGraph {
    let mut g = StartGraph::new();
    for (name, needs) in services {
        g.service(name, needs.iter().copied());
    }
    g
}

#[test]
fn every_service_starts_after_what_it_needs() {
    let order = graph(&[
        ("api", &["cache", "db"]),
        ("cache", &["db"]),
        ("db", &[]),
        ("metrics", &[]),
    ])
    .order()
    .unwrap();
    let at = |s: &str| order.iter().position(|o| o == s).unwrap();
    assert_eq!(order.len(), 4);
    assert!(at("db") < at("cache") && at("cache") < at("api"));
    assert!(at("db") < at("api"));
}

#[test]
fn a_cycle_is_reported_with_every_service_on_it_and_nothing_else() {
    let err = graph(&[
        ("ok", &[]),
        ("a", &["b"]),
        ("b", &["c"]),
        ("c", &["a"]),
        ("d", &["ok", "a"]),
        ("self", &["self"]),
    ])
    .order()
    .unwrap_err();
    let GraphError::Cycles(cycles) = &err else {
        panic!("{err:?}")
    };
    // a needs b needs c needs a: the ring in start order is a <- c <- b, walked from a along
    // "is needed by" edges: a, then what needs a (c), then what needs c (b).
    assert_eq!(
        cycles,
        &vec![
            vec!["a".to_string(), "c".into(), "b".into()],
            vec!["self".into()]
        ]
    );
    assert_eq!(
        err.to_string(),
        "circular start dependencies: a -> c -> b -> a; self -> self"
    );
}

#[test]
fn unknown_and_duplicate_services_are_errors() {
    assert_eq!(
        graph(&[("a", &["ghost"])]).order(),
        Err(GraphError::Unknown {
            service: "a".into(),
            missing: "ghost".into()
        })
    );
    assert_eq!(
        graph(&[("a", &[]), ("a", &[])]).order(),
        Err(GraphError::Duplicate("a".into()))
    );
}

struct Limits {
    pool: u32,
    ttl_ms: u64,
    name: String,
}

impl Validate for Limits {
    fn check(&self, p: &mut Problems) {
        p.require(self.pool > 0, "pool", "must be at least 1");
        p.require(self.ttl_ms <= 60_000, "ttl_ms", "at most 60000");
        p.require(!self.name.is_empty(), "name", "must not be empty");
    }
}

/// Counts its starts in `started`.
struct Counted(Arc<Mutex<Vec<String>>>, String);

impl Actor for Counted {
    type Msg = ();
    async fn init(&mut self, _ctx: &mut Ctx<()>) -> Result<(), ExitReason> {
        self.0.lock().unwrap().push(self.1.clone());
        Ok(())
    }
    async fn handle(&mut self, _ctx: &mut Ctx<()>, _event: Event<()>) -> Flow {
        Flow::Continue
    }
}

fn counted(id: &str, log: &Arc<Mutex<Vec<String>>>) -> Service {
    let (log, name) = (log.clone(), id.to_string());
    Service::new(ChildSpec::new(id, move |node, sup| {
        let actor = Counted(log.clone(), name.clone());
        let name = name.clone();
        async move { start_actor(&node, &name, Some(sup), Duration::from_secs(1), actor).await }
    }))
}

#[rt::test]
async fn an_invalid_configuration_lists_every_problem_and_starts_nothing() {
    let node = Node::local(0, 1);
    let log = Arc::new(Mutex::new(Vec::new()));
    let bad = Limits {
        pool: 0,
        ttl_ms: 90_000,
        name: String::new(),
    };
    let got = start(
        &node,
        "services",
        None,
        &bad,
        vec![counted("db", &log)],
        (3, Duration::from_secs(5)),
    )
    .await;
    let Err(ServicesError::Config(problems)) = got else {
        panic!("expected a configuration error")
    };
    assert_eq!(problems.len(), 3, "{problems}");
    assert_eq!(
        problems.to_string(),
        "3 problem(s): pool: must be at least 1; ttl_ms: at most 60000; name: must not be empty"
    );
    rt::sleep(Duration::from_millis(10)).await;
    assert!(log.lock().unwrap().is_empty(), "no service started");
}

#[rt::test]
async fn services_start_in_dependency_order_and_a_cycle_starts_nothing() {
    let node = Node::local(0, 1);
    let log = Arc::new(Mutex::new(Vec::new()));
    let good = Limits {
        pool: 2,
        ttl_ms: 10,
        name: "x".into(),
    };
    let services = vec![
        counted("api", &log).needs("cache"),
        counted("cache", &log).needs("db"),
        counted("db", &log),
    ];
    let (_sup, order) = start(
        &node,
        "services",
        None,
        &good,
        services,
        (3, Duration::from_secs(5)),
    )
    .await
    .unwrap();
    assert_eq!(order, ["db", "cache", "api"]);
    assert_eq!(*log.lock().unwrap(), ["db", "cache", "api"]);

    let log = Arc::new(Mutex::new(Vec::new()));
    let cyclic = vec![
        counted("a", &log).needs("b"),
        counted("b", &log).needs("a"),
        counted("c", &log),
    ];
    let got = start(
        &node,
        "cyclic",
        None,
        &(),
        cyclic,
        (3, Duration::from_secs(5)),
    )
    .await;
    assert!(matches!(
        got,
        Err(ServicesError::Graph(GraphError::Cycles(_)))
    ));
    rt::sleep(Duration::from_millis(10)).await;
    assert!(
        log.lock().unwrap().is_empty(),
        "not even the service outside the cycle"
    );
}
