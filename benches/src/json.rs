//! One-line JSON objects for `--json`: keys in the order written, strings escaped, numbers
//! finite (a non-finite number is written as `null`, which JSON can carry and `NaN` cannot).

use std::fmt::Write as _;

/// A JSON object being written, one key at a time.
#[derive(Clone, Debug, Default)]
pub struct JsonLine {
    text: String,
}

impl JsonLine {
    /// An empty object.
    pub fn new() -> JsonLine {
        JsonLine::default()
    }

    fn key(&mut self, key: &str) {
        self.text.push(if self.text.is_empty() { '{' } else { ',' });
        push_string(&mut self.text, key);
        self.text.push(':');
    }

    /// `"key":"value"`.
    pub fn str(mut self, key: &str, value: &str) -> JsonLine {
        self.key(key);
        push_string(&mut self.text, value);
        self
    }

    /// `"key":value` for an integer.
    pub fn int(mut self, key: &str, value: u64) -> JsonLine {
        self.key(key);
        let _ = write!(self.text, "{value}");
        self
    }

    /// `"key":value` for a number, with up to three decimals; `null` if not finite.
    pub fn num(mut self, key: &str, value: f64) -> JsonLine {
        self.key(key);
        if value.is_finite() {
            let _ = write!(self.text, "{}", (value * 1000.0).round() / 1000.0);
        } else {
            self.text.push_str("null");
        }
        self
    }

    /// `"key":true` or `false`.
    pub fn bool(mut self, key: &str, value: bool) -> JsonLine {
        self.key(key);
        self.text.push_str(if value { "true" } else { "false" });
        self
    }

    /// `"key":["a","b"]`.
    pub fn strs<'a>(mut self, key: &str, values: impl IntoIterator<Item = &'a str>) -> JsonLine {
        self.key(key);
        self.text.push('[');
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push(',');
            }
            push_string(&mut self.text, v);
        }
        self.text.push(']');
        self
    }

    /// The object's text, without a newline.
    pub fn finish(mut self) -> String {
        if self.text.is_empty() {
            self.text.push('{');
        }
        self.text.push('}');
        self.text
    }
}

/// Appends `s` as a JSON string literal.
fn push_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_order_with_escapes() {
        let line = JsonLine::new()
            .str("impl", "xuring")
            .int("ops", 42)
            .num("ops_per_sec", 1234.56789)
            .num("p99_us", f64::NAN)
            .bool("ok", true)
            .str("note", "a \"b\"\\\n\u{1}")
            .strs("ops_list", ["Nop", "Read"])
            .finish();
        assert_eq!(
            line,
            r#"{"impl":"xuring","ops":42,"ops_per_sec":1234.568,"p99_us":null,"ok":true,"note":"a \"b\"\\\n\u0001","ops_list":["Nop","Read"]}"#
        );
    }

    #[test]
    fn an_empty_object() {
        assert_eq!(JsonLine::new().finish(), "{}");
    }
}
