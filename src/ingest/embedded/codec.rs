//! MQTT 3.1.1 and 3.1 control packets as the embedded listener reads and writes them: only what a publishing
//! register sends (CONNECT, PUBLISH, PUBREL, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT) and what it is
//! answered.
//!
//! Guarantees: a packet's size is known from its fixed header before its body is read, and one above
//! [`MAX_PACKET`] is refused then; decoding returns an error for any malformed bytes and never panics.

use bytes::{Buf, Bytes, BytesMut};

/// The largest packet a register may send: 16 MiB. Far above the event contract's 64 KiB, so an oversized event
/// still arrives whole and is dead-lettered with its reason; a packet above it closes that connection.
pub const MAX_PACKET: usize = 16 * 1024 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub enum Packet {
    Connect(Connect),
    Publish(Publish),
    PubRel { pkid: u16 },
    Subscribe { pkid: u16, filters: usize },
    Unsubscribe { pkid: u16 },
    PingReq,
    Disconnect,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Connect {
    pub keep_alive: u16,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Publish {
    pub topic: String,
    pub qos: u8,
    pub pkid: u16,
    pub retain: bool,
    pub payload: Bytes,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "a packet of {0} bytes is above the limit ({MAX_PACKET} bytes; {MAX_CONNECT} for CONNECT)"
    )]
    TooLarge(usize),
    /// A CONNECT for a protocol level other than 3.1 (3) or 3.1.1 (4), such as MQTT 5: it is answered with the
    /// 3.1.1 "unacceptable protocol version" CONNACK.
    #[error("protocol level {0} is not MQTT 3.1.1 or 3.1")]
    UnacceptableProtocol(u8),
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
}

/// The largest CONNECT: a client that has not logged in yet gets no more memory than this.
pub const MAX_CONNECT: usize = 64 * 1024;

/// Takes the next whole packet off the front of `buf`, `Ok(None)` while it is still incomplete; one whose size
/// is above `max` (at most [`MAX_PACKET`]) is refused. An error means the connection cannot continue.
pub fn take(buf: &mut BytesMut, max: usize) -> Result<Option<Packet>, DecodeError> {
    let Some((header_len, remaining)) = fixed_header(buf)? else {
        return Ok(None);
    };
    if header_len + remaining > max {
        return Err(DecodeError::TooLarge(header_len + remaining));
    }
    if buf.len() < header_len + remaining {
        // Room for the next part only: memory follows the bytes that actually arrive, not what a header claims.
        buf.reserve((header_len + remaining - buf.len()).min(64 * 1024));
        return Ok(None);
    }
    let byte1 = buf[0];
    let mut frame = buf.split_to(header_len + remaining).freeze();
    frame.advance(header_len);
    decode(byte1, frame).map(Some)
}

/// The fixed header's length and the packet's remaining length, once enough bytes are there to know them.
fn fixed_header(buf: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut remaining = 0usize;
    for i in 0..4 {
        let Some(&byte) = buf.get(1 + i) else {
            return Ok(None);
        };
        remaining |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((2 + i, remaining)));
        }
    }
    Err(DecodeError::Malformed(
        "remaining length longer than 4 bytes",
    ))
}

fn decode(byte1: u8, mut body: Bytes) -> Result<Packet, DecodeError> {
    use DecodeError::Malformed;
    let flags = byte1 & 0x0F;
    let packet = match (byte1 >> 4, flags) {
        (1, 0) => Packet::Connect(connect(&mut body)?),
        (3, _) => Packet::Publish(publish(flags, &mut body)?),
        (6, 2) => Packet::PubRel {
            pkid: packet_id(&mut body)?,
        },
        (8, 2) => {
            let pkid = packet_id(&mut body)?;
            let mut filters = 0;
            while body.has_remaining() {
                string(&mut body)?;
                if u8(&mut body)? > 2 {
                    return Err(Malformed("subscription QoS above 2"));
                }
                filters += 1;
            }
            if filters == 0 {
                return Err(Malformed("SUBSCRIBE without a topic filter"));
            }
            Packet::Subscribe { pkid, filters }
        }
        (10, 2) => {
            let pkid = packet_id(&mut body)?;
            if !body.has_remaining() {
                return Err(Malformed("UNSUBSCRIBE without a topic filter"));
            }
            while body.has_remaining() {
                string(&mut body)?;
            }
            Packet::Unsubscribe { pkid }
        }
        (12, 0) => Packet::PingReq,
        (14, 0) => Packet::Disconnect,
        (1 | 6 | 8 | 10 | 12 | 14, _) => return Err(Malformed("reserved flags set")),
        _ => return Err(Malformed("a packet type a client does not send here")),
    };
    if body.has_remaining() {
        return Err(Malformed("bytes after the end of the packet"));
    }
    Ok(packet)
}

