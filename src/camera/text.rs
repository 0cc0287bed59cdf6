//! What a bookmark says on the camera system's timeline: a short name a guard can read at a glance
//! (`VOID ¥1,280 · r2 · c117`), a description with the transaction, reason and receipt, and tags that carry the
//! event key so the bookmark can be found again. [`super::mark::Mark`] puts them together once per attempt.

use chrono::DateTime;

use crate::store::EventRecord;

pub fn kind_label(kind: &str) -> String {
    kind.replace('_', " ").to_uppercase()
}

/// `amount`: the event's amount as people read it (`¥1,280`), formatted once for the whole mark.
pub fn name(event: &EventRecord, amount: Option<&str>) -> String {
    let mut name = kind_label(&event.kind);
    if let Some(amount) = amount {
        name.push(' ');
        name.push_str(amount);
    }
    name.push_str(" · ");
    name.push_str(&event.register);
    if let Some(cashier) = &event.cashier {
        name.push_str(" · ");
        name.push_str(cashier);
    }
    name
}

pub fn description(event: &EventRecord, amount: Option<&str>) -> String {
    let at = DateTime::parse_from_rfc3339(&event.at)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f %:z").to_string())
        .unwrap_or_else(|_| event.at.clone());
    let mut out = format!(
        "{} at {}/{} — {at}\n",
        kind_label(&event.kind),
        event.store,
        event.register
    );
    if let Some(cashier) = &event.cashier {
        out.push_str(&format!("Cashier: {cashier}\n"));
    }
    if let Some(txn) = &event.transaction {
        out.push_str(&format!("Transaction: {txn}\n"));
    }
    if let Some(amount) = amount {
        out.push_str(&format!("Amount: {amount}\n"));
    }
    if let Some(reason) = &event.reason {
        out.push_str(&format!("Reason: {reason}\n"));
    }
    if !event.lines.is_empty() {
        out.push('\n');
        for line in &event.lines {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(&format!("\ntillmark {}", event.key));
    out
}

/// `tillmark`, the type, and the event key: the key is how a bookmark is found after an uncertain create.
pub fn tags(event: &EventRecord) -> Vec<String> {
    vec![
        "tillmark".to_string(),
        event.kind.clone(),
        event.key.clone(),
    ]
}
