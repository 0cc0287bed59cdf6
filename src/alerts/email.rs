//! Email alerts over SMTP: TLS from the start (`smtps://`) or STARTTLS, which is then required; plain SMTP
//! only to a relay on this machine. The text is the store's language; the `Message-ID` is the same for every
//! attempt of one outbox row, so a mail client shows a message sent twice (a daemon killed mid-send) once.

use std::time::Duration;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Mailbox, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use sha2::Digest;

use super::{Failure, Message};
use crate::config::{SmtpConfig, SmtpSecurity};

pub(super) async fn send(
    smtp: &SmtpConfig,
    from: &Mailbox,
    to: &[Mailbox],
    message: &Message,
    key: &str,
    timeout: Duration,
) -> Result<(), Failure> {
    let (subject, text) = message.email();
    let id = hex::encode(&sha2::Sha256::digest(key.as_bytes())[..16]);
    let mut builder = lettre::Message::builder()
        .from(from.clone())
        .subject(subject)
        .message_id(Some(format!("<{id}@tillmark>")));
    for address in to {
        builder = builder.to(address.clone());
    }
    // Base64, which every relay carries, rather than 8-bit text that some refuse.
    let email = builder
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .header(ContentTransferEncoding::Base64)
                .body(text),
        )
        .map_err(|e| Failure::Refused(format!("the email cannot be written: {e}")))?;
    let transport = match smtp.security {
        SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host),
        SmtpSecurity::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host),
        SmtpSecurity::Plain => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            &smtp.host,
        )),
    }
    .map_err(|e| Failure::Refused(format!("the mail server's TLS cannot be set up: {e}")))?;
    let mut transport = transport.port(smtp.port).timeout(Some(timeout));
    if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
        transport = transport.credentials(Credentials::new(
            user.clone(),
            password.expose().to_string(),
        ));
    }
    match transport.build().send(email).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_permanent() => Err(Failure::Refused(format!(
            "the mail server refused the alert: {e}"
        ))),
        Err(e) => Err(Failure::Retry {
            error: format!("the mail server did not take the alert: {e}"),
            retry_after: None,
        }),
    }
}
