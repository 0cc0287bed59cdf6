//! The topic is the register's identity: `{prefix…}/{store}/{register}/events`. Whoever may publish to a topic
//! (the broker's ACL, the embedded broker's per-register logins) decides which register an event comes from; a
//! body can only agree with it.

use super::{is_valid_id, mask_card_numbers};

/// The topic as kept: each level masked on its own, since `/` between two all-digit ids is no card number's
/// separator.
pub fn mask_topic(topic: &str) -> String {
    topic
        .split('/')
        .map(|level| mask_card_numbers(level))
        .collect::<Vec<_>>()
        .join("/")
}

/// Which registers a login or a signing key speaks for: one (`store/register`), or every register of a store
/// (`store/*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterScope {
    pub store: String,
    /// `None` for `store/*`.
    pub register: Option<String>,
}

impl RegisterScope {
    pub fn covers(&self, store: &str, register: &str) -> bool {
        self.store == store && self.register.as_deref().is_none_or(|r| r == register)
    }
}

/// The store and register a topic names, when it has the contract's shape: at least three levels, the last
/// `events`, the two before it valid ids.
pub fn topic_identity(topic: &str) -> Option<(&str, &str)> {
    let mut levels = topic.rsplit('/');
    if levels.next()? != "events" {
        return None;
    }
    let register = levels.next()?;
    let store = levels.next()?;
    (is_valid_id(store) && is_valid_id(register)).then_some((store, register))
}

#[cfg(test)]
mod tests {
    use super::topic_identity;

    #[test]
    fn the_two_levels_before_events_name_the_store_and_register() {
        assert_eq!(
            topic_identity("pos/shibuya-01/r2/events"),
            Some(("shibuya-01", "r2"))
        );
        assert_eq!(
            topic_identity("chain/jp/pos/osaka-03/r1/events"),
            Some(("osaka-03", "r1"))
        );
    }

    #[test]
    fn a_card_number_in_a_level_is_masked_and_digit_ids_side_by_side_are_not() {
        assert_eq!(
            super::mask_topic("pos/shibuya-01/4000000760000002/events"),
            "pos/shibuya-01/400000******0002/events"
        );
        // 0012345 and 000108 would read as one Luhn-valid 13-digit number across the slash.
        assert_eq!(
            super::mask_topic("pos/0012345/000108/events"),
            "pos/0012345/000108/events"
        );
    }

    #[test]
    fn topics_without_the_contract_shape_name_no_register() {
        for topic in [
            "pos/shibuya-01/r2",
            "shibuya-01/events",
            "events",
            "pos/shibuya 01/r2/events",
            "pos//r2/events",
            "pos/shibuya-01/+/events",
        ] {
            assert_eq!(topic_identity(topic), None, "{topic}");
        }
    }
}
