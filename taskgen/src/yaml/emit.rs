//! A YAML writer that reproduces the Go tool's output format.
//!
//! The Go generator prints the Task through `sigs.k8s.io/yaml`: struct → JSON → generic
//! value → go-yaml v2 emitter (a port of libyaml). This module ports the parts of that
//! emitter a Task needs — block mappings with go-yaml's key order, indentless block
//! sequences, `{}`/`[]` for empty collections, and the scalar style rules (plain with
//! folding at 80 columns, single- or double-quoted, literal `|`/`|-` blocks) — so the
//! output is byte-identical to the Go tool's.
//!
//! One deliberate difference: a multi-line string containing a tab or a character outside
//! the Basic Multilingual Plane is still written as a literal block (go-yaml falls back to
//! an unreadable double-quoted string). Both read back to the same text.

use std::cmp::Ordering;

use serde_json::Value;

use super::resolve::plain_reads_as_string;

const BEST_WIDTH: usize = 80;
const BEST_INDENT: i32 = 2;
/// Longest key (in bytes) written as `key: value`; longer keys use the `? key` form.
const MAX_SIMPLE_KEY: usize = 128;

/// Renders a JSON-like value as YAML exactly as `sigs.k8s.io/yaml` (go-yaml v2) would.
pub fn to_yaml(value: &Value) -> String {
    let mut emitter = Emitter::new();
    emitter.node(value, Context::ROOT);
    // Document end: go-yaml finishes the last line.
    emitter.write_indent();
    emitter.out
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
}

#[derive(Clone, Copy)]
struct Context {
    mapping: bool,
    simple_key: bool,
}

impl Context {
    const ROOT: Context = Context {
        mapping: false,
        simple_key: false,
    };
    const ITEM: Context = Context {
        mapping: false,
        simple_key: false,
    };
    const KEY: Context = Context {
        mapping: true,
        simple_key: true,
    };
    const VALUE: Context = Context {
        mapping: true,
        simple_key: false,
    };
}

struct Emitter {
    out: String,
    column: usize,
    indent: i32,
    indents: Vec<i32>,
    whitespace: bool,
    indention: bool,
    flow_level: u32,
    mapping_context: bool,
    simple_key_context: bool,
}

impl Emitter {
    fn new() -> Self {
        Emitter {
            out: String::new(),
            column: 0,
            indent: -1,
            indents: Vec::new(),
            whitespace: true,
            indention: true,
            flow_level: 0,
            mapping_context: false,
            simple_key_context: false,
        }
    }

    fn put(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    fn put_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
        self.indention = true;
    }

    fn write_break(&mut self, c: char) {
        if c == '\n' {
            self.put_break();
        } else {
            self.put(c);
            self.column = 0;
            self.indention = true;
        }
    }

