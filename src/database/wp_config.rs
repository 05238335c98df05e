//! Reads `DB_NAME`, `DB_USER`, `DB_PASSWORD` and `DB_HOST` from a WordPress
//! `wp-config.php` without running PHP.
//!
//! A small lexer skips comments (`//`, `#`, `/* */`) and understands PHP
//! string literals in both quote styles, so a commented-out `define` is
//! ignored and `define( "DB_HOST" , 'x' )` is read however it is spaced.
//! Only literal values are accepted: a value computed at run time
//! (`getenv(…)`, concatenation, `"$var"`) is reported, never guessed.
//! Errors never quote a value (the password is one of them).

use super::DbAddress;
use crate::config::Secret;
use std::path::PathBuf;

/// The database settings found in a `wp-config.php`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WpDatabase {
    pub name: String,
    pub user: String,
    pub password: Secret,
    /// `DB_HOST` as written (see [`parse_db_host`]).
    pub host: String,
}

/// Why `wp-config.php` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WpConfigError {
    #[error(
        "{constant} is not defined (expected a line like define('{constant}', '…');): set it in [sites.database] instead, or turn the dump off with enabled = false"
    )]
    Missing { constant: &'static str },
    #[error(
        "defines none of DB_NAME, DB_USER, DB_PASSWORD, DB_HOST (Debian's packaged WordPress reads them from /etc/wordpress/config-*.php): set them in [sites.database] (name, user, password_file, host), or turn the dump off with [sites.database] enabled = false"
    )]
    NoDatabaseConstants,
    #[error(
        "{constant} is not a plain string literal (it is computed by PHP at run time); set it in [sites.database] instead"
    )]
    NotLiteral { constant: &'static str },
    #[error("{constant} uses PHP variable interpolation in a double-quoted string; set it in [sites.database] instead")]
    Interpolated { constant: &'static str },
    #[error("unterminated {what} starting on line {line}")]
    Syntax { what: &'static str, line: usize },
    #[error("DB_HOST has an invalid port {port:?}: expected host, host:port or localhost:/path/to.sock")]
    BadPort { port: String },
}

/// Parse the text of a `wp-config.php`.
pub fn parse(src: &str) -> Result<WpDatabase, WpConfigError> {
    let tokens = lex(src)?;
    let defines = defines(&tokens);
    const CONSTANTS: [&str; 4] = ["DB_NAME", "DB_USER", "DB_PASSWORD", "DB_HOST"];
    if !defines.iter().any(|(name, _)| CONSTANTS.contains(&name.as_str())) {
        return Err(WpConfigError::NoDatabaseConstants);
    }
    let get = |constant: &'static str| -> Result<String, WpConfigError> {
        match defines.iter().find(|(name, _)| name == constant) {
            None => Err(WpConfigError::Missing { constant }),
            Some((_, Value::Literal(v))) => Ok(v.clone()),
            Some((_, Value::Interpolated)) => Err(WpConfigError::Interpolated { constant }),
            Some((_, Value::Other)) => Err(WpConfigError::NotLiteral { constant }),
        }
    };
    Ok(WpDatabase {
        name: get("DB_NAME")?,
        user: get("DB_USER")?,
        password: Secret::new(get("DB_PASSWORD")?),
        host: get("DB_HOST")?,
    })
}

/// Interpret `DB_HOST` the way WordPress does: `host`, `host:port`,
/// `[ipv6]:port`, or `host:/path/to.sock` (a Unix socket; the host part is
/// then irrelevant). An empty value means `localhost`.
pub fn parse_db_host(value: &str) -> Result<DbAddress, WpConfigError> {
    let value = value.trim();
    if let Some(pos) = value.find(":/") {
        return Ok(DbAddress::Socket(PathBuf::from(&value[pos + 1..])));
    }
    if value.is_empty() {
        return Ok(DbAddress::Tcp {
            host: "localhost".into(),
            port: None,
        });
    }
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        // [::1] or [::1]:3306
        match rest.split_once(']') {
            Some((h, tail)) => (h, tail.strip_prefix(':')),
            None => (value, None),
        }
    } else if value.matches(':').count() > 1 {
        // A bare IPv6 address has no port.
        (value, None)
    } else {
        match value.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (value, None),
        }
    };
    let port = match port.map(str::trim) {
        None | Some("") => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| WpConfigError::BadPort { port: p.to_string() })?,
        ),
    };
    Ok(DbAddress::Tcp {
        host: if host.is_empty() { "localhost" } else { host }.to_string(),
        port,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// A string literal; `None` when it interpolates variables.
    Str(Option<String>),
    Punct(char),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Literal(String),
    Interpolated,
    Other,
}

/// `define('NAME', value)` calls, in file order; the first definition of a
/// name wins, as in PHP.
fn defines(tokens: &[Tok]) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let is_define =
            matches!(&tokens[i], Tok::Ident(id) if id.trim_start_matches('\\').eq_ignore_ascii_case("define"));
        let is_method = i > 0 && matches!(tokens[i - 1], Tok::Punct('>') | Tok::Punct(':'));
        if !is_define || is_method {
            i += 1;
            continue;
        }
        let (Some(Tok::Punct('(')), Some(Tok::Str(Some(name))), Some(Tok::Punct(','))) =
            (tokens.get(i + 1), tokens.get(i + 2), tokens.get(i + 3))
        else {
            i += 1;
            continue;
        };
        // The value runs to the `,` or `)` that closes the argument.
        let start = i + 4;
        let mut depth = 0usize;
        let mut end = start;
        while let Some(t) = tokens.get(end) {
            match t {
                Tok::Punct('(' | '[' | '{') => depth += 1,
                Tok::Punct(')' | ']' | '}') if depth > 0 => depth -= 1,
                Tok::Punct(')' | ',') if depth == 0 => break,
                _ => {}
            }
            end += 1;
        }
        let value = match &tokens[start..end] {
            [Tok::Str(Some(v))] => Value::Literal(v.clone()),
            [Tok::Str(None)] => Value::Interpolated,
            _ => Value::Other,
        };
        if !out.iter().any(|(n, _)| n == name) {
            out.push((name.clone(), value));
        }
        i = end.max(i + 1);
    }
    out
}

