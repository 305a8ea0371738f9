//! `consume`'s format strings, as kcat's `-f`: `%k` key, `%v` value, `%h` headers
//! (`name=value` joined by `,`), `%o` offset, `%p` partition, `%t` timestamp (ms), `%T` topic,
//! `%%` a percent sign; `\n`, `\t`, `\r`, `\\` escapes. Bytes of keys and values are written as
//! they are.

use crate::error::{CliError, Result};

/// The format when none is given: each value on its own line.
pub const DEFAULT_FORMAT: &str = "%v\\n";

/// One piece of a parsed format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(Vec<u8>),
    Key,
    Value,
    Headers,
    Offset,
    Partition,
    Timestamp,
    Topic,
}

/// What a record contributes to a format.
#[derive(Debug, Clone, Copy)]
pub struct RecordFields<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a [u8], Option<&'a [u8]>)],
}

/// Parses a format string.
///
/// # Errors
///
/// A usage error for an unknown `%` directive or escape, or a trailing `%` or `\`.
pub fn parse(format: &str) -> Result<Vec<Piece>> {
    let mut out = Vec::new();
    let mut text = Vec::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => {
                let piece = match chars.next() {
                    Some('k') => Piece::Key,
                    Some('v') => Piece::Value,
                    Some('h') => Piece::Headers,
                    Some('o') => Piece::Offset,
                    Some('p') => Piece::Partition,
                    Some('t') => Piece::Timestamp,
                    Some('T') => Piece::Topic,
                    Some('%') => {
                        text.push(b'%');
                        continue;
                    }
                    other => {
                        let what = other.map_or("a trailing %".to_owned(), |o| format!("%{o}"));
                        return Err(CliError::usage(format!(
                            "--format: unknown directive {what} (known: %k %v %h %o %p %t %T %%)"
                        )));
                    }
                };
                if !text.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut text)));
                }
                out.push(piece);
            }
            '\\' => {
                let b = match chars.next() {
                    Some('n') => b'\n',
                    Some('t') => b'\t',
                    Some('r') => b'\r',
                    Some('\\') => b'\\',
                    other => {
                        let what = other.map_or("a trailing \\".to_owned(), |o| format!("\\{o}"));
                        return Err(CliError::usage(format!(
                            "--format: unknown escape {what} (known: \\n \\t \\r \\\\)"
                        )));
                    }
                };
                text.push(b);
            }
            c => {
                let mut buf = [0u8; 4];
                text.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

/// Appends `r` formatted by `pieces` to `out`.
pub fn render(pieces: &[Piece], r: &RecordFields<'_>, out: &mut Vec<u8>) {
    for p in pieces {
        match p {
            Piece::Text(t) => out.extend_from_slice(t),
            Piece::Key => out.extend_from_slice(r.key.unwrap_or_default()),
            Piece::Value => out.extend_from_slice(r.value.unwrap_or_default()),
            Piece::Headers => {
                for (i, (k, v)) in r.headers.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(k);
                    out.push(b'=');
                    out.extend_from_slice(v.unwrap_or_default());
                }
            }
            Piece::Offset => out.extend_from_slice(r.offset.to_string().as_bytes()),
            Piece::Partition => out.extend_from_slice(r.partition.to_string().as_bytes()),
            Piece::Timestamp => out.extend_from_slice(r.timestamp.to_string().as_bytes()),
            Piece::Topic => out.extend_from_slice(r.topic.as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_directive_renders() {
        let pieces = parse("%T/%p@%o %t [%k] %h: %v 100%%\\n").expect("parses");
        let headers: [(&[u8], Option<&[u8]>); 2] = [(b"a", Some(b"1")), (b"b", None)];
        let r = RecordFields {
            topic: "t",
            partition: 2,
            offset: 7,
            timestamp: 99,
            key: Some(b"k"),
            value: Some(b"v"),
            headers: &headers,
        };
        let mut out = Vec::new();
        render(&pieces, &r, &mut out);
        assert_eq!(String::from_utf8_lossy(&out), "t/2@7 99 [k] a=1,b=: v 100%\n");
    }

    #[test]
    fn unknown_directives_and_escapes_are_usage_errors() {
        assert!(parse("%x").is_err());
        assert!(parse("abc%").is_err());
        assert!(parse("\\q").is_err());
        assert_eq!(
            parse(DEFAULT_FORMAT).expect("default"),
            vec![Piece::Value, Piece::Text(b"\n".to_vec())]
        );
    }
}
