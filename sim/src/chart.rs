//! A message sequence chart of one run (`groundhog replay ... --chart FILE.html`).
//!
//! One self-contained HTML file: inline CSS and SVG, no scripts or fonts from the network. Each
//! runtime process gets a lifeline (a column), grouped under its node; time runs down the page,
//! one row per drawn event in trace order (rows, not seconds: a run's events cluster, and a
//! linear time axis would squeeze most of them into a few pixels). The row's simulated time is
//! printed at the left.
//!
//! Drawn: spawns (a lifeline starts), sends matched to their deliveries (an arrow from the send's
//! row to the delivery's row), drops (a red cross; a dropped send's arrow is dashed), exits (the
//! lifeline ends), monitors, `Down`s, links, exit signals, call timeouts, node events, faults (an
//! orange band across the chart) and checks (a violated check is a red band, class `violated`).
//! Heartbeats and passing checks are counted in the legend but not drawn.
//!
//! A small inline script counts the lifelines the browser actually laid out and writes the count
//! to `data-lifelines-rendered` on `<body>`, next to `data-lifelines-expected`; CI opens the chart
//! in headless Chromium and compares the two.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use crate::invariants::{parse, Line};
use crate::Report;

const COL_W: u32 = 120;
const ROW_H: u32 = 18;
const LEFT: u32 = 110;
const TOP: u32 = 70;

type P = (u32, u64, u64);

struct Lane {
    pid: P,
    name: String,
    col: u32,
    first_row: u32,
    last_row: Option<u32>,
    exit: Option<String>,
}

