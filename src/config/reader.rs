//! Reads a TOML document field by field, collecting every problem instead of stopping at the first, so
//! `tillmark check-config` can show an operator all that is wrong in one run, each with its key path and line.

use std::cell::RefCell;
use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::duration::{self, Millis};
use super::size::{self, Bytes};

/// One problem in a config file: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Key path such as `camera_systems[0].password_env`; empty for the whole file.
    pub path: String,
    /// 1-based line in the file, where known.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.path[..], self.line) {
            ("", Some(line)) => write!(f, "line {line}: {}", self.message),
            ("", None) => write!(f, "{}", self.message),
            (path, Some(line)) => write!(f, "{path} (line {line}): {}", self.message),
            (path, None) => write!(f, "{path}: {}", self.message),
        }
    }
}

/// Reads a whole TOML document with `build`, returning what it built or every problem found, in file order.
/// `build` records problems on the `Doc`; any problem makes the result an error, even if `build` returned a value.
pub fn read_document<T>(
    text: &str,
    build: impl FnOnce(&Doc, &Table) -> Option<T>,
) -> Result<T, Vec<ConfigError>> {
    let doc = Doc::new(text);
    let root = match toml::de::DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            let line = e.span().map(|s| doc.line_of(&s));
            return Err(vec![ConfigError {
                path: String::new(),
                line,
                message: e.message().to_string(),
            }]);
        }
    };
    let top = Table::root(&doc, &root);
    let built = build(&doc, &top);
    top.finish();
    match built {
        Some(value) if !doc.has_errors() => Ok(value),
        _ => {
            // Sections are read in a fixed order, not the file's: sort so the list reads top to bottom.
            let mut errors = doc.into_errors();
            errors.sort_by_key(|e| e.line);
            Err(errors)
        }
    }
}

/// Shared state of one read: the source (to turn byte offsets into lines) and the errors so far.
pub struct Doc<'s> {
    source: &'s str,
    errors: RefCell<Vec<ConfigError>>,
}

impl<'s> Doc<'s> {
    pub fn new(source: &'s str) -> Self {
        Doc {
            source,
            errors: RefCell::new(Vec::new()),
        }
    }

    pub fn line_of(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.source.len());
        self.source.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    pub fn push(&self, path: impl Into<String>, line: Option<usize>, message: impl Into<String>) {
        self.errors.borrow_mut().push(ConfigError {
            path: path.into(),
            line,
            message: message.into(),
        });
    }

    pub fn into_errors(self) -> Vec<ConfigError> {
        self.errors.into_inner()
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.borrow().is_empty()
    }
}

/// A TOML table being read. Every key read is remembered, so `finish` can name the keys nobody asked for.
pub struct Table<'a, 'i> {
    doc: &'a Doc<'a>,
    path: String,
    table: &'a DeTable<'i>,
    line: usize,
    known: RefCell<Vec<&'static str>>,
}

/// Where a section and its keys are in the file, kept with what was read from it: a check that needs more
/// than the file (the camera systems against the vendor definitions) runs after reading, and must still point
/// at the key and line an operator would fix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    path: String,
    line: usize,
    /// Each key present, with the line of its value.
    keys: Vec<(String, usize)>,
}

impl Section {
    /// A problem with `key` (which may be absent), placed as [`Table::error`] places it: on the key's line,
    /// else on the section's own.
    pub fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let line = self
            .keys
            .iter()
            .find(|(k, _)| k == key)
            .map_or(self.line, |(_, line)| *line);
        let path = if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        };
        ConfigError {
            path,
            line: Some(line),
            message: message.into(),
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.keys.iter().any(|(k, _)| k == key)
    }
}

/// What [`Table::opt_str_or_table`] found.
pub enum StrOrTable<'a, 'i> {
    Str(At<String>),
    Table(Table<'a, 'i>),
}

/// A value with where it was found, for checks made after reading (cross references, duplicates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At<T> {
    pub value: T,
    pub path: String,
    pub line: usize,
}

impl<'a, 'i> Table<'a, 'i> {
    pub fn root(doc: &'a Doc<'a>, table: &'a Spanned<DeTable<'i>>) -> Self {
        Table::new(
            doc,
            String::new(),
            table.get_ref(),
            doc.line_of(&table.span()),
        )
    }

    fn new(doc: &'a Doc<'a>, path: String, table: &'a DeTable<'i>, line: usize) -> Self {
        Table {
            doc,
            path,
            table,
            line,
            known: RefCell::new(Vec::new()),
        }
    }

    /// Where this table and its keys are, for checks made after reading.
    pub fn section(&self) -> Section {
        Section {
            path: self.path.clone(),
            line: self.line,
            keys: self
                .table
                .iter()
                .map(|(k, v)| (k.get_ref().to_string(), self.doc.line_of(&v.span())))
                .collect(),
        }
    }

