//! Bounded fuzzing of the `wp-config.php` parser (a proptest run inside
//! the normal test suite): arbitrary text and text assembled from PHP
//! fragments never panic, and an error never quotes the password.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::wp_config::{parse, parse_db_host};
use proptest::prelude::*;

const PASSWORD: &str = "pw-Zq8-not-in-errors";

fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("define(".to_string()),
        Just("define( ".to_string()),
        Just(")".to_string()),
        Just(");\n".to_string()),
        Just(",".to_string()),
        Just("'DB_NAME'".to_string()),
        Just("'DB_USER'".to_string()),
        Just("\"DB_PASSWORD\"".to_string()),
        Just("'DB_PASSWORD'".to_string()),
        Just("'DB_HOST'".to_string()),
        Just(format!("'{PASSWORD}'")),
        Just(format!("\"{PASSWORD}\"")),
        Just(format!("\"{PASSWORD}$x\"")),
        Just("'localhost:/run/mysqld.sock'".to_string()),
        Just("\"db:33x6\"".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("\\".to_string()),
        Just("//".to_string()),
        Just("#".to_string()),
        Just("/*".to_string()),
        Just("*/".to_string()),
        Just("\n".to_string()),
        Just("<?php".to_string()),
        Just("getenv('X')".to_string()),
        Just(" . ".to_string()),
        "[ -~]{0,12}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(src in any::<String>()) {
        let _ = parse(&src);
        let _ = parse_db_host(&src);
    }

    #[test]
    fn php_like_text_never_panics_nor_quotes_the_password(parts in proptest::collection::vec(fragment(), 0..40)) {
        let src = parts.concat();
        match parse(&src) {
            Ok(db) => {
                let _ = parse_db_host(&db.host);
                let shown = format!("{:?}", db);
                prop_assert!(!shown.contains(PASSWORD));
            }
            Err(e) => prop_assert!(!e.to_string().contains(PASSWORD), "{}", e),
        }
    }
}
