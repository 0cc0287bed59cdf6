//! SQL text both backends run as it is: conditions and patterns written once, so SQLite and PostgreSQL
//! cannot come to answer the same question differently.

/// The escape character of [`like_pattern`].
pub(crate) const ESCAPE: &str = " ESCAPE '\\'";

/// A LIKE pattern finding `word` anywhere: its own `%`, `_` and `\` are escaped to mean themselves.
pub(crate) fn like_pattern(word: &str) -> String {
    let mut pattern = String::with_capacity(word.len() + 2);
    pattern.push('%');
    for c in word.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Rows sleeping out a backoff after a failure, waiting past the bound that follows.
pub(crate) const WAITING_AFTER_FAILURE: &str = " WHERE state = 'pending' AND claimed_until_ms IS NULL AND last_error IS NOT NULL AND next_attempt_ms > ";

/// Events of `severity` or above, as SQL on `e`: by type, and a drawer open only while flagged
/// ([`crate::event::Severity::of`]). Built from the type list, so the two cannot disagree.
pub(crate) fn severity_condition(severity: crate::event::Severity) -> String {
    use crate::event::{EventType, Severity};
    if severity == Severity::Low {
        return "1 = 1".into();
    }
    let types: Vec<String> = EventType::ALL
        .into_iter()
        .filter(|t| *t != EventType::DrawerOpen && t.severity() >= severity)
        .map(|t| format!("'{}'", t.as_str()))
        .collect();
    let drawer_open = if EventType::DrawerOpen.severity() >= severity {
        " OR (e.type = 'drawer_open' AND e.flagged = TRUE)"
    } else {
        ""
    };
    format!("(e.type IN ({}){drawer_open})", types.join(", "))
}

/// The types that explain a drawer open ([`crate::event::EventType::explains_drawer_open`]), as stored.
pub(crate) const EXPLAINING_TYPES: &str = "('sale', 'refund', 'paid_in', 'paid_out')";
