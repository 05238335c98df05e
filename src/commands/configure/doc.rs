//! Edits of the TOML document that keep what a person wrote: values are
//! replaced with their comments, and a removed table's comments move to
//! the next table rather than disappearing.

use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, Value};

/// The tables of `[[key]]`, made if missing. `None` when `key` holds
/// something else (an inline array): such a file is left to its author.
pub fn array_of_tables<'a>(doc: &'a mut DocumentMut, key: &str) -> Option<&'a mut ArrayOfTables> {
    if !doc.contains_key(key) {
        doc.insert(key, Item::ArrayOfTables(ArrayOfTables::new()));
    }
    doc.get_mut(key).and_then(Item::as_array_of_tables_mut)
}

/// The tables of `[[key]]` (none when missing).
pub fn tables<'a>(doc: &'a DocumentMut, key: &str) -> impl Iterator<Item = &'a Table> {
    doc.get(key)
        .and_then(Item::as_array_of_tables)
        .into_iter()
        .flat_map(ArrayOfTables::iter)
}

pub fn str_of(table: &Table, key: &str) -> Option<String> {
    table.get(key).and_then(Item::as_str).map(str::to_string)
}

pub fn int_of(table: &Table, key: &str) -> Option<i64> {
    table.get(key).and_then(Item::as_integer)
}

pub fn float_of(table: &Table, key: &str) -> Option<f64> {
    let item = table.get(key)?;
    item.as_float().or_else(|| item.as_integer().map(|i| i as f64))
}

/// Set `key`, keeping the comments around an existing value.
pub fn set(table: &mut Table, key: &str, value: impl Into<Value>) {
    let mut value = value.into();
    match table.get_mut(key) {
        Some(Item::Value(old)) => {
            *value.decor_mut() = old.decor().clone();
            *old = value;
        }
        _ => {
            table.insert(key, Item::Value(value));
        }
    }
}

/// A number of GB as TOML writes it: `100`, or `0.5`.
pub fn gb_value(gb: f64) -> Value {
    if gb.fract() == 0.0 && gb.abs() < 1e15 {
        Value::from(gb as i64)
    } else {
        Value::from(gb)
    }
}

/// Remove the tables of `[[key]]` that `pick` selects. Their comments (above
/// the header, above a key, after a value, in their sub-tables) move to the
/// table that follows in the file, or to its end. Returns how many went.
pub fn remove_tables(doc: &mut DocumentMut, key: &str, pick: impl Fn(&Table) -> bool) -> usize {
    let mut removed = Vec::new();
    if let Some(array) = doc.get_mut(key).and_then(Item::as_array_of_tables_mut) {
        let mut i = 0;
        while i < array.len() {
            if array.get(i).is_some_and(&pick) {
                removed.push(array.remove(i));
            } else {
                i += 1;
            }
        }
    }
    for table in &removed {
        let mut comments = String::new();
        comments_of(table, &mut comments);
        if comments.is_empty() {
            continue;
        }
        let after = table.position().unwrap_or(isize::MAX);
        let next = next_position(doc.as_table(), after);
        let mut placed = false;
        if let Some(next) = next {
            with_table_at(doc.as_table_mut(), next, &mut |t: &mut Table| {
                let old = t.decor().prefix().and_then(|p| p.as_str()).unwrap_or("\n").to_string();
                t.decor_mut().set_prefix(format!("\n{comments}{old}"));
                placed = true;
            });
        }
        if !placed {
            let old = doc.trailing().as_str().unwrap_or("").to_string();
            doc.set_trailing(format!("{old}\n{comments}"));
        }
    }
    removed.len()
}

