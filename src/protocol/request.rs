//! Requests off the wire: RESP2 multibulk (`*N\r\n$len\r\narg\r\n…`) and Redis-style inline
//! commands (`PING\r\n`, with `"…"` and `'…'` quoting), within [`Limits`].
//!
//! The scanner is resumable: it remembers how far it checked a partial request, so a
//! 250 MB bulk argument or a million small arguments arriving in 64 KiB reads are each
//! looked at once, not once per read. Nothing here knows what a command means.

use std::fmt;

/// Bounds on what one request may hold. Past any of them the request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest inline command line, in bytes.
    pub inline_bytes_max: usize,
    /// Longest bulk argument, in bytes.
    pub bulk_bytes_max: usize,
    /// Most arguments in one request (command name included).
    pub args_max: usize,
    /// Most bytes one request may occupy in total.
    pub request_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            inline_bytes_max: 64 << 10,
            bulk_bytes_max: 1 << 30,
            args_max: 1 << 20,
            request_bytes_max: 1 << 30,
        }
    }
}

/// Why bytes could not be turned into a request. Either way the connection cannot be
/// trusted to be in sync any more and is closed after the error is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// Malformed framing.
    Protocol(String),
    /// A limit was passed.
    Limit(String),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Protocol(m) => write!(f, "ERR Protocol error: {m}"),
            RequestError::Limit(m) => write!(f, "LIMIT {m}"),
        }
    }
}

/// One parsed request: its arguments, the first being the command name.
pub type Args = Vec<Vec<u8>>;

/// Scans a connection's read buffer for complete requests.
#[derive(Debug, Default)]
pub struct Scanner {
    /// Progress through a partial multibulk request.
    partial: Option<Partial>,
}

#[derive(Debug, Clone, Copy)]
struct Partial {
    args_total: usize,
    args_seen: usize,
    /// Offset (from the request start) of the next unchecked byte.
    pos: usize,
}

impl Scanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one complete request off the front of `buf`. `Ok(None)`: read more.
    pub fn next(
        &mut self,
        buf: &[u8],
        limits: &Limits,
    ) -> Result<Option<(Args, usize)>, RequestError> {
        match buf.first() {
            None => Ok(None),
            Some(b'*') => self.multibulk(buf, limits),
            Some(_) => inline(buf, limits),
        }
    }

    fn multibulk(
        &mut self,
        buf: &[u8],
        limits: &Limits,
    ) -> Result<Option<(Args, usize)>, RequestError> {
        let mut state = match self.partial {
            Some(state) => state,
            None => {
                let Some((count, after)) = line_number(buf, 1)? else {
                    return Ok(None);
                };
                if count > limits.args_max as i64 {
                    return Err(RequestError::Limit(format!(
                        "{count} arguments, the limit is {}",
                        limits.args_max
                    )));
                }
                if count < 1 {
                    return Err(RequestError::Protocol("empty multibulk request".into()));
                }
                Partial {
                    args_total: count as usize,
                    args_seen: 0,
                    pos: after,
                }
            }
        };
        while state.args_seen < state.args_total {
            if state.pos >= buf.len() {
                self.partial = Some(state);
                return Ok(None);
            }
            if buf[state.pos] != b'$' {
                return Err(RequestError::Protocol(format!(
                    "expected '$', got '{}'",
                    (buf[state.pos] as char).escape_default()
                )));
            }
            let Some((len, body)) = line_number(buf, state.pos + 1)? else {
                self.partial = Some(state);
                return Ok(None);
            };
            if len < 0 {
                return Err(RequestError::Protocol("invalid bulk length".into()));
            }
            let len = len as usize;
            if len > limits.bulk_bytes_max {
                return Err(RequestError::Limit(format!(
                    "bulk argument of {len} bytes, the limit is {}",
                    limits.bulk_bytes_max
                )));
            }
            let end = body + len + 2;
            if end > limits.request_bytes_max {
                return Err(RequestError::Limit(format!(
                    "request of more than {} bytes",
                    limits.request_bytes_max
                )));
            }
            if end > buf.len() {
                self.partial = Some(state);
                return Ok(None);
            }
            if &buf[body + len..end] != b"\r\n" {
                return Err(RequestError::Protocol(
                    "bulk argument not followed by CRLF".into(),
                ));
            }
            state.pos = end;
            state.args_seen += 1;
        }
        self.partial = None;
        // Checked: now copy the arguments out.
        let mut args = Vec::with_capacity(state.args_total);
        let (_, mut pos) = line_number(buf, 1)?.unwrap_or((0, 0));
        for _ in 0..state.args_total {
            let (len, body) = line_number(buf, pos + 1)?.unwrap_or((0, pos));
            let len = len as usize;
            args.push(buf[body..body + len].to_vec());
            pos = body + len + 2;
        }
        Ok(Some((args, state.pos)))
    }
}