/// One drawn row.
enum Mark {
    /// A dot on a lifeline with a label.
    Dot {
        lane: P,
        label: String,
        class: &'static str,
    },
    /// Across the chart (faults, checks, notes).
    Band { label: String, class: &'static str },
    /// A node-level event, drawn across that node's columns.
    NodeNote { node: u32, label: String },
}

struct Arrow {
    from: P,
    to: P,
    from_row: u32,
    to_row: u32,
    class: &'static str,
}

struct Pending {
    row: u32,
    digest: Option<String>,
}

/// The chart of `report`'s trace, as a complete HTML document.
pub fn render(report: &Report) -> String {
    let title = format!(
        "{} {} seed {}",
        report.scenario, report.variant, report.seed
    );
    let repro = if report.outcome.passed() {
        String::new()
    } else {
        format!("repro: {}", report.repro())
    };
    document(&title, &report.summary(), &repro, &report.trace.lines)
}

/// The chart of trace `lines` under a title, a summary and a repro line.
fn document(title: &str, summary: &str, repro: &str, lines: &[String]) -> String {
    let lines: Vec<Line<'_>> = lines.iter().filter_map(|l| parse(l)).collect();
    let mut lanes: BTreeMap<P, Lane> = BTreeMap::new();
    let mut rows: Vec<(String, Mark)> = Vec::new();
    let mut arrows: Vec<Arrow> = Vec::new();
    let mut pending: BTreeMap<(P, P), VecDeque<Pending>> = BTreeMap::new();
    let mut omitted: BTreeMap<&str, u64> = BTreeMap::new();

    let lane = |lanes: &mut BTreeMap<P, Lane>, pid: P, name: Option<&str>, row: u32| {
        let entry = lanes.entry(pid).or_insert_with(|| Lane {
            pid,
            name: String::new(),
            col: 0,
            first_row: row,
            last_row: None,
            exit: None,
        });
        if let Some(n) = name {
            if entry.name.is_empty() {
                entry.name = n.to_string();
            }
        }
    };

    for line in &lines {
        let row = rows.len() as u32;
        let time = crate::trace::format_time(line.time);
        let pid = |f: &str| line.pid(f);
        let node = line.node;
        let mark = match line.kind {
            "heartbeat" => {
                *omitted.entry("heartbeat").or_default() += 1;
                continue;
            }
            "check" if line.get("result") != Some("violated") => {
                *omitted.entry("passing check").or_default() += 1;
                continue;
            }
            "check" => Mark::Band {
                label: format!(
                    "check {} violated: {}",
                    line.get("invariant").unwrap_or("?"),
                    line.get("msg").unwrap_or("")
                ),
                class: "violated",
            },
            "fault" => Mark::Band {
                label: format!("fault {}", line.get("fault").unwrap_or("?")),
                class: "fault",
            },
            "note" | "end" => Mark::Band {
                label: format!("{} {}", line.kind, fields(line)),
                class: "note",
            },
            "spawn" if pid("pid").is_some() => {
                let p = pid("pid").expect("checked");
                lane(&mut lanes, p, line.get("name"), row);
                Mark::Dot {
                    lane: p,
                    label: format!("spawn {}", line.get("name").unwrap_or("")),
                    class: "spawn",
                }
            }
            "exit" if pid("pid").is_some() => {
                let p = pid("pid").expect("checked");
                lane(&mut lanes, p, line.get("name"), row);
                let reason = line.get("reason").unwrap_or("?").to_string();
                if let Some(l) = lanes.get_mut(&p) {
                    l.last_row = Some(row);
                    l.exit = Some(reason.clone());
                }
                Mark::Dot {
                    lane: p,
                    label: format!("exit {reason}"),
                    class: "exit",
                }
            }
            "send" if pid("from").is_some() && pid("to").is_some() => {
                let (f, t) = (pid("from").expect("checked"), pid("to").expect("checked"));
                lane(&mut lanes, f, None, row);
                lane(&mut lanes, t, None, row);
                pending.entry((f, t)).or_default().push_back(Pending {
                    row,
                    digest: line.get("digest").map(str::to_string),
                });
                let what = match line.get("call") {
                    Some(c) => format!("call {c}"),
                    None => "send".to_string(),
                };
                Mark::Dot {
                    lane: f,
                    label: what,
                    class: "send",
                }
            }
            "deliver" | "drop" | "hold" if pid("from").is_some() && pid("to").is_some() => {
                let (f, t) = (pid("from").expect("checked"), pid("to").expect("checked"));
                lane(&mut lanes, f, None, row);
                lane(&mut lanes, t, None, row);
                let digest = line.get("digest");
                let queue = pending.entry((f, t)).or_default();
                let at = queue
                    .iter()
                    .position(|s| digest.is_none() || s.digest.as_deref() == digest)
                    .filter(|_| line.kind != "hold");
                let class = match line.kind {
                    "deliver" => "deliver",
                    "hold" => "hold",
                    _ => "drop",
                };
                if let Some(sent) = at.and_then(|i| queue.remove(i)) {
                    arrows.push(Arrow {
                        from: f,
                        to: t,
                        from_row: sent.row,
                        to_row: row,
                        class,
                    });
                }
                let label = match line.kind {
                    "deliver" => "deliver".to_string(),
                    k => format!("{k} {}", line.get("reason").unwrap_or("")),
                };
                Mark::Dot {
                    lane: t,
                    label,
                    class,
                }
            }
            "monitor" | "down" | "link" | "signal" | "call-timeout"
                if pid(watcher_field(line.kind)).is_some() =>
            {
                let w = pid(watcher_field(line.kind)).expect("checked");
                lane(&mut lanes, w, None, row);
                let other = ["pid", "to"]
                    .iter()
                    .find_map(|f| pid(f))
                    .filter(|o| *o != w);
                let label = match line.kind {
                    "down" => format!(
                        "Down {} {}",
                        other.map(show).unwrap_or_default(),
                        line.get("reason").unwrap_or("")
                    ),
                    "signal" => format!(
                        "exit signal {} ({})",
                        line.get("reason").unwrap_or(""),
                        line.get("effect").unwrap_or("")
                    ),
                    k => format!("{k} {}", other.map(show).unwrap_or_default()),
                };
                Mark::Dot {
                    lane: w,
                    label,
                    class: match line.kind {
                        "down" => "down",
                        "call-timeout" => "drop",
                        _ => "monitor",
                    },
                }
            }
            _ => match node {
                Some(n) => Mark::NodeNote {
                    node: n,
                    label: format!("{} {}", line.kind, fields(line)),
                },
                None => Mark::Band {
                    label: format!("{} {}", line.kind, fields(line)),
                    class: "note",
                },
            },
        };
        rows.push((time, mark));
    }

    // Columns: by node, then by first appearance on it.
    let mut order: Vec<&mut Lane> = lanes.values_mut().collect();
    order.sort_by_key(|l| (l.pid.0, l.first_row, l.pid.1, l.pid.2));
    let mut nodes: BTreeMap<u32, (u32, u32)> = BTreeMap::new();
    for (i, l) in order.iter_mut().enumerate() {
        l.col = i as u32;
        let span = nodes.entry(l.pid.0).or_insert((l.col, l.col));
        span.1 = l.col;
    }
    // Nodes with events but no process still get a column of their own for their notes.
    let mut extra = lanes.len() as u32;
    for (_, m) in &rows {
        if let Mark::NodeNote { node, .. } = m {
            nodes.entry(*node).or_insert_with(|| {
                extra += 1;
                (extra - 1, extra - 1)
            });
        }
    }
    let cols = extra.max(1);
    let width = LEFT + cols * COL_W + 40;
    let height = TOP + (rows.len() as u32 + 1) * ROW_H + 20;
    let x = |p: &P| LEFT + lanes[p].col * COL_W + COL_W / 2;
    let y = |row: u32| TOP + row * ROW_H + ROW_H / 2;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">"#
    );
    let _ = writeln!(
        svg,
        r#"<defs><marker id="head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>"#
    );
    for (node, (a, b)) in &nodes {
        let x0 = LEFT + a * COL_W + 2;
        let w = (b - a + 1) * COL_W - 4;
        let _ = writeln!(
            svg,
            r#"<g class="node"><rect x="{x0}" y="4" width="{w}" height="{}" rx="4"/><text x="{}" y="18">node {node}</text></g>"#,
            height - 8,
            x0 + 6
        );
    }
    for l in lanes.values() {
        let cx = LEFT + l.col * COL_W + COL_W / 2;
        let y0 = y(l.first_row) - ROW_H / 2;
        let y1 = l.last_row.map(y).unwrap_or(height - 20);
        let label = if l.name.is_empty() {
            show(l.pid)
        } else {
            format!("{} {}", l.name, show(l.pid))
        };
        let _ = writeln!(
            svg,
            r#"<g class="lifeline" data-pid="{}"><text x="{cx}" y="40" text-anchor="middle">{}</text><line x1="{cx}" y1="{}" x2="{cx}" y2="{y1}"/><line class="pre" x1="{cx}" y1="46" x2="{cx}" y2="{y0}"/></g>"#,
            esc(&show(l.pid)),
            esc(&label),
            y0.max(46),
        );
        if let Some(reason) = &l.exit {
            let _ = writeln!(
                svg,
                r#"<g class="end"><title>{}</title><rect x="{}" y="{}" width="12" height="4"/></g>"#,
                esc(reason),
                cx - 6,
                y1
            );
        }
    }
    for a in &arrows {
        let (x1, x2) = (x(&a.from), x(&a.to));
        let (y1, y2) = (y(a.from_row), y(a.to_row));
        let _ = writeln!(
            svg,
            r#"<line class="arrow {}" x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" marker-end="url(#head)"/>"#,
            a.class
        );
    }
    for (row, (time, mark)) in rows.iter().enumerate() {
        let cy = y(row as u32);
        let _ = writeln!(
            svg,
            r#"<text class="time" x="{}" y="{}" text-anchor="end">{time}</text>"#,
            LEFT - 8,
            cy + 4
        );
        match mark {
            Mark::Dot { lane, label, class } => {
                let cx = x(lane);
                let _ = writeln!(
                    svg,
                    r#"<g class="ev {class}"><circle cx="{cx}" cy="{cy}" r="3.5"/><text x="{}" y="{}">{}</text></g>"#,
                    cx + 6,
                    cy - 3,
                    esc(label)
                );
            }
            Mark::Band { label, class } => {
                let _ = writeln!(
                    svg,
                    r#"<g class="band {class}"><rect x="{LEFT}" y="{}" width="{}" height="{}"/><text x="{}" y="{}">{}</text></g>"#,
                    cy - ROW_H / 2 + 1,
                    cols * COL_W,
                    ROW_H - 2,
                    LEFT + 6,
                    cy + 4,
                    esc(label)
                );
            }
            Mark::NodeNote { node, label } => {
                let (a, _) = nodes[node];
                let _ = writeln!(
                    svg,
                    r#"<g class="ev nodeev"><text x="{}" y="{}">{}</text></g>"#,
                    LEFT + a * COL_W + 6,
                    cy + 4,
                    esc(label)
                );
            }
        }
    }
    svg.push_str("</svg>\n");

