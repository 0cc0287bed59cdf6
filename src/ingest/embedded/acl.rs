//! Who may connect to the embedded listener and what each may publish.
//!
//! Guarantees: with any `[[mqtt.clients]]` login configured, a connection without a matching username and
//! password is refused, passwords are compared in constant time and never logged; a logged-in register may
//! publish only to topics naming its own register (or any register of its store, for `store/*`). Every client
//! may publish only to topics the daemon's `[mqtt] topics` filters accept.

use subtle::ConstantTimeEq;

use super::codec::refused;
use crate::config::{MqttClient, MqttConfig, RegisterScope};
use crate::event::topic_identity;

pub struct Acl {
    filters: Vec<String>,
    clients: Vec<MqttClient>,
}

/// What a connection proved at CONNECT.
#[derive(Debug, Clone)]
pub enum Identity {
    /// No logins are configured (loopback only): any accepted topic.
    Open,
    Login {
        username: String,
        scope: RegisterScope,
    },
}

pub enum Refusal {
    /// A topic no `[mqtt] topics` filter accepts.
    Topic,
    /// An accepted topic for a register this login does not speak for.
    Register,
}

impl Acl {
    pub fn new(config: &MqttConfig) -> Acl {
        Acl {
            // A shared subscription (`$share/group/filter`) accepts what its filter does.
            filters: config
                .topics
                .iter()
                .map(|t| match t.strip_prefix("$share/") {
                    Some(rest) => rest.split_once('/').map_or(rest, |(_, f)| f).to_string(),
                    None => t.clone(),
                })
                .collect(),
            clients: config.clients.clone(),
        }
    }

    /// Whether any client may connect (no logins configured).
    pub fn is_open(&self) -> bool {
        self.clients.is_empty()
    }

    /// The identity a CONNECT's login proves, or the CONNACK return code refusing it.
    pub fn login(&self, username: Option<&str>, password: Option<&[u8]>) -> Result<Identity, u8> {
        if self.is_open() {
            return Ok(Identity::Open);
        }
        let (Some(username), Some(password)) = (username, password) else {
            return Err(refused::NOT_AUTHORIZED);
        };
        // Every login's password is compared, so the time taken tells nothing about which usernames exist.
        let mut found = None;
        for client in &self.clients {
            let same_password: bool = client.password.expose().as_bytes().ct_eq(password).into();
            if same_password && client.username == username {
                found = Some(client);
            }
        }
        found
            .map(|c| Identity::Login {
                username: c.username.clone(),
                scope: c.register.clone(),
            })
            .ok_or(refused::BAD_LOGIN)
    }

    pub fn may_publish(&self, identity: &Identity, topic: &str) -> Result<(), Refusal> {
        if !self
            .filters
            .iter()
            .any(|f| rumqttc::mqttbytes::matches(topic, f))
        {
            return Err(Refusal::Topic);
        }
        match identity {
            Identity::Open => Ok(()),
            Identity::Login { scope, .. } => match topic_identity(topic) {
                Some((store, register)) if scope.covers(store, register) => Ok(()),
                _ => Err(Refusal::Register),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn acl(extra: &str) -> Acl {
        let text = format!(
            "[mqtt]\ntopics = [\"$share/tillmark/pos/+/+/events\"]\n{extra}\n[[stores]]\nid = \"s1\"\ntimezone = \"UTC\"\n"
        );
        let config = Config::parse(&text, &|_| Some("pw-1".into())).expect("valid");
        Acl::new(&config.mqtt)
    }

    const R1: &str =
        "[[mqtt.clients]]\nusername = \"u1\"\npassword_env = \"P\"\nregister = \"s1/r1\"\n";

    #[test]
    fn without_logins_any_client_may_publish_to_an_accepted_topic_only() {
        let acl = acl("");
        let open = acl.login(None, None).expect("open");
        assert!(acl.may_publish(&open, "pos/s1/r9/events").is_ok());
        assert!(matches!(
            acl.may_publish(&open, "other/s1/r9/events"),
            Err(Refusal::Topic)
        ));
    }

    #[test]
    fn a_login_needs_its_username_and_its_password() {
        let acl = acl(R1);
        assert_eq!(acl.login(None, None).err(), Some(refused::NOT_AUTHORIZED));
        assert_eq!(
            acl.login(Some("u1"), Some(b"pw-2")).err(),
            Some(refused::BAD_LOGIN)
        );
        assert_eq!(
            acl.login(Some("u2"), Some(b"pw-1")).err(),
            Some(refused::BAD_LOGIN)
        );
        assert!(acl.login(Some("u1"), Some(b"pw-1")).is_ok());
    }

    #[test]
    fn a_login_publishes_for_its_register_or_its_stores_registers_only() {
        let acl1 = acl(R1);
        let r1 = acl1.login(Some("u1"), Some(b"pw-1")).unwrap();
        assert!(acl1.may_publish(&r1, "pos/s1/r1/events").is_ok());
        assert!(acl1.may_publish(&r1, "pos/s1/r2/events").is_err());
        let acl2 = acl(&R1.replace("s1/r1", "s1/*"));
        let store = acl2.login(Some("u1"), Some(b"pw-1")).unwrap();
        assert!(acl2.may_publish(&store, "pos/s1/r2/events").is_ok());
        assert!(acl2.may_publish(&store, "pos/s2/r1/events").is_err());
    }
}
