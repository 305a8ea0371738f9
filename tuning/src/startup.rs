//! What `odradek serve` does with the checks and autotune at start-up: every check once, each
//! warning logged once, the first fatal finding returned; each autotune decision logged.

use tracing::{Level, event, info};

use crate::autotune::{Autotune, InUse, Use};
use crate::checks::{self, Ctx, Finding, Severity};

/// Logs a finding at `$level` with its id, values and fix as fields.
macro_rules! log_finding {
    ($level:expr, $f:expr, $message:literal) => {
        event!(
            $level,
            check = $f.id,
            current = %$f.current,
            recommended = %$f.recommended,
            fix = %$f.fix,
            $message
        )
    };
}

/// Runs every check once and logs each problem once (warnings at `warn`, notes at `debug`).
/// Returns the findings, or the first fatal one: the node must not start.
pub fn run_checks(ctx: &Ctx<'_>) -> Result<Vec<Finding>, Box<Finding>> {
    let findings = checks::run(&checks::all(), ctx);
    for f in &findings {
        match f.severity {
            Severity::Fatal => return Err(Box::new(f.clone())),
            Severity::Warning => {
                log_finding!(Level::WARN, f, "host check: run `odradek tune` for all checks")
            }
            Severity::Info => log_finding!(Level::DEBUG, f, "host check"),
            Severity::Ok | Severity::NotApplicable => {}
        }
    }
    Ok(findings)
}

/// Logs each decision: `applied` when the node runs with it, `overridden` when a flag or the
/// config file set the knob instead, `advisory` for figures the node has no knob for.
pub fn log_autotune(tuned: &Autotune, in_use: &InUse) {
    for line in tuned.lines(Some(in_use)) {
        info!(
            knob = line.knob,
            value = %line.value,
            applied = line.used == Use::Applied,
            overridden = line.used == Use::Overridden,
            advisory = line.used == Use::Advisory,
            reason = %line.reason,
            "autotune"
        );
    }
}
