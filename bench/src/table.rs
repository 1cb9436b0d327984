//! The printed table: figure, Groundhog, baseline, ratio, target, met?

/// What a side-by-side figure is: its name, its operation count, its baseline, its target ratio.
pub struct Figure<'a> {
    pub name: &'a str,
    /// Operations per sample; results are per operation.
    pub ops: u64,
    pub baseline: &'a str,
    /// The largest acceptable Groundhog:baseline ratio.
    pub target: f64,
}

pub struct Row {
    pub figure: String,
    pub groundhog: String,
    pub baseline: String,
    pub ratio: String,
    pub target: String,
    pub met: Option<bool>,
}

#[derive(Default)]
pub struct Table {
    rows: Vec<Row>,
}

impl Table {
    pub fn new() -> Self {
        Table::default()
    }

    pub fn push(&mut self, row: Row) {
        eprintln!("measured: {}", row.figure);
        self.rows.push(row);
    }

    pub fn print(&self) {
        println!("| figure | Groundhog | baseline | ratio | target | met? |");
        println!("|---|---|---|---|---|---|");
        for r in &self.rows {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "no",
                None => "n/a",
            };
            println!(
                "| {} | {} | {} | {} | {} | {met} |",
                r.figure, r.groundhog, r.baseline, r.ratio, r.target
            );
        }
    }
}
