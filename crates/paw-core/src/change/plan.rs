//! A plan: the actions decided, in order, and what refuses them.

use serde::Serialize;

use super::Action;
use crate::error::{Error, ErrorKind, Result};

/// Why a plan may not be applied, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub reason: String,
    pub help: String,
}

/// A change decided whole: its actions, in the order they are applied, and what refuses it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub refusals: Vec<Refusal>,
}

impl Plan {
    pub fn refuse(&mut self, reason: impl Into<String>, help: impl Into<String>) {
        self.refusals.push(Refusal { reason: reason.into(), help: help.into() });
    }

    /// The refusals as one error (each reason, each help), or Ok when nothing refuses the plan.
    pub fn check(&self) -> Result<()> {
        let Some(first) = self.refusals.first() else { return Ok(()) };
        let mut helps: Vec<&str> = Vec::new();
        for refusal in &self.refusals {
            if !helps.contains(&refusal.help.as_str()) {
                helps.push(&refusal.help);
            }
        }
        let err = match self.refusals.len() {
            1 => Error::new(ErrorKind::Usage, format!("{}; nothing was changed", first.reason)),
            count => Error::new(ErrorKind::Usage, format!("{count} things refuse this change; nothing was changed"))
                .details(self.refusals.iter().map(|refusal| refusal.reason.as_str()).collect::<Vec<_>>().join("\n")),
        };
        Err(err.help(helps.join("; ")))
    }
}
