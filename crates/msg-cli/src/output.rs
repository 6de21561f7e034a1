//! Printing received messages on stdout as text, hex or JSON lines.
//!
//! Every record is written with one `write_all` on a locked stdout and
//! flushed at once, so records from concurrent handlers never interleave and
//! a reader at the other end of a pipe sees each as soon as it arrives.

use std::fmt::Write as _;
use std::io::{self, Write};

use msg::{Message, PeerInfo, PubMessage};
use serde_json::{Map, Value};

use crate::cli::Format;

/// The error for a stdout whose reader went away (`msg sub | head -1`):
/// `main` ends the program quietly and successfully on it.
#[derive(Debug)]
pub(crate) struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Writes records to stdout in one [`Format`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Printer {
    format: Format,
}

impl Printer {
    /// A printer for `format`.
    pub(crate) fn new(format: Format) -> Self {
        Self { format }
    }

    /// A reply (`msg req`): the payload alone.
    pub(crate) fn reply(&self, payload: &[u8]) -> anyhow::Result<()> {
        let line = match self.format {
            Format::Text => text_line(payload),
            Format::Hex => hex_line(&[payload]),
            Format::Json => {
                let mut record = Map::new();
                put_bytes(&mut record, "payload", payload);
                json_line(record)
            }
        };
        emit(&line)
    }

    /// A received request (`msg rep`): the payload, and in JSON who sent it.
    pub(crate) fn request(&self, payload: &[u8], peer: &PeerInfo) -> anyhow::Result<()> {
        let line = match self.format {
            Format::Text => text_line(payload),
            Format::Hex => hex_line(&[payload]),
            Format::Json => {
                let mut record = Map::new();
                record.insert("peer".into(), Value::String(peer.addr.to_string()));
                put_bytes(&mut record, "identity", &peer.identity);
                put_bytes(&mut record, "payload", payload);
                json_line(record)
            }
        };
        emit(&line)
    }

    /// A published message (`msg sub`): topic and payload, and in JSON its
    /// sequence number, its publisher connection, and what was lost before
    /// it. In text and hex, losses and restarts go to stderr as notices.
    pub(crate) fn message(&self, message: &PubMessage, lost: Lost) -> anyhow::Result<()> {
        let (topic, payload) = (message.topic(), message.payload());
        let line = match self.format {
            Format::Text | Format::Hex => {
                let from = &message.publisher().addr;
                if lost.restart {
                    eprintln!(
                        "msg: stream from {from} restarted on a new connection; what was \
                         published in between is lost"
                    );
                }
                if lost.missing > 0 {
                    eprintln!(
                        "msg: {} message(s) from {from} lost before seq {}",
                        lost.missing,
                        message.seq()
                    );
                }
                if self.format == Format::Hex {
                    hex_line(&[topic, payload])
                } else {
                    let mut line = String::from_utf8_lossy(topic).into_owned();
                    line.push(' ');
                    line.push_str(&text_line(payload));
                    line
                }
            }
            Format::Json => {
                let mut record = Map::new();
                put_bytes(&mut record, "topic", topic);
                put_bytes(&mut record, "payload", payload);
                record.insert("seq".into(), Value::from(message.seq()));
                record.insert("conn".into(), Value::from(message.publisher().conn_id));
                if message.is_first() {
                    record.insert("first".into(), Value::Bool(true));
                }
                if lost.restart {
                    record.insert("restart".into(), Value::Bool(true));
                }
                if lost.missing > 0 {
                    record.insert("lost".into(), Value::from(lost.missing));
                }
                json_line(record)
            }
        };
        emit(&line)
    }
}

/// What a subscriber lost before a message, as its numbering shows.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Lost {
    /// The message starts a publisher's stream again on a new connection.
    pub(crate) restart: bool,
    /// Messages missing from the sequence just before it.
    pub(crate) missing: u64,
}

impl Printer {
    /// A pulled message (`msg pull`): its payload, or for a multipart
    /// message its parts (separated by spaces in text and hex, a `parts`
    /// array in JSON).
    pub(crate) fn parts(&self, message: &Message) -> anyhow::Result<()> {
        self.parts_from(message, None)
    }

    /// A message a router took (`msg router`): as [`parts`](Self::parts),
    /// and in JSON the identity of the peer it came from.
    pub(crate) fn routed(&self, identity: &[u8], message: &Message) -> anyhow::Result<()> {
        self.parts_from(message, Some(identity))
    }

