use super::*;

fn chart(lines: &[&str]) -> String {
    let lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    document(
        "t",
        "summary",
        "repro: groundhog replay t --variant v --seed 1",
        &lines,
    )
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

const RUN: &[&str] = &[
    "0.000000000 -- note msg=start scenario=t",
    "0.000000000 n0 node state=start incarnation=1",
    "0.001000000 n0 spawn pid=<0.1.1> name=watcher",
    "0.001000000 n1 spawn pid=<1.1.1> name=agent",
    "0.010000000 n0 monitor watcher=<0.1.1> pid=<1.1.1> reference=#0.1.1",
    "0.020000000 n1 send from=<1.1.1> to=<0.1.1> digest=0000abcd",
    "0.030000000 n0 heartbeat peer=1",
    "0.040000000 n0 deliver from=<1.1.1> to=<0.1.1> digest=0000abcd",
    "0.050000000 n1 send from=<1.1.1> to=<0.1.1> digest=0000beef",
    "0.060000000 -- fault fault=\"partition groups=[[0], [1]]\"",
    "0.070000000 n1 drop from=<1.1.1> to=<0.1.1> reason=node-down",
    "0.080000000 n0 node-down peer=1 why=silence",
    "0.080000000 n0 down watcher=<0.1.1> pid=<1.1.1> reference=#0.1.1 reason=noconnection",
    "0.090000000 n1 exit pid=<1.1.1> name=agent reason=error: lost <it> & more",
    "0.100000000 -- check invariant=fine result=ok",
    "0.100000000 -- check invariant=truth result=violated msg=\"agent <1.1.1> is Dead\"",
];

#[test]
fn one_lifeline_per_process_grouped_by_node() {
    let html = chart(RUN);
    assert_eq!(count(&html, r#"<g class="lifeline""#), 2);
    assert!(html.contains(r#"data-lifelines-expected="2""#));
    assert_eq!(count(&html, r#"<g class="node">"#), 2);
    assert!(html.contains("watcher &lt;0.1.1&gt;"));
    assert!(html.contains("agent &lt;1.1.1&gt;"));
}

#[test]
fn sends_are_matched_to_deliveries_and_drops_by_digest() {
    let html = chart(RUN);
    assert_eq!(count(&html, r#"class="arrow deliver""#), 1);
    assert_eq!(count(&html, r#"class="arrow drop""#), 1);
    // The delivery's arrow starts on the first send's row (row 5: heartbeats are not rows).
    let y_send = TOP + 5 * ROW_H + ROW_H / 2;
    assert!(
        html.contains(&format!(
            r#"class="arrow deliver" x1="{}" y1="{y_send}""#,
            LEFT + COL_W + COL_W / 2
        )),
        "{html}"
    );
}

#[test]
fn the_violated_check_is_highlighted_and_passing_ones_and_heartbeats_are_counted() {
    let html = chart(RUN);
    assert_eq!(count(&html, r#"class="band violated""#), 1);
    assert!(html.contains("check truth violated: agent &lt;1.1.1&gt; is Dead"));
    assert!(!html.contains("invariant=fine"));
    assert!(html.contains("not drawn: 1 heartbeat, 1 passing check"));
    assert_eq!(count(&html, r#"class="band fault""#), 1);
}

#[test]
fn text_from_the_trace_is_escaped() {
    let html = chart(RUN);
    assert!(html.contains("exit error: lost &lt;it&gt; &amp; more"));
    // Nothing from the trace opens a tag: every '<' in the SVG body starts a known element.
    let svg = &html[html.find("<svg").unwrap()..html.find("</svg>").unwrap()];
    for tag in svg.split('<').skip(1) {
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '/')
            .collect();
        assert!(
            [
                "svg", "defs", "marker", "path", "/marker", "/defs", "g", "/g", "rect", "text",
                "/text", "line", "circle", "title", "/title"
            ]
            .contains(&name.as_str()),
            "unexpected tag <{name}"
        );
    }
}

#[test]
fn a_lifeline_ends_at_its_exit() {
    let html = chart(RUN);
    // The agent's exit is row 12 (0-based; the heartbeat and the passing check are not rows).
    let y_exit = TOP + 12 * ROW_H + ROW_H / 2;
    let agent = html
        .split(r#"data-pid="&lt;1.1.1&gt;""#)
        .nth(1)
        .expect("agent lifeline");
    let first_line = agent.split("<line").nth(1).expect("a line");
    assert!(
        first_line.contains(&format!(r#"y2="{y_exit}""#)),
        "{first_line}"
    );
}

#[test]
fn a_delivery_is_matched_to_the_send_with_its_digest_not_the_oldest() {
    let html = chart(&[
        "0.001000000 n1 send from=<1.1.1> to=<0.1.1> digest=0000abcd",
        "0.002000000 n1 send from=<1.1.1> to=<0.1.1> digest=0000beef",
        "0.003000000 n0 deliver from=<1.1.1> to=<0.1.1> digest=0000beef",
    ]);
    let y_second = TOP + ROW_H + ROW_H / 2;
    assert!(
        html.contains(&format!(
            r#"class="arrow deliver" x1="{}" y1="{y_second}""#,
            LEFT + COL_W + COL_W / 2
        )),
        "{html}"
    );
}