/// Parses `<digits>\r\n` starting at `start`; returns the number and the offset after CRLF.
fn line_number(buf: &[u8], start: usize) -> Result<Option<(i64, usize)>, RequestError> {
    let window = &buf[start.min(buf.len())..];
    let Some(nl) = window.iter().take(32).position(|&b| b == b'\n') else {
        if window.len() >= 32 {
            return Err(RequestError::Protocol("length line too long".into()));
        }
        return Ok(None);
    };
    if nl == 0 || window[nl - 1] != b'\r' {
        return Err(RequestError::Protocol(
            "length line not terminated by CRLF".into(),
        ));
    }
    let digits = std::str::from_utf8(&window[..nl - 1])
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| RequestError::Protocol("invalid length".into()))?;
    Ok(Some((digits, start + nl + 1)))
}

/// An inline command: one line, arguments split on spaces, with Redis-style quoting.
fn inline(buf: &[u8], limits: &Limits) -> Result<Option<(Args, usize)>, RequestError> {
    let Some(nl) = buf
        .iter()
        .take(limits.inline_bytes_max + 1)
        .position(|&b| b == b'\n')
    else {
        if buf.len() > limits.inline_bytes_max {
            return Err(RequestError::Limit(format!(
                "inline command longer than {} bytes",
                limits.inline_bytes_max
            )));
        }
        return Ok(None);
    };
    let mut line = &buf[..nl];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    let args = split_inline(line)?;
    if args.len() > limits.args_max {
        return Err(RequestError::Limit(format!(
            "{} arguments, the limit is {}",
            args.len(),
            limits.args_max
        )));
    }
    Ok(Some((args, nl + 1)))
}

