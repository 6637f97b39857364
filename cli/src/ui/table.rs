//! Rows of text as an aligned table. (Answers of the relay are typed,
//! [`lobster_shared::api`]; their renderers pass what a sender chose
//! through [`super::printable`].)

use console::{measure_text_width, pad_str};

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