    pub fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn get(&self, key: &'static str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.known.borrow_mut().push(key);
        self.table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| v)
    }

    /// The line of `key` if present, else the table's own line.
    pub fn line_of(&self, key: &'static str) -> usize {
        self.get(key)
            .map(|v| self.doc.line_of(&v.span()))
            .unwrap_or(self.line)
    }

    /// Records a problem with `key` (which may be absent).
    pub fn error(&self, key: &'static str, message: impl Into<String>) {
        self.doc
            .push(self.key_path(key), Some(self.line_of(key)), message);
    }

    fn wrong_type(&self, key: &'static str, value: &Spanned<DeValue<'i>>, expected: &str) {
        self.doc.push(
            self.key_path(key),
            Some(self.doc.line_of(&value.span())),
            format!("expected {expected}, found {}", value.get_ref().type_str()),
        );
    }

    pub fn has(&self, key: &'static str) -> bool {
        self.get(key).is_some()
    }

    pub fn opt_str(&self, key: &'static str) -> Option<At<String>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(At {
                value: s.to_string(),
                path: self.key_path(key),
                line: self.doc.line_of(&v.span()),
            }),
            _ => {
                self.wrong_type(key, v, "a string");
                None
            }
        }
    }

    /// A string value read only to cross-reference it (a section's id): no error if absent or not a string, and
    /// the key still counts as unread, so the section's own reading reports its problems once.
    pub fn peek_str(&self, key: &str) -> Option<At<String>> {
        let v = self
            .table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| v)?;
        match v.get_ref() {
            DeValue::String(s) => Some(At {
                value: s.to_string(),
                path: self.key_path(key),
                line: self.doc.line_of(&v.span()),
            }),
            _ => None,
        }
    }

    pub fn req_str(&self, key: &'static str) -> Option<At<String>> {
        if !self.has(key) {
            self.doc
                .push(self.key_path(key), Some(self.line), "is required");
            return None;
        }
        let s = self.opt_str(key)?;
        if s.value.trim().is_empty() {
            self.error(key, "must not be empty");
            return None;
        }
        Some(s)
    }

    pub fn opt_bool(&self, key: &'static str) -> Option<bool> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(key, v, "true or false");
                None
            }
        }
    }

    pub fn opt_int(&self, key: &'static str, range: Range<i64>) -> Option<i64> {
        let v = self.get(key)?;
        let parsed = match v.get_ref() {
            DeValue::Integer(_) => int_value(v.get_ref()),
            _ => {
                self.wrong_type(key, v, "an integer");
                return None;
            }
        };
        match parsed {
            Some(n) if range.contains(&n) => Some(n),
            _ => {
                self.error(
                    key,
                    format!("must be between {} and {}", range.start, range.end - 1),
                );
                None
            }
        }
    }

    /// A number, written as an integer or with decimals.
    pub fn opt_float(&self, key: &'static str) -> Option<f64> {
        let v = self.get(key)?;
        let parsed = match v.get_ref() {
            DeValue::Integer(_) => int_value(v.get_ref()).map(|n| n as f64),
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            _ => {
                self.wrong_type(key, v, "a number");
                return None;
            }
        };
        if parsed.is_none() {
            self.error(key, "is not a number");
        }
        parsed.filter(|x| x.is_finite())
    }

    /// A value that may be written as a string or as a table (`hours = "09:00-22:00"` or `hours = { mon = ... }`).
    pub fn opt_str_or_table(&self, key: &'static str) -> Option<StrOrTable<'a, 'i>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Table(_) => self.opt_table(key).map(StrOrTable::Table),
            _ => self.opt_str(key).map(StrOrTable::Str),
        }
    }

    pub fn opt_duration(&self, key: &'static str) -> Option<Millis> {
        let s = self.opt_str(key)?;
        match duration::parse(&s.value) {
            Ok(d) => Some(d),
            Err(message) => {
                self.doc.push(s.path, Some(s.line), message);
                None
            }
        }
    }

    pub fn opt_size(&self, key: &'static str) -> Option<Bytes> {
        let s = self.opt_str(key)?;
        match size::parse(&s.value) {
            Ok(b) => Some(b),
            Err(message) => {
                self.doc.push(s.path, Some(s.line), message);
                None
            }
        }
    }

    /// The elements of a list, each with its path (`topics[1]`) and line; `None` when absent or not a list.
    fn items(
        &self,
        key: &'static str,
        expected: &str,
    ) -> Option<Vec<(String, usize, &'a DeValue<'i>)>> {
        let v = self.get(key)?;
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(key, v, expected);
            return None;
        };
        Some(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    (
                        format!("{}[{i}]", self.key_path(key)),
                        self.doc.line_of(&item.span()),
                        item.get_ref(),
                    )
                })
                .collect(),
        )
    }

    /// A list of strings; each element keeps its own path (`topics[1]`) for later checks.
    pub fn opt_str_list(&self, key: &'static str) -> Option<Vec<At<String>>> {
        let mut out = Vec::new();
        for (path, line, item) in self.items(key, "a list of strings")? {
            match item {
                DeValue::String(s) => out.push(At {
                    value: s.to_string(),
                    path,
                    line,
                }),
                other => self.doc.push(
                    path,
                    Some(line),
                    format!("expected a string, found {}", other.type_str()),
                ),
            }
        }
        Some(out)
    }

    /// Every entry of a free-form table of strings (such as HTTP headers), each with its path and line.
    pub fn string_entries(&self) -> Vec<(String, At<String>)> {
        let mut out = Vec::new();
        for (k, v) in self.table.iter() {
            let key = k.get_ref().to_string();
            let path = self.key_path_owned(&key);
            let line = self.doc.line_of(&v.span());
            match v.get_ref() {
                DeValue::String(s) => out.push((
                    key,
                    At {
                        value: s.to_string(),
                        path,
                        line,
                    },
                )),
                other => self.doc.push(
                    path,
                    Some(line),
                    format!("expected a string, found {}", other.type_str()),
                ),
            }
        }
        out
    }

    /// A list of integers within `range`, such as HTTP status codes.
    pub fn opt_int_list(&self, key: &'static str, range: Range<i64>) -> Option<Vec<i64>> {
        let mut out = Vec::new();
        for (path, line, item) in self.items(key, "a list of integers")? {
            match int_value(item) {
                Some(n) if range.contains(&n) => out.push(n),
                _ => self.doc.push(
                    path,
                    Some(line),
                    format!(
                        "expected an integer from {} to {}",
                        range.start,
                        range.end - 1
                    ),
                ),
            }
        }
        Some(out)
    }

    pub fn opt_table(&self, key: &'static str) -> Option<Table<'a, 'i>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(Table::new(
                self.doc,
                self.key_path(key),
                t,
                self.doc.line_of(&v.span()),
            )),
            _ => {
                self.wrong_type(key, v, "a table");
                None
            }
        }
    }

    /// `[[key]]` sections, each read as its own table with path `key[i]`.
    pub fn tables(&self, key: &'static str) -> Vec<Table<'a, 'i>> {
        let Some(v) = self.get(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(key, v, format!("a list of [[{key}]] sections").as_str());
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("{}[{i}]", self.key_path(key));
            let line = self.doc.line_of(&item.span());
            match item.get_ref() {
                DeValue::Table(t) => out.push(Table::new(self.doc, path, t, line)),
                other => self.doc.push(
                    path,
                    Some(line),
                    format!("expected a table, found {}", other.type_str()),
                ),
            }
        }
        out
    }

    /// A free-form table of scalars (vendor options) as JSON values, for templates.
    pub fn opt_scalar_map(&self, key: &'static str) -> serde_json::Map<String, serde_json::Value> {
        let mut out = serde_json::Map::new();
        let Some(t) = self.opt_table(key) else {
            return out;
        };
        for (k, v) in t.table.iter() {
            let name = k.get_ref().to_string();
            let json = match v.get_ref() {
                DeValue::String(s) => serde_json::Value::from(s.to_string()),
                DeValue::Boolean(b) => serde_json::Value::from(*b),
                DeValue::Integer(_) => match int_value(v.get_ref()) {
                    Some(n) => serde_json::Value::from(n),
                    None => {
                        self.doc.push(
                            t.key_path_owned(&name),
                            Some(self.doc.line_of(&v.span())),
                            "integer out of range",
                        );
                        continue;
                    }
                },
                DeValue::Float(f) => match f.as_str().replace('_', "").parse::<f64>() {
                    Ok(x) => serde_json::Value::from(x),
                    Err(_) => continue,
                },
                other => {
                    self.doc.push(
                        t.key_path_owned(&name),
                        Some(self.doc.line_of(&v.span())),
                        format!(
                            "expected a string, number or boolean, found {}",
                            other.type_str()
                        ),
                    );
                    continue;
                }
            };
            out.insert(name, json);
        }
        out
    }

    fn key_path_owned(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Reports every key that was never read: a misspelt key must not be silently ignored.
    pub fn finish(&self) {
        let known = self.known.borrow().clone();
        for (k, _) in self.table.iter() {
            let key = k.get_ref().as_ref();
            if !known.contains(&key) {
                let mut expected: Vec<&str> = known.clone();
                expected.sort_unstable();
                expected.dedup();
                self.doc.push(
                    self.key_path_owned(key),
                    Some(self.doc.line_of(&k.span())),
                    format!("unknown key; expected one of: {}", expected.join(", ")),
                );
            }
        }
    }
}

/// A TOML integer as `i64`, whatever its radix; `None` for anything else or out of range.
fn int_value(value: &DeValue) -> Option<i64> {
    match value {
        DeValue::Integer(n) => i64::from_str_radix(&n.as_str().replace('_', ""), n.radix()).ok(),
        _ => None,
    }
}