fn connect(body: &mut Bytes) -> Result<Connect, DecodeError> {
    use DecodeError::Malformed;
    let name = string(body)?;
    let level = u8(body)?;
    match (name.as_str(), level) {
        ("MQTT", 4) | ("MQIsdp", 3) => {}
        ("MQTT" | "MQIsdp", other) => return Err(DecodeError::UnacceptableProtocol(other)),
        _ => return Err(Malformed("not an MQTT protocol name")),
    }
    let flags = u8(body)?;
    if flags & 0x01 != 0 {
        return Err(Malformed("reserved CONNECT flag set"));
    }
    let keep_alive = u16(body)?;
    let client_id = string(body)?;
    // The will is read to reach the login after it, and dropped: nothing is ever published to anyone here.
    if flags & 0x04 != 0 {
        if (flags >> 3) & 0x03 > 2 {
            return Err(Malformed("will QoS above 2"));
        }
        string(body)?;
        binary(body)?;
    } else if flags & 0x38 != 0 {
        return Err(Malformed("will QoS or retain without a will"));
    }
    let username = (flags & 0x80 != 0).then(|| string(body)).transpose()?;
    let password = (flags & 0x40 != 0).then(|| binary(body)).transpose()?;
    Ok(Connect {
        keep_alive,
        client_id,
        username,
        password,
    })
}

fn publish(flags: u8, body: &mut Bytes) -> Result<Publish, DecodeError> {
    let qos = (flags >> 1) & 0x03;
    if qos == 3 {
        return Err(DecodeError::Malformed("PUBLISH with QoS 3"));
    }
    let topic = string(body)?;
    if topic.is_empty() || topic.contains(['+', '#']) {
        return Err(DecodeError::Malformed(
            "PUBLISH topic empty or with a wildcard",
        ));
    }
    let pkid = if qos > 0 { packet_id(body)? } else { 0 };
    Ok(Publish {
        topic,
        qos,
        pkid,
        retain: flags & 0x01 != 0,
        payload: body.split_off(0),
    })
}

fn u8(body: &mut Bytes) -> Result<u8, DecodeError> {
    body.try_get_u8()
        .map_err(|_| DecodeError::Malformed("packet ends early"))
}

fn u16(body: &mut Bytes) -> Result<u16, DecodeError> {
    body.try_get_u16()
        .map_err(|_| DecodeError::Malformed("packet ends early"))
}

fn packet_id(body: &mut Bytes) -> Result<u16, DecodeError> {
    match u16(body)? {
        0 => Err(DecodeError::Malformed("packet id 0")),
        id => Ok(id),
    }
}

fn binary(body: &mut Bytes) -> Result<Vec<u8>, DecodeError> {
    let len = usize::from(u16(body)?);
    if body.remaining() < len {
        return Err(DecodeError::Malformed("packet ends early"));
    }
    Ok(body.split_to(len).to_vec())
}

fn string(body: &mut Bytes) -> Result<String, DecodeError> {
    let text = String::from_utf8(binary(body)?)
        .map_err(|_| DecodeError::Malformed("a string is not UTF-8"))?;
    if text.contains('\0') {
        return Err(DecodeError::Malformed("a string holds U+0000"));
    }
    Ok(text)
}

/// CONNACK return codes (MQTT 3.1.1, 3.2.2.3).
pub mod refused {
    pub const PROTOCOL_VERSION: u8 = 1;
    pub const BAD_LOGIN: u8 = 4;
    pub const NOT_AUTHORIZED: u8 = 5;
}

/// CONNACK; the session is never present: nothing is kept for a register between its connections.
pub fn connack(code: u8) -> [u8; 4] {
    [0x20, 2, 0, code]
}

pub fn puback(pkid: u16) -> [u8; 4] {
    ack(0x40, pkid)
}

pub fn pubrec(pkid: u16) -> [u8; 4] {
    ack(0x50, pkid)
}

pub fn pubcomp(pkid: u16) -> [u8; 4] {
    ack(0x70, pkid)
}

pub fn unsuback(pkid: u16) -> [u8; 4] {
    ack(0xB0, pkid)
}

pub const PINGRESP: [u8; 2] = [0xD0, 0];

fn ack(byte1: u8, pkid: u16) -> [u8; 4] {
    let [hi, lo] = pkid.to_be_bytes();
    [byte1, 2, hi, lo]
}