    let legend: Vec<String> = omitted
        .iter()
        .map(|(k, n)| format!("{n} {k}{}", if *n == 1 { "" } else { "s" }))
        .collect();
    let mut html = String::new();
    let _ = write!(
        html,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 12px ui-monospace, monospace; margin: 16px; color: #222; }}
h1 {{ font-size: 15px; margin: 0 0 4px; }}
p {{ margin: 2px 0; }}
.node rect {{ fill: #f6f7f9; stroke: #c9ced6; }}
.node text {{ font-weight: bold; fill: #555; }}
.lifeline line {{ stroke: #6b7280; stroke-width: 1.5; }}
.lifeline line.pre {{ stroke: #d1d5db; stroke-dasharray: 2 3; }}
.lifeline text {{ font-weight: bold; }}
.end rect {{ fill: #111; }}
.arrow {{ stroke: #2563eb; stroke-width: 1.2; fill: none; }}
.arrow.drop {{ stroke: #dc2626; stroke-dasharray: 4 3; }}
.arrow.hold {{ stroke: #a855f7; stroke-dasharray: 1 2; }}
marker path {{ fill: #2563eb; }}
.ev text {{ font-size: 10px; fill: #374151; }}
.ev circle {{ fill: #6b7280; }}
.ev.send circle, .ev.deliver circle {{ fill: #2563eb; }}
.ev.drop circle, .ev.exit circle {{ fill: #dc2626; }}
.ev.down circle {{ fill: #d97706; }}
.ev.spawn circle {{ fill: #16a34a; }}
.time {{ font-size: 10px; fill: #6b7280; }}
.band rect {{ fill: #fef3c7; opacity: 0.8; }}
.band.note rect {{ fill: #eef2ff; }}
.band.violated rect {{ fill: #fecaca; stroke: #dc2626; stroke-width: 2; opacity: 1; }}
.band text {{ font-size: 11px; }}
.band.violated text {{ font-weight: bold; fill: #991b1b; }}
</style></head>
<body data-lifelines-expected="{expected}" data-lifelines-rendered="0">
<h1>{title}</h1>
<p>{summary}</p>
<p>{repro}</p>
<p>{lanes} processes on {nodes} nodes, {rows} events drawn; not drawn: {legend}</p>
{svg}<script>
addEventListener("load", function () {{
  var n = 0;
  document.querySelectorAll("svg g.lifeline").forEach(function (g) {{
    var b = g.getBBox();
    if (b.width > 0 && b.height > 0) n++;
  }});
  document.body.setAttribute("data-lifelines-rendered", String(n));
}});
</script>
</body></html>
"#,
        title = esc(title),
        expected = lanes.len(),
        summary = esc(summary),
        repro = esc(repro),
        lanes = lanes.len(),
        nodes = nodes.len(),
        rows = rows.len(),
        legend = if legend.is_empty() {
            "nothing".to_string()
        } else {
            legend.join(", ")
        },
    );
    html
}

fn watcher_field(kind: &str) -> &'static str {
    match kind {
        "monitor" | "down" => "watcher",
        "signal" => "to",
        _ => "from",
    }
}

fn fields(line: &Line<'_>) -> String {
    line.fields
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn show(p: P) -> String {
    format!("<{}.{}.{}>", p.0, p.1, p.2)
}

/// Escapes text for XML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
