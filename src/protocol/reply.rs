//! Replies: RESP frames and their encoding in RESP2 or RESP3. Nothing here knows the engine.

/// The protocol a connection speaks; `HELLO 3` switches to RESP3. The two differ only in
/// the frames used here for nil and maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    /// An error; the text starts with its code (`ERR`, `NOAUTH`, `LIMIT`, …).
    Error(String),
    Integer(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Reply>),
    /// A RESP3 map; in RESP2, a flat array of keys and values.
    Map(Vec<(Reply, Reply)>),
}

impl Reply {
    pub fn ok() -> Self {
        Reply::Simple("OK".into())
    }

    /// An error reply `-CODE message`. Line breaks in the message would break framing, so
    /// they become spaces.
    pub fn error(code: &str, message: impl AsRef<str>) -> Self {
        let message = message.as_ref().replace(['\r', '\n'], " ");
        Reply::Error(format!("{code} {message}"))
    }

    pub fn bulk(bytes: impl Into<Vec<u8>>) -> Self {
        Reply::Bulk(bytes.into())
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    pub fn encode(&self, out: &mut Vec<u8>, protocol: Protocol) {
        match self {
            Reply::Simple(s) => {
                out.push(b'+');
                out.extend_from_slice(s.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Reply::Error(e) => {
                out.push(b'-');
                out.extend_from_slice(e.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Reply::Integer(n) => {
                out.push(b':');
                out.extend_from_slice(n.to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Reply::Bulk(b) => {
                out.push(b'$');
                out.extend_from_slice(b.len().to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Nil => match protocol {
                Protocol::Resp2 => out.extend_from_slice(b"$-1\r\n"),
                Protocol::Resp3 => out.extend_from_slice(b"_\r\n"),
            },
            Reply::Array(items) => {
                out.push(b'*');
                out.extend_from_slice(items.len().to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
                for item in items {
                    item.encode(out, protocol);
                }
            }
            Reply::Map(pairs) => {
                let (tag, len) = match protocol {
                    Protocol::Resp2 => (b'*', pairs.len() * 2),
                    Protocol::Resp3 => (b'%', pairs.len()),
                };
                out.push(tag);
                out.extend_from_slice(len.to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
                for (key, value) in pairs {
                    key.encode(out, protocol);
                    value.encode(out, protocol);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_resp2() {
        let mut out = Vec::new();
        Reply::Array(vec![
            Reply::ok(),
            Reply::error("LIMIT", "too\r\nbig"),
            Reply::Integer(-3),
            Reply::bulk("hi"),
            Reply::Nil,
        ])
        .encode(&mut out, Protocol::Resp2);
        assert_eq!(
            out,
            b"*5\r\n+OK\r\n-LIMIT too  big\r\n:-3\r\n$2\r\nhi\r\n$-1\r\n"
        );
    }

    #[test]
    fn nil_and_maps_differ_between_resp2_and_resp3() {
        let reply = Reply::Array(vec![
            Reply::Nil,
            Reply::Map(vec![(Reply::bulk("proto"), Reply::Integer(3))]),
        ]);
        let mut resp2 = Vec::new();
        reply.encode(&mut resp2, Protocol::Resp2);
        assert_eq!(resp2, b"*2\r\n$-1\r\n*2\r\n$5\r\nproto\r\n:3\r\n");
        let mut resp3 = Vec::new();
        reply.encode(&mut resp3, Protocol::Resp3);
        assert_eq!(resp3, b"*2\r\n_\r\n%1\r\n$5\r\nproto\r\n:3\r\n");
    }
}