/// Splits an inline line like redis-cli does: whitespace separates, `"…"` allows escapes
/// (`\"`, `\\`, `\n`, `\r`, `\t`, `\xHH`), `'…'` is literal except `\'`.
pub fn split_inline(line: &[u8]) -> Result<Args, RequestError> {
    let unbalanced = || RequestError::Protocol("unbalanced quotes in request".into());
    let mut args = Vec::new();
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            break;
        }
        let mut arg = Vec::new();
        match line[i] {
            b'"' => {
                i += 1;
                loop {
                    match line.get(i) {
                        None => return Err(unbalanced()),
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            let (byte, used) = match line.get(i + 1) {
                                Some(b'n') => (b'\n', 2),
                                Some(b'r') => (b'\r', 2),
                                Some(b't') => (b'\t', 2),
                                Some(b'x')
                                    if line.len() > i + 3
                                        && line[i + 2].is_ascii_hexdigit()
                                        && line[i + 3].is_ascii_hexdigit() =>
                                {
                                    let hex =
                                        std::str::from_utf8(&line[i + 2..i + 4]).unwrap_or("0");
                                    (u8::from_str_radix(hex, 16).unwrap_or(0), 4)
                                }
                                Some(&other) => (other, 2),
                                None => return Err(unbalanced()),
                            };
                            arg.push(byte);
                            i += used;
                        }
                        Some(&b) => {
                            arg.push(b);
                            i += 1;
                        }
                    }
                }
                if line.get(i).is_some_and(|b| !b.is_ascii_whitespace()) {
                    return Err(unbalanced());
                }
            }
            b'\'' => {
                i += 1;
                loop {
                    match line.get(i) {
                        None => return Err(unbalanced()),
                        Some(b'\\') if line.get(i + 1) == Some(&b'\'') => {
                            arg.push(b'\'');
                            i += 2;
                        }
                        Some(b'\'') => {
                            i += 1;
                            break;
                        }
                        Some(&b) => {
                            arg.push(b);
                            i += 1;
                        }
                    }
                }
                if line.get(i).is_some_and(|b| !b.is_ascii_whitespace()) {
                    return Err(unbalanced());
                }
            }
            _ => {
                while i < line.len() && !line[i].is_ascii_whitespace() {
                    arg.push(line[i]);
                    i += 1;
                }
            }
        }
        args.push(arg);
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(input: &[u8]) -> Result<Option<(Args, usize)>, RequestError> {
        Scanner::new().next(input, &Limits::default())
    }

    fn strs(args: &Args) -> Vec<String> {
        args.iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    #[test]
    fn multibulk_and_incomplete() {
        let req = b"*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n";
        let (args, used) = one(req).unwrap().unwrap();
        assert_eq!(
            (strs(&args), used),
            (vec!["ECHO".into(), "hello".into()], req.len())
        );
        for cut in 0..req.len() {
            assert_eq!(one(&req[..cut]).unwrap(), None, "cut at {cut}");
        }
        // Binary-safe bulk.
        let (args, _) = one(b"*1\r\n$3\r\na\r\n\r\n").unwrap().unwrap();
        assert_eq!(args[0], b"a\r\n");
    }

    #[test]
    fn resumes_without_rescanning() {
        let mut scanner = Scanner::new();
        let req = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n";
        let limits = Limits::default();
        assert_eq!(scanner.next(&req[..20], &limits).unwrap(), None);
        let (args, used) = scanner.next(req, &limits).unwrap().unwrap();
        assert_eq!(strs(&args), vec!["SET", "k", "value"]);
        assert_eq!(used, req.len());
    }

    #[test]
    fn inline_commands_and_quoting() {
        let (args, used) = one(b"PING\r\n").unwrap().unwrap();
        assert_eq!((strs(&args), used), (vec!["PING".into()], 6));
        let (args, _) = one(b"  ECHO   \"a b\\\"c\\x41\" 'it\\'s'  x\n")
            .unwrap()
            .unwrap();
        assert_eq!(strs(&args), vec!["ECHO", "a b\"cA", "it's", "x"]);
        assert_eq!(one(b"PING").unwrap(), None);
        assert!(matches!(
            one(b"ECHO \"open\r\n"),
            Err(RequestError::Protocol(_))
        ));
        let (args, _) = one(b"\r\n").unwrap().unwrap();
        assert!(args.is_empty());
    }

    #[test]
    fn malformed_frames() {
        for bad in [
            &b"*1\r\n+OK\r\n"[..],
            b"*1\r\n$x\r\nab\r\n",
            b"*1\r\n$2\r\nabc\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"*1\n",
            b"*1\r\n$-5\r\n",
        ] {
            assert!(
                matches!(one(bad), Err(RequestError::Protocol(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn limits_one_past_the_edge() {
        let limits = Limits {
            inline_bytes_max: 10,
            bulk_bytes_max: 5,
            args_max: 2,
            request_bytes_max: 64,
        };
        let mut s = Scanner::new();
        assert!(s.next(b"ECHO 12345\n", &limits).unwrap().is_some());
        assert!(matches!(
            s.next(b"ECHO 123456\n", &limits),
            Err(RequestError::Limit(_))
        ));
        assert!(s.next(b"*1\r\n$5\r\n12345\r\n", &limits).unwrap().is_some());
        assert!(matches!(
            s.next(b"*1\r\n$6\r\n", &limits),
            Err(RequestError::Limit(_))
        ));
        assert!(s
            .next(b"*2\r\n$1\r\na\r\n$1\r\nb\r\n", &limits)
            .unwrap()
            .is_some());
        assert!(matches!(
            s.next(b"*3\r\n", &limits),
            Err(RequestError::Limit(_))
        ));
        assert!(matches!(
            s.next(b"A B C\n", &limits),
            Err(RequestError::Limit(_))
        ));
    }
}
