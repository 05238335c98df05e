//! `config check`: validate, then print the effective config, redacted.

use crate::EXIT_CONFIG;
use crate::config::{Config, ConfigError};

pub fn run(loaded: Result<Config, ConfigError>, json: bool) -> u8 {
    let config = match loaded {
        Ok(c) => c,
        Err(e) => return super::report_config_error(&e, json),
    };
    let redacted = config.redacted();
    if json {
        println!(
            "{}",
            serde_json::json!({ "valid": true, "warnings": config.warnings, "config": redacted })
        );
        return 0;
    }
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    match toml_text(&redacted) {
        Ok(text) => {
            println!("# Configuration is valid. Effective settings (secrets redacted):");
            print!("{text}");
            0
        }
        Err(e) => {
            eprintln!("error: cannot render configuration: {e}");
            EXIT_CONFIG
        }
    }
}

/// Render through JSON, dropping nulls, which TOML cannot express.
fn toml_text(redacted: &crate::config::RedactedConfig) -> Result<String, String> {
    let mut value = serde_json::to_value(redacted).map_err(|e| e.to_string())?;
    strip_nulls(&mut value);
    let mut out = String::new();
    if let serde_json::Value::Object(map) = &value {
        for (k, v) in map {
            if !v.is_array() && !v.is_object() {
                out.push_str(&format!("{k} = {v}\n"));
            }
        }
        for (k, v) in map {
            match v {
                serde_json::Value::Object(obj) => {
                    out.push_str(&format!("\n[{k}]\n"));
                    for (ik, iv) in obj {
                        out.push_str(&format!("{ik} = {iv}\n"));
                    }
                }
                serde_json::Value::Array(items) => {
                    for item in items {
                        out.push_str(&format!("\n[[{k}]]\n"));
                        if let serde_json::Value::Object(obj) = item {
                            for (ik, iv) in obj {
                                out.push_str(&format!("{ik} = {iv}\n"));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

fn strip_nulls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}