    fn write_indent(&mut self) {
        let indent = self.indent.max(0) as usize;
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.put(' ');
        }
        self.whitespace = true;
        self.indention = true;
    }

    fn write_indicator(
        &mut self,
        indicator: &str,
        need_whitespace: bool,
        is_whitespace: bool,
        is_indention: bool,
    ) {
        if need_whitespace && !self.whitespace {
            self.put(' ');
        }
        for c in indicator.chars() {
            self.put(c);
        }
        self.whitespace = is_whitespace;
        self.indention = self.indention && is_indention;
    }

    fn increase_indent(&mut self, flow: bool, indentless: bool) {
        self.indents.push(self.indent);
        if self.indent < 0 {
            self.indent = if flow { BEST_INDENT } else { 0 };
        } else if !indentless {
            self.indent += BEST_INDENT;
        }
    }

    fn pop_indent(&mut self) {
        self.indent = self.indents.pop().unwrap_or(-1);
    }

    fn node(&mut self, value: &Value, ctx: Context) {
        self.mapping_context = ctx.mapping;
        self.simple_key_context = ctx.simple_key;
        match value {
            Value::Null => self.scalar("null", Style::Plain),
            Value::Bool(b) => self.scalar(if *b { "true" } else { "false" }, Style::Plain),
            Value::Number(n) => self.scalar(&format_number(n), Style::Plain),
            Value::String(s) => self.scalar(s, requested_string_style(s)),
            Value::Array(items) if items.is_empty() || self.flow_level > 0 => {
                self.empty_flow("[", "]")
            }
            Value::Array(items) => self.block_sequence(items),
            Value::Object(map) if map.is_empty() || self.flow_level > 0 => {
                self.empty_flow("{", "}")
            }
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| go_key_order(a.0, b.0));
                self.block_mapping(&entries);
            }
        }
    }

    fn empty_flow(&mut self, open: &str, close: &str) {
        self.write_indicator(open, true, true, false);
        self.increase_indent(true, false);
        self.flow_level += 1;
        self.flow_level -= 1;
        self.pop_indent();
        self.write_indicator(close, false, false, false);
    }

    fn block_sequence(&mut self, items: &[Value]) {
        let indentless = self.mapping_context && !self.indention;
        self.increase_indent(false, indentless);
        for item in items {
            self.write_indent();
            self.write_indicator("-", true, false, true);
            self.node(item, Context::ITEM);
        }
        self.pop_indent();
    }

    fn block_mapping(&mut self, entries: &[(&String, &Value)]) {
        self.increase_indent(false, false);
        for (key, value) in entries {
            self.write_indent();
            let simple = !key.contains(is_break) && key.len() <= MAX_SIMPLE_KEY;
            if simple {
                self.node(&Value::String((*key).clone()), Context::KEY);
                self.write_indicator(":", false, false, false);
            } else {
                self.write_indicator("?", true, false, true);
                self.node(&Value::String((*key).clone()), Context::VALUE);
                self.write_indent();
                self.write_indicator(":", true, false, true);
            }
            self.node(value, Context::VALUE);
        }
        self.pop_indent();
    }

    fn scalar(&mut self, value: &str, requested: Style) {
        let analysis = Analysis::of(value);
        let style = self.select_style(requested, &analysis, value);
        self.increase_indent(true, false);
        let allow_breaks = !self.simple_key_context;
        match style {
            Style::Plain => self.write_plain(value, allow_breaks),
            Style::SingleQuoted => self.write_single_quoted(value, allow_breaks),
            Style::DoubleQuoted => self.write_double_quoted(value, allow_breaks),
            Style::Literal => self.write_literal(value),
        }
        self.pop_indent();
    }

    fn select_style(&self, requested: Style, a: &Analysis, value: &str) -> Style {
        let mut style = requested;
        if self.simple_key_context && a.multiline {
            style = Style::DoubleQuoted;
        }
        if style == Style::Plain {
            if (self.flow_level > 0 && !a.flow_plain_allowed)
                || (self.flow_level == 0 && !a.block_plain_allowed)
            {
                style = Style::SingleQuoted;
            }
            if value.is_empty() && (self.flow_level > 0 || self.simple_key_context) {
                style = Style::SingleQuoted;
            }
        }
        if style == Style::SingleQuoted && !a.single_quoted_allowed {
            style = Style::DoubleQuoted;
        }
        if style == Style::Literal
            && (!a.block_allowed || self.flow_level > 0 || self.simple_key_context)
        {
            style = Style::DoubleQuoted;
        }
        style
    }

    fn write_plain(&mut self, value: &str, allow_breaks: bool) {
        if !self.whitespace {
            self.put(' ');
        }
        let chars: Vec<char> = value.chars().collect();
        let mut spaces = false;
        let mut breaks = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                let next_is_space = chars.get(i + 1) == Some(&' ');
                if allow_breaks && !spaces && self.column > BEST_WIDTH && !next_is_space {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else if is_break(c) {
                if !breaks && c == '\n' {
                    self.put_break();
                }
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.put(c);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        self.whitespace = false;
        self.indention = false;
    }

    fn write_single_quoted(&mut self, value: &str, allow_breaks: bool) {
        self.write_indicator("'", true, false, false);
        let chars: Vec<char> = value.chars().collect();
        let mut spaces = false;
        let mut breaks = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                let inner = i > 0 && i + 1 < chars.len();
                let next_is_space = chars.get(i + 1) == Some(&' ');
                if allow_breaks && !spaces && self.column > BEST_WIDTH && inner && !next_is_space {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else if is_break(c) {
                if !breaks && c == '\n' {
                    self.put_break();
                }
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                if c == '\'' {
                    self.put('\'');
                }
                self.put(c);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        self.write_indicator("'", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_double_quoted(&mut self, value: &str, allow_breaks: bool) {
        self.write_indicator("\"", true, false, false);
        let chars: Vec<char> = value.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if !is_printable(c) || c == '\u{FEFF}' || is_break(c) || c == '"' || c == '\\' {
                self.put('\\');
                match c {
                    '\0' => self.put('0'),
                    '\u{7}' => self.put('a'),
                    '\u{8}' => self.put('b'),
                    '\t' => self.put('t'),
                    '\n' => self.put('n'),
                    '\u{b}' => self.put('v'),
                    '\u{c}' => self.put('f'),
                    '\r' => self.put('r'),
                    '\u{1b}' => self.put('e'),
                    '"' => self.put('"'),
                    '\\' => self.put('\\'),
                    '\u{85}' => self.put('N'),
                    '\u{a0}' => self.put('_'),
                    '\u{2028}' => self.put('L'),
                    '\u{2029}' => self.put('P'),
                    _ => {
                        let v = u32::from(c);
                        let (marker, width) = match v {
                            0..=0xFF => ('x', 2),
                            0x100..=0xFFFF => ('u', 4),
                            _ => ('U', 8),
                        };
                        self.put(marker);
                        for ch in format!("{v:0width$X}").chars() {
                            self.put(ch);
                        }
                    }
                }
                spaces = false;
            } else if c == ' ' {
                let inner = i > 0 && i + 1 < chars.len();
                if allow_breaks && !spaces && self.column > BEST_WIDTH && inner {
                    self.write_indent();
                    if chars.get(i + 1) == Some(&' ') {
                        self.put('\\');
                    }
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
        self.write_indicator("\"", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_literal(&mut self, value: &str) {
        self.write_indicator("|", true, false, false);
        let first = value.chars().next();
        if first.is_some_and(|c| c == ' ' || is_break(c)) {
            self.write_indicator(&BEST_INDENT.to_string(), false, false, false);
        }
        let mut rev = value.chars().rev();
        let chomp = match (rev.next(), rev.next()) {
            (Some(last), _) if !is_break(last) => Some("-"),
            (Some(_), None) => Some("+"),
            (Some(_), Some(prev)) if is_break(prev) => Some("+"),
            (None, _) => Some("-"),
            _ => None,
        };
        if let Some(chomp) = chomp {
            self.write_indicator(chomp, false, false, false);
        }
        self.put_break();
        self.indention = true;
        self.whitespace = true;
        let mut breaks = true;
        for c in value.chars() {
            if is_break(c) {
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.put(c);
                self.indention = false;
                breaks = false;
            }
        }
    }
}

/// The style go-yaml's encoder asks for: literal for multi-line text, plain when the
/// text would read back as a string, double-quoted otherwise. The emitter may still
/// pick a safer style after analysing the text.
fn requested_string_style(s: &str) -> Style {
    if s.contains('\n') {
        Style::Literal
    } else if plain_reads_as_string(s) {
        Style::Plain
    } else {
        Style::DoubleQuoted
    }
}

/// What libyaml's `yaml_emitter_analyze_scalar` finds out about a scalar.
struct Analysis {
    multiline: bool,
    flow_plain_allowed: bool,
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

impl Analysis {
    fn of(value: &str) -> Analysis {
        if value.is_empty() {
            return Analysis {
                multiline: false,
                flow_plain_allowed: false,
                block_plain_allowed: true,
                single_quoted_allowed: true,
                block_allowed: false,
            };
        }
        let mut block_indicators = false;
        let mut flow_indicators = false;
        let mut line_breaks = false;
        let mut special_characters = false;
        let mut special_in_block = false;
        let mut leading_space = false;
        let mut leading_break = false;
        let mut trailing_space = false;
        let mut trailing_break = false;
        let mut break_space = false;
        let mut space_break = false;
        let mut previous_space = false;
        let mut previous_break = false;

        if value.starts_with("---") || value.starts_with("...") {
            block_indicators = true;
            flow_indicators = true;
        }
        let chars: Vec<char> = value.chars().collect();
        let mut preceded_by_whitespace = true;
        for (i, &c) in chars.iter().enumerate() {
            let followed_by_whitespace = chars.get(i + 1).is_none_or(|n| is_blank(*n));
            let last = i + 1 == chars.len();
            if i == 0 {
                match c {
                    '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\''
                    | '"' | '%' | '@' | '`' => {
                        flow_indicators = true;
                        block_indicators = true;
                    }
                    '?' | ':' => {
                        flow_indicators = true;
                        if followed_by_whitespace {
                            block_indicators = true;
                        }
                    }
                    '-' if followed_by_whitespace => {
                        flow_indicators = true;
                        block_indicators = true;
                    }
                    _ => {}
                }
            } else {
                match c {
                    ',' | '?' | '[' | ']' | '{' | '}' => flow_indicators = true,
                    ':' => {
                        flow_indicators = true;
                        if followed_by_whitespace {
                            block_indicators = true;
                        }
                    }
                    '#' if preceded_by_whitespace => {
                        flow_indicators = true;
                        block_indicators = true;
                    }
                    _ => {}
                }
            }
            // NEL/LS/PS are line breaks only in YAML 1.1; go-yaml writes them raw, which
            // YAML 1.2 readers misread, so they are escaped in a double-quoted string.
            if !is_printable(c) || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}') {
                special_characters = true;
                // A literal block can carry tabs and astral-plane characters verbatim.
                if !(c == '\t' || u32::from(c) >= 0x10000) {
                    special_in_block = true;
                }
            }
            if c == ' ' {
                if i == 0 {
                    leading_space = true;
                }
                if last {
                    trailing_space = true;
                }
                if previous_break {
                    break_space = true;
                }
                previous_space = true;
                previous_break = false;
            } else if is_break(c) {
                line_breaks = true;
                if i == 0 {
                    leading_break = true;
                }
                if last {
                    trailing_break = true;
                }
                if previous_space {
                    space_break = true;
                }
                previous_space = false;
                previous_break = true;
            } else {
                previous_space = false;
                previous_break = false;
            }
            preceded_by_whitespace = is_blank(c) || is_break(c);
        }

        let mut a = Analysis {
            multiline: line_breaks,
            flow_plain_allowed: true,
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: true,
        };
        if leading_space || leading_break || trailing_space || trailing_break {
            a.flow_plain_allowed = false;
            a.block_plain_allowed = false;
        }
        if trailing_space {
            a.block_allowed = false;
        }
        if break_space {
            a.flow_plain_allowed = false;
            a.block_plain_allowed = false;
            a.single_quoted_allowed = false;
        }
        if space_break || special_characters {
            a.flow_plain_allowed = false;
            a.block_plain_allowed = false;
            a.single_quoted_allowed = false;
        }
        if space_break || special_in_block {
            a.block_allowed = false;
        }
        if line_breaks {
            a.flow_plain_allowed = false;
            a.block_plain_allowed = false;
        }
        if flow_indicators {
            a.flow_plain_allowed = false;
        }
        if block_indicators {
            a.block_plain_allowed = false;
        }
        a
    }
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// libyaml's `is_printable` (on UTF-8 input): LF, printable ASCII, U+00A0..U+D7FF and
/// U+E000..U+FFFD except the BOM. Everything else, astral characters included, is not.
fn is_printable(c: char) -> bool {
    matches!(u32::from(c), 0x0A | 0x20..=0x7E | 0xA0..=0xD7FF | 0xE000..=0xFFFD) && c != '\u{FEFF}'
}

/// go-yaml's `keyList.Less` for string keys: letters sort after non-letters, and runs
/// of digits compare by numeric value (`a2` < `a10`).
pub fn go_key_order(a: &str, b: &str) -> Ordering {
    if go_key_less(a, b) {
        Ordering::Less
    } else if go_key_less(b, a) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

fn go_key_less(a: &str, b: &str) -> bool {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    let mut i = 0;
    while i < ar.len() && i < br.len() {
        if ar[i] == br[i] {
            i += 1;
            continue;
        }
        let al = ar[i].is_alphabetic();
        let bl = br[i].is_alphabetic();
        if al && bl {
            return ar[i] < br[i];
        }
        if al || bl {
            return bl;
        }
        let mut an: i64 = 0;
        let mut bn: i64 = 0;
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an
                .wrapping_mul(10)
                .wrapping_add(i64::from(ar[ai] as u8 - b'0'));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn
                .wrapping_mul(10)
                .wrapping_add(i64::from(br[bi] as u8 - b'0'));
            bi += 1;
        }
        if an != bn {
            return an < bn;
        }
        if ai != bi {
            return ai < bi;
        }
        return ar[i] < br[i];
    }
    ar.len() < br.len()
}

/// Numbers as go-yaml writes them: integers in decimal, floats like Go's
/// `strconv.FormatFloat(f, 'g', -1, 64)`.
fn format_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    format_go_float(f)
}

fn format_go_float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.to_owned();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // Shortest round-trip digits and decimal exponent, e.g. 1.5e-7 -> ("15", -7).
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let mut m = digits[..1].to_owned();
        if digits.len() > 1 {
            m.push('.');
            m.push_str(&digits[1..]);
        }
        return format!(
            "{sign}{m}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        );
    }
    if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let exp = exp as usize;
    if digits.len() > exp + 1 {
        format!("{sign}{}.{}", &digits[..=exp], &digits[exp + 1..])
    } else {
        format!("{sign}{digits}{}", "0".repeat(exp + 1 - digits.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn keys_follow_go_yaml_order() {
        let mut keys = vec!["b", "a10", "a2", "B", "_x", "a.b", "a", "1", "a/b", "ab"];
        keys.sort_by(|a, b| go_key_order(a, b));
        // Non-letters before letters, upper case before lower case, digit runs by value.
        assert_eq!(
            keys,
            ["_x", "1", "B", "a", "a.b", "a/b", "a2", "a10", "ab", "b"]
        );
    }

    #[test]
    fn block_layout_matches_go_yaml() {
        let value = json!({
            "spec": {
                "params": [{"name": "A", "default": []}, {"name": "B"}],
                "emptyDir": {},
                "nested": [["x", "z"], {}],
            },
            "apiVersion": "tekton.dev/v1",
        });
        assert_eq!(
            to_yaml(&value),
            "apiVersion: tekton.dev/v1\nspec:\n  emptyDir: {}\n  nested:\n  - - x\n    - z\n  - {}\n  params:\n  - default: []\n    name: A\n  - name: B\n"
        );
    }

    #[test]
    fn scalars_are_quoted_only_when_needed() {
        let cases = [
            (json!("0.12.0"), "0.12.0"),
            (json!("0.1"), "\"0.1\""),
            (json!("true"), "\"true\""),
            (json!("y"), "\"y\""),
            (json!(""), "\"\""),
            (json!("2024-11-13T00:00:00Z"), "\"2024-11-13T00:00:00Z\""),
            (json!("Valid values: spdx"), "'Valid values: spdx'"),
            (json!("it's#here"), "it's#here"),
            (json!("x #y"), "'x #y'"),
            (json!(" lead"), "' lead'"),
            (json!("-"), "'-'"),
            (json!("'q'"), "'''q'''"),
            (json!("tab\there"), "\"tab\\there\""),
            (json!(600), "600"),
            (json!(false), "false"),
            (json!(null), "null"),
        ];
        for (value, written) in cases {
            assert_eq!(to_yaml(&json!({ "k": value })), format!("k: {written}\n"));
        }
    }

    #[test]
    fn long_plain_strings_fold_after_column_80() {
        let text = "Whether to append a sanitized platform architecture on the IMAGE tag";
        let value = json!({"spec": {"params": [{"default": "false", "description": text}]}});
        assert_eq!(
            to_yaml(&value),
            "spec:\n  params:\n  - default: \"false\"\n    description: Whether to append a sanitized platform architecture on the IMAGE\n      tag\n"
        );
    }

    #[test]
    fn multi_line_strings_are_literal_blocks() {
        let value = json!({
            "clip": "a\nb\n", "strip": "a\n\nb", "keep": "a\n\n", "indented": "  a\nb",
            "trailing": "a \nb", "tabbed": "a\n\tb", "ls": "a\u{2028}b\nc",
        });
        assert_eq!(
            to_yaml(&value),
            concat!(
                "clip: |\n  a\n  b\nindented: |2-\n    a\n  b\nkeep: |+\n  a\n\n",
                "ls: \"a\\Lb\\nc\"\n",
                "strip: |-\n  a\n\n  b\ntabbed: |-\n  a\n  \tb\ntrailing: \"a \\nb\"\n",
            )
        );
    }

    #[test]
    fn go_float_format() {
        assert_eq!(format_go_float(0.5), "0.5");
        assert_eq!(format_go_float(1234567.5), "1.2345675e+06");
        assert_eq!(format_go_float(0.00001), "1e-05");
        assert_eq!(format_go_float(-2.25), "-2.25");
    }

    fn text() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[ -~\\n\\t\\r\u{e9}\u{85}\u{2028}\u{1F600}]{0,120}")
            .expect("regex")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Whatever style is chosen, a YAML reader gets the same strings back.
        #[test]
        fn strings_round_trip(key in text(), value in text(), item in text()) {
            let doc = json!({ key.clone(): { "v": value.clone(), "list": [item.clone()] } });
            let yaml = to_yaml(&doc);
            let back: Value = serde_saphyr::from_str(&yaml)
                .map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?;
            prop_assert_eq!(back, doc, "yaml was:\n{}", yaml);
        }
    }
}