fn lex(src: &str) -> Result<Vec<Tok>, WpConfigError> {
    let chars: Vec<char> = src.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let at = |i: usize| chars.get(i).copied();
    while let Some(c) = at(i) {
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '/' if at(i + 1) == Some('/') => i = skip_line_comment(&chars, i),
            '#' if at(i + 1) != Some('[') => i = skip_line_comment(&chars, i),
            '/' if at(i + 1) == Some('*') => {
                let start_line = line;
                i += 2;
                loop {
                    match at(i) {
                        None => {
                            return Err(WpConfigError::Syntax {
                                what: "comment",
                                line: start_line,
                            });
                        }
                        Some('*') if at(i + 1) == Some('/') => {
                            i += 2;
                            break;
                        }
                        Some(ch) => {
                            if ch == '\n' {
                                line += 1;
                            }
                            i += 1;
                        }
                    }
                }
            }
            '\'' | '"' => {
                let start_line = line;
                let (tok, next, lines) = if c == '\'' {
                    single_quoted(&chars, i + 1)
                } else {
                    double_quoted(&chars, i + 1)
                }
                .ok_or(WpConfigError::Syntax {
                    what: "string",
                    line: start_line,
                })?;
                line += lines;
                tokens.push(tok);
                i = next;
            }
            c if c.is_alphanumeric() || matches!(c, '_' | '$' | '\\') || !c.is_ascii() => {
                let start = i;
                while at(i).is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '$' | '\\') || !c.is_ascii()) {
                    i += 1;
                }
                tokens.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            c => {
                tokens.push(Tok::Punct(c));
                i += 1;
            }
        }
    }
    Ok(tokens)
}

/// Skip a `//` or `#` comment: it ends at the end of the line or at `?>`.
fn skip_line_comment(chars: &[char], mut i: usize) -> usize {
    while let Some(&c) = chars.get(i) {
        if c == '\n' || (c == '?' && chars.get(i + 1) == Some(&'>')) {
            break;
        }
        i += 1;
    }
    i
}

/// A `'…'` string: only `\\` and `\'` are escapes. Returns the token, the
/// index after the closing quote and the newlines inside.
fn single_quoted(chars: &[char], mut i: usize) -> Option<(Tok, usize, usize)> {
    let mut s = String::new();
    let mut lines = 0;
    loop {
        let c = *chars.get(i)?;
        match c {
            '\'' => return Some((Tok::Str(Some(s)), i + 1, lines)),
            '\\' if matches!(chars.get(i + 1), Some('\\' | '\'')) => {
                s.push(chars[i + 1]);
                i += 2;
            }
            c => {
                if c == '\n' {
                    lines += 1;
                }
                s.push(c);
                i += 1;
            }
        }
    }
}