/// Every comment line of `table` and its sub-tables, each ending in `\n`.
fn comments_of(table: &Table, out: &mut String) {
    let mut take = |raw: Option<&str>| {
        for line in raw.unwrap_or("").lines() {
            let line = line.trim();
            if line.starts_with('#') {
                out.push_str(line);
                out.push('\n');
            }
        }
    };
    take(table.decor().prefix().and_then(|p| p.as_str()));
    for (key, item) in table.iter() {
        if let Some(k) = table.key(key) {
            take(k.leaf_decor().prefix().and_then(|p| p.as_str()));
        }
        if let Some(v) = item.as_value() {
            take(v.decor().suffix().and_then(|p| p.as_str()));
        }
    }
    for (_, item) in table.iter() {
        match item {
            Item::Table(t) => comments_of(t, out),
            Item::ArrayOfTables(a) => a.iter().for_each(|t| comments_of(t, out)),
            _ => {}
        }
    }
}

/// The smallest table position after `after`.
fn next_position(table: &Table, after: isize) -> Option<isize> {
    let mut best: Option<isize> = table.position().filter(|p| *p > after);
    for (_, item) in table.iter() {
        let found = match item {
            Item::Table(t) => next_position(t, after),
            Item::ArrayOfTables(a) => a.iter().filter_map(|t| next_position(t, after)).min(),
            _ => None,
        };
        best = match (best, found) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    best
}

fn with_table_at(table: &mut Table, position: isize, f: &mut dyn FnMut(&mut Table)) {
    if table.position() == Some(position) {
        f(table);
        return;
    }
    for (_, item) in table.iter_mut() {
        match item {
            Item::Table(t) => with_table_at(t, position, f),
            Item::ArrayOfTables(a) => a.iter_mut().for_each(|t| with_table_at(t, position, f)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"# top comment
host_id = "h"

# the primary
[[servers]]
id = 1 # first
# about the endpoint
endpoint = "a"

[[servers]]
id = 2
endpoint = "b"

[[sites]]
name = "s"
"#;

    #[test]
    fn removing_a_table_moves_its_comments_to_the_next_one() {
        let mut doc: DocumentMut = SAMPLE.parse().unwrap();
        let n = remove_tables(&mut doc, "servers", |t| int_of(t, "id") == Some(1));
        assert_eq!(n, 1);
        let text = doc.to_string();
        assert!(text.starts_with("# top comment\nhost_id = \"h\"\n"), "{text}");
        assert!(
            text.contains("# the primary\n# first\n# about the endpoint\n\n[[servers]]\nid = 2"),
            "{text}"
        );
        assert!(!text.contains("endpoint = \"a\""), "{text}");
        // The last table: its comments go to the end of the file.
        let mut doc: DocumentMut = SAMPLE.parse().unwrap();
        remove_tables(&mut doc, "sites", |_| true);
        remove_tables(&mut doc, "servers", |t| int_of(t, "id") == Some(1));
        remove_tables(&mut doc, "servers", |_| true);
        let text = doc.to_string();
        assert!(
            text.contains("# the primary") && text.contains("# top comment"),
            "{text}"
        );
        assert!(!text.contains("[[servers]]") && !text.contains("[[sites]]"), "{text}");
    }

    #[test]
    fn set_keeps_a_value_comment() {
        let mut doc: DocumentMut = SAMPLE.parse().unwrap();
        let t = array_of_tables(&mut doc, "servers").unwrap().get_mut(0).unwrap();
        set(t, "id", 7);
        set(t, "bucket", "new");
        let text = doc.to_string();
        assert!(text.contains("id = 7 # first\n"), "{text}");
        assert!(text.contains("bucket = \"new\""), "{text}");
    }

    #[test]
    fn new_tables_follow_their_kind() {
        let mut doc: DocumentMut = SAMPLE.parse().unwrap();
        let mut t = Table::new();
        set(&mut t, "id", 3);
        array_of_tables(&mut doc, "servers").unwrap().push(t);
        let text = doc.to_string();
        let three = text.find("id = 3").unwrap();
        assert!(
            text.find("endpoint = \"b\"").unwrap() < three && three < text.find("[[sites]]").unwrap(),
            "{text}"
        );
        assert_eq!(gb_value(100.0).to_string(), "100");
        assert_eq!(gb_value(0.5).to_string(), "0.5");
    }
}
