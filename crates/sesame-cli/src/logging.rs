//! The log filter of the `sesame` binary.

/// The directive that keeps PostgreSQL's notices (`relation … already
/// exists, skipping`, three on every `migrate` after the first) out of an
/// `info` log.
const QUIET_NOTICES: &str = "sqlx::postgres::notice=warn";

/// The `tracing` filter for `RUST_LOG`'s value (`info` when unset):
/// PostgreSQL's notices are shown from `warn` up, unless `RUST_LOG` names
/// `sqlx` itself (`RUST_LOG=info,sqlx=info` shows them).
#[must_use]
pub fn filter(rust_log: Option<&str>) -> String {
    let given = rust_log.map(str::trim).filter(|s| !s.is_empty());
    match given {
        Some(directives) if directives.contains("sqlx") => directives.to_owned(),
        Some(directives) => format!("{directives},{QUIET_NOTICES}"),
        None => format!("info,{QUIET_NOTICES}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_notices_are_quiet_unless_sqlx_is_named() {
        assert_eq!(filter(None), "info,sqlx::postgres::notice=warn");
        assert_eq!(filter(Some(" ")), "info,sqlx::postgres::notice=warn");
        assert_eq!(filter(Some("debug")), "debug,sqlx::postgres::notice=warn");
        assert_eq!(filter(Some("info,sqlx=info")), "info,sqlx=info");
    }
}
