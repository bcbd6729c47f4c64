//! `WWW-Authenticate` parsing (RFC 9110 §11.6.1, formerly RFC 7235 §4.1).
//!
//! ```text
//! WWW-Authenticate = #challenge
//! challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//! auth-param       = token BWS "=" BWS ( token / quoted-string )
//! quoted-string    = DQUOTE *( qdtext / quoted-pair ) DQUOTE
//! ```
//!
//! Commas separate both challenges and the parameters of one challenge; an element that is a
//! bare token followed by whitespace and more (rather than `=`) starts the next challenge. Empty
//! list elements (`a=1, , b=2`) are allowed, as RFC 9110 §5.6.1 asks of recipients. Anything
//! else that does not fit the grammar is an error: a doctor must say when strict clients will
//! fail to read the header, not guess what was meant.

use std::fmt;

/// One challenge: `Bearer resource_metadata="…", scope="…"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The auth-scheme as sent (compare with [`Challenge::is_scheme`]).
    pub scheme: String,
    /// `Basic dXNlcjpwYXNz` style credentials, when the challenge has one instead of parameters.
    pub token68: Option<String>,
    /// Parameters in order, names lowercased, quoted-string values unescaped.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// Case-insensitive scheme comparison (`Bearer` = `bearer`).
    pub fn is_scheme(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }

    /// The value of parameter `name` (case-insensitive).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a header value does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset in the header value where parsing stopped.
    pub at: usize,
    pub reason: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.reason, self.at)
    }
}

impl std::error::Error for ParseError {}

/// `tchar` (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// token68 characters, without the trailing `=` padding.
fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

/// Whitespace allowed around list elements and `=` (OWS/BWS: SP and HTAB).
fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.i += 1;
        }
    }

    fn err(&self, reason: &'static str) -> ParseError {
        ParseError { at: self.i, reason }
    }

    fn token(&mut self) -> &str {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        // tchar is ASCII, so the slice is valid UTF-8.
        std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default()
    }

    /// Skips whitespace and commas (empty list elements); returns whether a comma was seen.
    fn skip_separators(&mut self) -> bool {
        let mut comma = false;
        loop {
            self.skip_ws();
            if self.peek() == Some(b',') {
                comma = true;
                self.i += 1;
            } else {
                return comma;
            }
        }
    }

    fn quoted_string(&mut self) -> Result<String, ParseError> {
        debug_assert_eq!(self.peek(), Some(b'"'));
        let open = self.i;
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => {
                    return Err(ParseError {
                        at: open,
                        reason: "unterminated quoted string",
                    })
                }
                Some(b'"') => {
                    self.i += 1;
                    break;
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                        Some(b)
                            if b == b'\t'
                                || b == b' '
                                || (0x21..=0x7e).contains(&b)
                                || b >= 0x80 =>
                        {
                            out.push(b);
                            self.i += 1;
                        }
                        None => return Err(self.err("backslash at the end of a quoted string")),
                        Some(_) => return Err(self.err("control character after a backslash")),
                    }
                }
                // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
                Some(b) if b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80 => {
                    out.push(b);
                    self.i += 1;
                }
                Some(_) => return Err(self.err("control character in a quoted string")),
            }
        }
        String::from_utf8(out).map_err(|_| ParseError {
            at: open,
            reason: "quoted string is not UTF-8",
        })
    }
}

