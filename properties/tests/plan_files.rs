//! Plan files from the plan grammar, then mutated (a byte changed, a line dropped or doubled, a key
//! misspelt, a number pushed to its limits): parsing and validation either accept the plan or give
//! one line, and never panic. `plan` must also be able to print whatever validation accepts.

use groundhog_sim::{FaultPlan, PlanLimits};
use proptest::prelude::*;

use crate::{config, strategies};

/// How a well-formed plan text is damaged.
#[derive(Debug, Clone)]
enum Mutation {
    Byte { at: usize, to: u8 },
    DropLine(usize),
    DoubleLine(usize),
    Misspell(usize),
    Extreme { line: usize, value: &'static str },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let extreme = prop::sample::select(vec![
        "18446744073709551615",
        "9223372036854775807",
        "-1",
        "1e308",
        "nan",
        "inf",
        "0",
        "[]",
        "[[]]",
        "\"\"",
    ]);
    prop_oneof![
        1 => (any::<usize>(), any::<u8>()).prop_map(|(at, to)| Mutation::Byte { at, to }),
        1 => any::<usize>().prop_map(Mutation::DropLine),
        1 => any::<usize>().prop_map(Mutation::DoubleLine),
        1 => any::<usize>().prop_map(Mutation::Misspell),
        3 => (any::<usize>(), extreme).prop_map(|(line, value)| Mutation::Extreme { line, value }),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let n = lines.len().max(1);
    match m {
        Mutation::Byte { at, to } => {
            let mut bytes = text.as_bytes().to_vec();
            if !bytes.is_empty() {
                let i = at % bytes.len();
                bytes[i] = *to;
            }
            return String::from_utf8_lossy(&bytes).into_owned();
        }
        Mutation::DropLine(i) if !lines.is_empty() => {
            lines.remove(i % n);
        }
        Mutation::DoubleLine(i) if !lines.is_empty() => {
            let l = lines[i % n].clone();
            lines.insert(i % n, l);
        }
        Mutation::Misspell(i) if !lines.is_empty() => {
            let l = &mut lines[i % n];
            if let Some(eq) = l.find(" =") {
                l.insert(eq, 'x');
            } else if l.starts_with("[[") {
                l.insert(2, 'x');
            }
        }
        Mutation::Extreme { line, value } => {
            // Only lines that hold a value: a number pushed to its limits is the point.
            let values: Vec<usize> = (0..lines.len())
                .filter(|&i| {
                    lines[i].contains("= ")
                        || lines[i]
                            .trim_end()
                            .ends_with(|c: char| c.is_ascii_digit() || c == ',')
                })
                .collect();
            if values.is_empty() {
                return text.to_string();
            }
            let l = &mut lines[values[line % values.len()]];
            if let Some(eq) = l.find("= ").or_else(|| l.find(": ")) {
                let comma = l.ends_with(',');
                l.truncate(eq + 2);
                l.push_str(value);
                if comma {
                    l.push(',');
                }
            }
        }
        _ => {}
    }
    lines.join("\n") + "\n"
}

proptest! {
    #![proptest_config(config(256, file!()))]

    #[test]
    fn mutated_plans_parse_and_validate_without_panicking(
        plan in strategies::plan(4, 3_000, 8),
        m in mutation(),
        json in any::<bool>(),
    ) {
        let text = if json {
            serde_json::to_string_pretty(&plan).unwrap()
        } else {
            plan.to_toml().unwrap()
        };
        let damaged = apply(&text, &m);
        let limits = PlanLimits { nodes: 4, time_limit_ms: 600_000, settle_ms: 2_000 };
        match FaultPlan::parse(&damaged, json) {
            Err(message) => prop_assert!(!message.is_empty()),
            Ok(parsed) => {
                if parsed.validate(limits, Some("p")).is_ok() {
                    // What validation accepts, `plan` can print, and it reads back the same.
                    let again = FaultPlan::parse(&parsed.to_toml().unwrap(), false).unwrap();
                    prop_assert_eq!(again, parsed);
                }
            }
        }
    }
}
