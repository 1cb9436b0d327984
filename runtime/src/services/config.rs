//! A configuration checked as a whole before anything starts.

use std::fmt;

/// One thing wrong with a configuration: which field, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub problem: String,
}

/// Every problem found, in the order the configuration checked its fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

/// A configuration that can check itself: [`Validate::check`] reports every problem to
/// `problems` and returns nothing, so one bad field cannot hide the next.
pub trait Validate {
    fn check(&self, problems: &mut Problems);
}

impl Validate for () {
    fn check(&self, _: &mut Problems) {}
}

impl Problems {
    /// All of `config`'s problems.
    pub fn of(config: &dyn Validate) -> Problems {
        let mut p = Problems::default();
        config.check(&mut p);
        p
    }

    /// Records a problem with `field`.
    pub fn add(&mut self, field: &str, problem: impl Into<String>) {
        self.0.push(Problem {
            field: field.to_string(),
            problem: problem.into(),
        });
    }

    /// Records a problem with `field` unless `ok`.
    pub fn require(&mut self, ok: bool, field: &str, problem: impl Into<String>) {
        if !ok {
            self.add(field, problem);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self
            .0
            .iter()
            .map(|p| format!("{}: {}", p.field, p.problem))
            .collect();
        write!(f, "{} problem(s): {}", self.0.len(), all.join("; "))
    }
}
