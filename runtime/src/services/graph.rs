//! The start graph: an edge from each service to every service it needs.

use std::collections::BTreeMap;

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};

/// Services and what each needs. Insertion order breaks ties, so the order is the same on
/// every run and in every build.
#[derive(Debug, Default, Clone)]
pub struct StartGraph {
    graph: DiGraph<String, ()>,
    index: BTreeMap<String, NodeIndex>,
    needs: Vec<(String, String)>,
    duplicates: Vec<String>,
}

/// What is wrong with a start graph; nothing starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// Each cycle, as the services on it, in dependency order from its first-declared service.
    #[error("circular start dependencies: {}", show_cycles(.0))]
    Cycles(Vec<Vec<String>>),
    #[error("service `{service}` needs `{missing}`, which is not a service")]
    Unknown { service: String, missing: String },
    #[error("service `{0}` is declared twice")]
    Duplicate(String),
}

fn show_cycles(cycles: &[Vec<String>]) -> String {
    cycles
        .iter()
        .map(|c| {
            let mut ring = c.clone();
            ring.push(c[0].clone());
            ring.join(" -> ")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl StartGraph {
    pub fn new() -> StartGraph {
        StartGraph::default()
    }

    /// Declares `name`, which needs every service in `needs` started before it.
    pub fn service<'a>(&mut self, name: &str, needs: impl IntoIterator<Item = &'a str>) {
        if self.index.contains_key(name) {
            self.duplicates.push(name.to_string());
        } else {
            let i = self.graph.add_node(name.to_string());
            self.index.insert(name.to_string(), i);
        }
        for n in needs {
            self.needs.push((name.to_string(), n.to_string()));
        }
    }

    /// A start order: every service after everything it needs. Stop in the reverse order.
    pub fn order(&self) -> Result<Vec<String>, GraphError> {
        if let Some(d) = self.duplicates.first() {
            return Err(GraphError::Duplicate(d.clone()));
        }
        let mut graph = self.graph.clone();
        for (service, need) in &self.needs {
            let Some(&to) = self.index.get(need) else {
                return Err(GraphError::Unknown {
                    service: service.clone(),
                    missing: need.clone(),
                });
            };
            // Edge need -> service: the need starts first.
            graph.update_edge(to, self.index[service], ());
        }
        match toposort(&graph, None) {
            Ok(order) => Ok(order.into_iter().map(|i| graph[i].clone()).collect()),
            Err(_) => Err(GraphError::Cycles(cycles(&graph))),
        }
    }
}

/// Every cycle's services: one per strongly connected component with more than one service (or
/// a service that needs itself), the shortest cycle through its earliest-declared member, in
/// start-dependency order (each service is needed by the next).
fn cycles(graph: &DiGraph<String, ()>) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    for mut scc in tarjan_scc(graph) {
        scc.sort();
        let start = scc[0];
        if scc.len() < 2 && !graph.contains_edge(start, start) {
            continue;
        }
        // Breadth-first from `start` inside the component, neighbours in declaration order,
        // until an edge leads back to `start`.
        let mut parent: BTreeMap<NodeIndex, NodeIndex> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut last = start;
        'search: while let Some(at) = queue.pop_front() {
            let mut next: Vec<NodeIndex> =
                graph.neighbors(at).filter(|n| scc.contains(n)).collect();
            next.sort();
            for n in next {
                if n == start {
                    last = at;
                    break 'search;
                }
                if let std::collections::btree_map::Entry::Vacant(e) = parent.entry(n) {
                    e.insert(at);
                    queue.push_back(n);
                }
            }
        }
        let mut ring = vec![last];
        while let Some(&p) = parent.get(ring.last().expect("not empty")) {
            ring.push(p);
        }
        ring.reverse();
        out.push(ring.into_iter().map(|i| graph[i].clone()).collect());
    }
    out.sort();
    out
}