/// SUBACK refusing every one of `filters` (0x80): registers only publish, and nothing is published to them.
pub fn suback_refused(pkid: u16, filters: usize) -> Vec<u8> {
    let remaining = 2 + filters;
    let mut out = Vec::with_capacity(5 + remaining);
    out.push(0x90);
    let mut len = remaining;
    loop {
        let byte = (len % 128) as u8;
        len /= 128;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(&pkid.to_be_bytes());
    out.resize(out.len() + filters, 0x80);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(bytes: &[u8]) -> Result<Option<Packet>, DecodeError> {
        take(&mut BytesMut::from(bytes), MAX_PACKET)
    }

    fn connect_bytes(name: &str, level: u8, flags: u8, rest: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&(name.len() as u16).to_be_bytes());
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(&[level, flags, 0, 30]);
        body.extend_from_slice(rest);
        let mut out = vec![0x10, body.len() as u8];
        out.extend(body);
        out
    }

    #[test]
    fn a_connect_with_a_login_is_read_for_mqtt_3_1_1_and_3_1() {
        let rest = [0, 2, b'r', b'1', 0, 1, b'u', 0, 2, b'p', b'w'];
        for (name, level) in [("MQTT", 4), ("MQIsdp", 3)] {
            let packet = one(&connect_bytes(name, level, 0xC2, &rest)).unwrap();
            assert_eq!(
                packet,
                Some(Packet::Connect(Connect {
                    keep_alive: 30,
                    client_id: "r1".into(),
                    username: Some("u".into()),
                    password: Some(b"pw".to_vec()),
                }))
            );
        }
    }

    #[test]
    fn an_mqtt_5_connect_is_an_unacceptable_protocol_version() {
        let packet = one(&connect_bytes("MQTT", 5, 0x02, &[0, 0, 0]));
        assert_eq!(packet, Err(DecodeError::UnacceptableProtocol(5)));
    }

    #[test]
    fn a_packet_above_the_limit_is_refused_from_its_fixed_header_alone() {
        // PUBLISH announcing 16 MiB + 1 byte of body: the four length bytes are all there is.
        let len = MAX_PACKET + 1;
        let header = [
            0x32,
            (len & 0x7F) as u8 | 0x80,
            ((len >> 7) & 0x7F) as u8 | 0x80,
            ((len >> 14) & 0x7F) as u8 | 0x80,
            (len >> 21) as u8,
        ];
        assert!(matches!(one(&header), Err(DecodeError::TooLarge(_))));
        // Before a login, 64 KiB is the limit.
        let connect = [0x10, 0xF0, 0xA2, 0x04];
        let refused = take(&mut BytesMut::from(&connect[..]), MAX_CONNECT);
        assert_eq!(refused, Err(DecodeError::TooLarge(70_004)));
    }

    #[test]
    fn a_publish_arrives_whole_and_its_packets_are_taken_one_at_a_time() {
        let mut buf = BytesMut::from(
            &[
                0x32, 9, 0, 3, b'a', b'/', b'b', 0, 7, b'h', b'i', 0xC0, 0, 0x32, 9,
            ][..],
        );
        let Some(Packet::Publish(p)) = take(&mut buf, MAX_PACKET).unwrap() else {
            panic!("a publish")
        };
        assert_eq!((p.topic.as_str(), p.qos, p.pkid), ("a/b", 1, 7));
        assert_eq!(&p.payload[..], b"hi");
        assert_eq!(take(&mut buf, MAX_PACKET).unwrap(), Some(Packet::PingReq));
        assert_eq!(
            take(&mut buf, MAX_PACKET).unwrap(),
            None,
            "the third is incomplete"
        );
    }

    #[test]
    fn a_suback_refuses_every_filter() {
        assert_eq!(suback_refused(9, 2), vec![0x90, 4, 0, 9, 0x80, 0x80]);
        let many = suback_refused(1, 200);
        // 202 remaining bytes take two length bytes.
        assert_eq!(&many[..5], &[0x90, 0xCA, 0x01, 0, 1]);
        assert_eq!(many.len(), 3 + 2 + 200);
    }

    /// Random, truncated and bit-flipped packets: every one is read as a packet, an error or "incomplete",
    /// never a panic.
    #[test]
    fn no_bytes_make_the_decoder_panic() {
        let seeds: Vec<Vec<u8>> = vec![
            connect_bytes(
                "MQTT",
                4,
                0xEE,
                &[
                    0, 2, b'r', b'1', 0, 1, b't', 0, 1, b'm', 0, 1, b'u', 0, 1, b'p',
                ],
            ),
            connect_bytes("MQIsdp", 3, 0x02, &[0, 0]),
            vec![0x34, 7, 0, 3, b'a', b'/', b'b', 0, 1],
            vec![0x82, 6, 0, 1, 0, 1, b'#', 1],
            vec![0xA2, 5, 0, 1, 0, 1, b'#'],
            vec![0x62, 2, 0, 1],
            vec![0xC0, 0],
            vec![0xE0, 0],
        ];
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..20_000 {
            let mut bytes = seeds[round % seeds.len()].clone();
            match next() % 4 {
                0 => bytes.truncate((next() as usize) % (bytes.len() + 1)),
                1 => {
                    for _ in 0..1 + next() % 4 {
                        let i = (next() as usize) % bytes.len();
                        bytes[i] ^= 1 << (next() % 8);
                    }
                }
                2 => bytes = (0..next() % 64).map(|_| next() as u8).collect(),
                _ => bytes.extend((0..next() % 8).map(|_| next() as u8)),
            }
            let mut buf = BytesMut::from(&bytes[..]);
            // Keep taking until the buffer is used up, incomplete, or refused.
            while let Ok(Some(_)) = take(&mut buf, MAX_PACKET) {}
        }
    }
}