/// Parses one `WWW-Authenticate` field value into its challenges.
pub fn parse(value: &str) -> Result<Vec<Challenge>, ParseError> {
    let mut p = Parser {
        s: value.as_bytes(),
        i: 0,
    };
    let mut out: Vec<Challenge> = Vec::new();
    p.skip_separators();
    while p.peek().is_some() {
        // auth-scheme
        let scheme = p.token().to_string();
        if scheme.is_empty() {
            return Err(p.err("expected an auth-scheme"));
        }
        let mut ch = Challenge {
            scheme,
            token68: None,
            params: Vec::new(),
        };
        match p.peek() {
            None => {
                out.push(ch);
                break;
            }
            Some(b',') => {
                out.push(ch);
                p.skip_separators();
                continue;
            }
            Some(b) if is_ws(b) => {}
            Some(_) => return Err(p.err("unexpected character after the auth-scheme")),
        }
        p.skip_ws();
        match p.peek() {
            None => {
                out.push(ch);
                break;
            }
            Some(b',') => {
                // `Bearer , realm="x"`: #auth-param allows empty elements, also first. But
                // `Bearer , Basic …` is a scheme without parameters, then the next challenge.
                p.skip_separators();
                if !starts_param(&p) {
                    out.push(ch);
                    continue;
                }
            }
            Some(_) => {}
        }
        // token68 or the first auth-param?
        if let Some(t68) = try_token68(&mut p) {
            ch.token68 = Some(t68);
            out.push(ch);
            p.skip_ws();
            match p.peek() {
                None => break,
                Some(b',') => {
                    p.skip_separators();
                    continue;
                }
                Some(_) => return Err(p.err("unexpected character after token68")),
            }
        }
        // #auth-param, until the end or the next challenge.
        loop {
            if p.peek().is_none() {
                break;
            }
            let name_at = p.i;
            let name = p.token().to_ascii_lowercase();
            if name.is_empty() {
                return Err(p.err("expected a parameter name"));
            }
            p.skip_ws();
            if p.peek() != Some(b'=') {
                // Not a parameter: this token is the next challenge's scheme. Only allowed after
                // a comma (checked by the caller having stopped at a separator).
                if ch.params.is_empty() && ch.token68.is_none() {
                    return Err(ParseError {
                        at: name_at,
                        reason: "expected `name=value` after the auth-scheme",
                    });
                }
                p.i = name_at;
                break;
            }
            p.i += 1; // '='
            p.skip_ws();
            let value = match p.peek() {
                Some(b'"') => p.quoted_string()?,
                Some(b) if is_tchar(b) => p.token().to_string(),
                Some(_) => {
                    return Err(p.err("parameter value is neither a token nor a quoted string"))
                }
                None => return Err(p.err("missing parameter value")),
            };
            if ch.params.iter().any(|(k, _)| *k == name) {
                return Err(ParseError {
                    at: name_at,
                    reason: "parameter repeated in one challenge",
                });
            }
            ch.params.push((name, value));
            p.skip_ws();
            match p.peek() {
                None => break,
                Some(b',') => {
                    p.skip_separators();
                }
                Some(_) => return Err(p.err("expected `,` between parameters")),
            }
        }
        out.push(ch);
    }
    Ok(out)
}

/// Whether the parser is at `token BWS "="` followed by a value (an auth-param).
fn starts_param(p: &Parser<'_>) -> bool {
    let mut j = p.i;
    while p.s.get(j).copied().is_some_and(is_tchar) {
        j += 1;
    }
    if j == p.i {
        return false;
    }
    while p.s.get(j).copied().is_some_and(is_ws) {
        j += 1;
    }
    if p.s.get(j) != Some(&b'=') {
        return false;
    }
    j += 1;
    while p.s.get(j).copied().is_some_and(is_ws) {
        j += 1;
    }
    !matches!(p.s.get(j), None | Some(b',') | Some(b'='))
}

/// At the start of a challenge's credentials: consumes a token68 (`abc+/=`) when that is what
/// comes (token68 characters, optional `=` padding, then the end or a comma). Leaves the parser
/// untouched otherwise (`name=value` is a parameter).
fn try_token68(p: &mut Parser<'_>) -> Option<String> {
    let start = p.i;
    let mut j = p.i;
    while p.s.get(j).copied().is_some_and(is_token68_char) {
        j += 1;
    }
    if j == start {
        return None;
    }
    while p.s.get(j) == Some(&b'=') {
        j += 1;
    }
    let mut k = j;
    while p.s.get(k).copied().is_some_and(is_ws) {
        k += 1;
    }
    if !matches!(p.s.get(k), None | Some(b',')) {
        return None;
    }
    p.i = j;
    Some(String::from_utf8_lossy(&p.s[start..j]).into_owned())
}

/// Parses every `WWW-Authenticate` field of a response (a response may repeat the field).
pub fn parse_all<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Challenge>, ParseError> {
    let mut out = Vec::new();
    for v in values {
        out.extend(parse(v)?);
    }
    Ok(out)
}

/// The first `Bearer` challenge.
pub fn bearer(challenges: &[Challenge]) -> Option<&Challenge> {
    challenges.iter().find(|c| c.is_scheme("Bearer"))
}

#[cfg(test)]
mod tests;