    fn parts_from(&self, message: &Message, identity: Option<&[u8]>) -> anyhow::Result<()> {
        let parts: Vec<&[u8]> = message.iter().map(|part| &part[..]).collect();
        let line = match self.format {
            Format::Text => {
                let texts: Vec<_> = parts.iter().map(|p| String::from_utf8_lossy(p)).collect();
                text_line(texts.join(" ").as_bytes())
            }
            Format::Hex => hex_line(&parts),
            Format::Json => {
                let mut record = Map::new();
                if let Some(identity) = identity {
                    put_bytes(&mut record, "identity", identity);
                }
                if let [payload] = parts[..] {
                    put_bytes(&mut record, "payload", payload);
                } else {
                    put_parts(&mut record, &parts);
                }
                json_line(record)
            }
        };
        emit(&line)
    }

    /// A reliable delivery (`msg recv`): the payload, and in JSON the
    /// sending peer and the message's sequence number from it.
    pub(crate) fn delivery(&self, peer: &[u8], seq: u64, payload: &[u8]) -> anyhow::Result<()> {
        let line = match self.format {
            Format::Text => text_line(payload),
            Format::Hex => hex_line(&[payload]),
            Format::Json => {
                let mut record = Map::new();
                put_bytes(&mut record, "peer", peer);
                record.insert("seq".into(), Value::from(seq));
                put_bytes(&mut record, "payload", payload);
                json_line(record)
            }
        };
        emit(&line)
    }
}

/// The payload as text, ending with exactly one newline of its own or
/// ours.
fn text_line(payload: &[u8]) -> String {
    let mut line = String::from_utf8_lossy(payload).into_owned();
    if !line.ends_with('\n') {
        line.push('\n');
    }
    line
}

/// Each field in lowercase hex, separated by spaces.
fn hex_line(fields: &[&[u8]]) -> String {
    let mut line = String::new();
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        line.push_str(&hex(field));
    }
    line.push('\n');
    line
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Adds `bytes` as a string under `name`, or as hex under `name_hex` when
/// they are not UTF-8: JSON strings cannot carry arbitrary bytes.
fn put_bytes(record: &mut Map<String, Value>, name: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => record.insert(name.to_owned(), Value::String(text.to_owned())),
        Err(_) => record.insert(format!("{name}_hex"), Value::String(hex(bytes))),
    };
}

/// Adds `parts` as an array of strings under `parts`, or, when any is not
/// UTF-8, of hex strings under `parts_hex`.
fn put_parts(record: &mut Map<String, Value>, parts: &[&[u8]]) {
    let texts: Option<Vec<Value>> = parts
        .iter()
        .map(|p| {
            std::str::from_utf8(p)
                .ok()
                .map(|t| Value::String(t.to_owned()))
        })
        .collect();
    match texts {
        Some(texts) => record.insert("parts".to_owned(), Value::Array(texts)),
        None => record.insert(
            "parts_hex".to_owned(),
            Value::Array(parts.iter().map(|p| Value::String(hex(p))).collect()),
        ),
    };
}

fn json_line(record: Map<String, Value>) -> String {
    let mut line = Value::Object(record).to_string();
    line.push('\n');
    line
}

/// Writes and flushes one record; a closed stdout becomes [`StdoutClosed`].
pub(crate) fn emit(line: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(line.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| {
            if e.kind() == io::ErrorKind::BrokenPipe {
                anyhow::Error::new(StdoutClosed)
            } else {
                anyhow::Error::new(e).context("cannot write to stdout")
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lines_end_with_one_newline() {
        assert_eq!(text_line(b"hi"), "hi\n");
        assert_eq!(text_line(b"hi\n"), "hi\n");
        assert_eq!(text_line(b""), "\n");
        assert_eq!(text_line(&[0xff, b'a']), "\u{fffd}a\n");
    }

    #[test]
    fn hex_lines_separate_fields() {
        assert_eq!(hex_line(&[b"ab", &[0, 255]]), "6162 00ff\n");
    }

    #[test]
    fn multipart_parts_are_an_array() {
        let mut record = Map::new();
        put_parts(&mut record, &[b"a", b""]);
        assert_eq!(json_line(record), "{\"parts\":[\"a\",\"\"]}\n");
        let mut record = Map::new();
        put_parts(&mut record, &[b"a", &[0xff]]);
        assert_eq!(json_line(record), "{\"parts_hex\":[\"61\",\"ff\"]}\n");
    }

    #[test]
    fn json_falls_back_to_hex_for_binary() {
        let mut record = Map::new();
        put_bytes(&mut record, "payload", &[0xff, 0x00]);
        put_bytes(&mut record, "topic", b"t\"1");
        assert_eq!(
            json_line(record),
            "{\"payload_hex\":\"ff00\",\"topic\":\"t\\\"1\"}\n"
        );
    }
}