/// A `"…"` string with PHP's escapes. A `$name` or `{$` inside makes the
/// value depend on run time, reported as `Str(None)`.
fn double_quoted(chars: &[char], mut i: usize) -> Option<(Tok, usize, usize)> {
    let mut s = String::new();
    let mut lines = 0;
    let mut interpolated = false;
    loop {
        let c = *chars.get(i)?;
        match c {
            '"' => {
                let tok = Tok::Str((!interpolated).then_some(s));
                return Some((tok, i + 1, lines));
            }
            '$' if chars
                .get(i + 1)
                .is_some_and(|n| n.is_alphabetic() || *n == '_' || *n == '{') =>
            {
                interpolated = true;
                i += 1;
            }
            '{' if chars.get(i + 1) == Some(&'$') => {
                interpolated = true;
                i += 1;
            }
            '\\' => {
                let &e = chars.get(i + 1)?;
                i += 2;
                match e {
                    'n' => s.push('\n'),
                    't' => s.push('\t'),
                    'r' => s.push('\r'),
                    'v' => s.push('\u{0b}'),
                    'e' => s.push('\u{1b}'),
                    'f' => s.push('\u{0c}'),
                    '\\' | '$' | '"' => s.push(e),
                    '0'..='7' => {
                        let mut v = e.to_digit(8).unwrap_or(0);
                        for _ in 0..2 {
                            match chars.get(i).and_then(|d| d.to_digit(8)) {
                                Some(d) => {
                                    v = v * 8 + d;
                                    i += 1;
                                }
                                None => break,
                            }
                        }
                        s.push(char::from_u32(v & 0xff).unwrap_or('\u{fffd}'));
                    }
                    'x' if chars.get(i).is_some_and(|d| d.is_ascii_hexdigit()) => {
                        let mut v = 0;
                        for _ in 0..2 {
                            match chars.get(i).and_then(|d| d.to_digit(16)) {
                                Some(d) => {
                                    v = v * 16 + d;
                                    i += 1;
                                }
                                None => break,
                            }
                        }
                        s.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                    }
                    'u' if chars.get(i) == Some(&'{') => {
                        let close = chars[i..].iter().position(|c| *c == '}')? + i;
                        let hex: String = chars[i + 1..close].iter().collect();
                        s.push(
                            u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .unwrap_or('\u{fffd}'),
                        );
                        i = close + 1;
                    }
                    other => {
                        s.push('\\');
                        s.push(other);
                    }
                }
            }
            c => {
                if c == '\n' {
                    lines += 1;
                }
                s.push(c);
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: Option<u16>) -> DbAddress {
        DbAddress::Tcp {
            host: host.into(),
            port,
        }
    }

    const STOCK: &str = r#"<?php
/**
 * The base configuration for WordPress
 *
 * define( 'DB_NAME', 'commented_in_docblock' );
 */

// ** Database settings - You can get this info from your web host ** //
/** The name of the database for WordPress */
define( 'DB_NAME', 'wp_blog' );

/** Database username */
define( 'DB_USER', 'blog_user' );

/** Database password */
define( 'DB_PASSWORD', 'p@ss w0rd' );

/** Database hostname */
define( 'DB_HOST', 'localhost' );

define( 'DB_CHARSET', 'utf8mb4' );
$table_prefix = 'wp_';
if ( ! defined( 'ABSPATH' ) ) {
	define( 'ABSPATH', __DIR__ . '/' );
}
require_once ABSPATH . 'wp-settings.php';
"#;

    #[test]
    fn reads_the_stock_wp_config() {
        let db = parse(STOCK).unwrap();
        assert_eq!(db.name, "wp_blog");
        assert_eq!(db.user, "blog_user");
        assert_eq!(db.password.expose(), "p@ss w0rd");
        assert_eq!(db.host, "localhost");
    }

    #[test]
    fn both_quote_styles_and_any_spacing() {
        let src = r#"<?php
define("DB_NAME","double");
define  (  'DB_USER'  ,   "mixed"   )  ;
DEFINE(
    "DB_PASSWORD",
    'it\'s a \\ back\slash'
);
define( "DB_HOST" , "localhost:/run/mysqld/mysqld.sock" );
"#;
        let db = parse(src).unwrap();
        assert_eq!(db.name, "double");
        assert_eq!(db.user, "mixed");
        assert_eq!(db.password.expose(), r"it's a \ back\slash");
        assert_eq!(db.host, "localhost:/run/mysqld/mysqld.sock");
    }

    #[test]
    fn double_quoted_escapes_are_decoded() {
        let src = r#"<?php define('DB_NAME','n'); define('DB_USER','u'); define('DB_HOST','h');
define('DB_PASSWORD', "a\"b\\c\$d\x41\101\u{263A}\q");"#;
        assert_eq!(parse(src).unwrap().password.expose(), "a\"b\\c$dAA\u{263A}\\q");
    }

    #[test]
    fn commented_out_defines_are_ignored() {
        let src = r#"<?php
// define('DB_NAME', 'line_comment');
# define('DB_NAME', 'hash_comment');
/* define('DB_NAME', 'block_comment');
   define('DB_USER', 'block_comment'); */
/** define('DB_HOST', 'docblock'); */
define('DB_NAME', 'real_name'); // define('DB_USER', 'trailing');
define('DB_USER', 'real_user'); # trailing hash
define('DB_PASSWORD', 'has // and # and /* inside');
define('DB_HOST', '127.0.0.1:3307'); /* trailing block */
"#;
        let db = parse(src).unwrap();
        assert_eq!(db.name, "real_name");
        assert_eq!(db.user, "real_user");
        assert_eq!(db.password.expose(), "has // and # and /* inside");
        assert_eq!(db.host, "127.0.0.1:3307");
    }

    #[test]
    fn a_constant_only_in_a_comment_is_missing() {
        let src = r#"<?php
define('DB_NAME', 'n');
define('DB_USER', 'u');
// define('DB_PASSWORD', 'secret-in-comment');
define('DB_HOST', 'localhost');
"#;
        let err = parse(src).unwrap_err();
        assert_eq!(
            err,
            WpConfigError::Missing {
                constant: "DB_PASSWORD"
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("DB_PASSWORD is not defined"), "{msg}");
        assert!(!msg.contains("secret-in-comment"), "{msg}");
    }

    #[test]
    fn missing_constant_is_a_clear_error() {
        let err = parse("<?php define('DB_NAME', 'x'); define('DB_USER', 'u');").unwrap_err();
        assert_eq!(
            err,
            WpConfigError::Missing {
                constant: "DB_PASSWORD"
            }
        );
        let err = parse("<?php echo 'no database here';").unwrap_err();
        assert_eq!(err, WpConfigError::NoDatabaseConstants);
        // Debian's packaged WordPress: the file only includes another one.
        let err = parse("<?php require_once('/etc/wordpress/config-' . $host . '.php');").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("[sites.database]") && msg.contains("enabled = false") && msg.contains("/etc/wordpress"),
            "{msg}"
        );
    }

    #[test]
    fn computed_values_are_refused_without_quoting_them() {
        let src = r#"<?php
define('DB_NAME', getenv('WORDPRESS_DB_NAME'));
define('DB_USER', 'u');
define('DB_PASSWORD', "pw-$suffix");
define('DB_HOST', 'db' . ':3306');
"#;
        assert_eq!(
            parse(src).unwrap_err(),
            WpConfigError::NotLiteral { constant: "DB_NAME" }
        );
        let src = src.replace("getenv('WORDPRESS_DB_NAME')", "'n'");
        let err = parse(&src).unwrap_err();
        assert_eq!(
            err,
            WpConfigError::Interpolated {
                constant: "DB_PASSWORD"
            }
        );
        assert!(!err.to_string().contains("pw-"), "{err}");
        let src = src.replace("\"pw-$suffix\"", "'p'");
        assert_eq!(
            parse(&src).unwrap_err(),
            WpConfigError::NotLiteral { constant: "DB_HOST" }
        );
    }

    #[test]
    fn first_definition_wins_and_empty_password_is_allowed() {
        let src = "<?php define('DB_NAME','a'); define('DB_NAME','b'); define('DB_USER','root'); \
                   define('DB_PASSWORD',''); define('DB_HOST','');";
        let db = parse(src).unwrap();
        assert_eq!(db.name, "a");
        assert_eq!(db.password.expose(), "");
    }

    #[test]
    fn unterminated_string_reports_its_line() {
        let err = parse("<?php\n\ndefine('DB_NAME', 'oops);\n").unwrap_err();
        assert_eq!(
            err,
            WpConfigError::Syntax {
                what: "string",
                line: 3
            }
        );
    }

    #[test]
    fn db_host_forms() {
        assert_eq!(parse_db_host("localhost").unwrap(), tcp("localhost", None));
        assert_eq!(parse_db_host("db.example.com").unwrap(), tcp("db.example.com", None));
        assert_eq!(parse_db_host("127.0.0.1:3307").unwrap(), tcp("127.0.0.1", Some(3307)));
        assert_eq!(parse_db_host(" db:3306 ").unwrap(), tcp("db", Some(3306)));
        assert_eq!(
            parse_db_host("localhost:/run/mysqld/mysqld.sock").unwrap(),
            DbAddress::Socket("/run/mysqld/mysqld.sock".into())
        );
        assert_eq!(
            parse_db_host(":/tmp/mysql.sock").unwrap(),
            DbAddress::Socket("/tmp/mysql.sock".into())
        );
        assert_eq!(parse_db_host("[::1]:3306").unwrap(), tcp("::1", Some(3306)));
        assert_eq!(parse_db_host("::1").unwrap(), tcp("::1", None));
        assert_eq!(parse_db_host("").unwrap(), tcp("localhost", None));
        assert_eq!(parse_db_host("db:").unwrap(), tcp("db", None));
        assert!(matches!(
            parse_db_host("db:mysql").unwrap_err(),
            WpConfigError::BadPort { .. }
        ));
        assert!(matches!(
            parse_db_host("db:0").unwrap_err(),
            WpConfigError::BadPort { .. }
        ));
    }
}
