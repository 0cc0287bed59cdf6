//! What a bookmark says on the camera system's timeline: a short name a guard can read at a glance
//! (`VOID ¥1,280 · r2 · c117`), a description with the transaction, reason and receipt, and tags that carry the
//! event key so the bookmark can be found again.

use chrono::DateTime;

use crate::money::format_amount;
use crate::store::EventRecord;

pub fn kind_label(kind: &str) -> String {
    kind.replace('_', " ").to_uppercase()
}

pub fn name(event: &EventRecord) -> String {
    let mut name = kind_label(&event.kind);
    if let Some(amount) = event.amount {
        name.push(' ');
        name.push_str(&format_amount(amount, event.currency.as_deref()));
    }
    name.push_str(" · ");
    name.push_str(&event.register);
    if let Some(cashier) = &event.cashier {
        name.push_str(" · ");
        name.push_str(cashier);
    }
    name
}

pub fn description(event: &EventRecord) -> String {
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
    if let Some(amount) = event.amount {
        out.push_str(&format!(
            "Amount: {}\n",
            format_amount(amount, event.currency.as_deref())
        ));
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
