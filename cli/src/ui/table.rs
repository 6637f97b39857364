//! Loose JSON answers as terminal text: one field, or rows as a table.
//!
//! Answers are read as loose JSON, not strict structs: a field the relay
//! adds later must not break an older CLI, and a missing one shows as `-`.

use console::{measure_text_width, pad_str};
use serde_json::Value;

use super::printable;

/// A field of a JSON object as display text: strings bare (escaped with
/// [`printable`]: some are chosen by webhook senders), `null` or missing as
/// `-`, anything else as JSON.
pub fn field(value: &Value, name: &str) -> String {
    match value.get(name) {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(text)) => printable(text).into_owned(),
        Some(other) => other.to_string(),
    }
}

/// Rows padded to the widest cell of each column (ANSI codes not counted),
/// two spaces apart, without trailing blanks or a final newline.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|row| row.get(c))
                .map(|cell| measure_text_width(cell))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&pad_str(cell, widths[c], console::Alignment::Left, None));
                line.push_str("  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_text_dashes_or_json() {
        let value = json!({"name": "a\u{1b}[2Jb", "n": 3, "none": null});
        assert_eq!(field(&value, "name"), printable("a\u{1b}[2Jb"));
        assert_eq!(field(&value, "n"), "3");
        assert_eq!(field(&value, "none"), "-");
        assert_eq!(field(&value, "missing"), "-");
    }

    #[test]
    fn columns_align_on_visible_width() {
        let bold = console::style("ID").bold().force_styling(true).to_string();
        let rows = vec![
            vec![bold, "TYPE".into()],
            vec!["evt_1".into(), "a".into()],
            vec!["e".into(), String::new()],
        ];
        let text = console::strip_ansi_codes(&table(&rows)).to_string();
        assert_eq!(text, "ID     TYPE\nevt_1  a\ne");
    }
}
