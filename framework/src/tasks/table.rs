//! Reading one table file (CSV, TSV, JSON Lines, JSON, Parquet) into the string columns a
//! task needs, with every problem named by file, line (or row) and column.
//!
//! - **CSV and TSV** are read by one RFC 4180 reader (the `csv` crate), header and values
//!   alike: quoted fields (a quoted header too, as R's `write.csv` and pandas' `QUOTE_ALL`
//!   write it), doubled quotes, CRLF, a UTF-8 BOM, `task.delimiter` for `;` or other
//!   separators; TSV without quoting, as GLUE's and SICK's files are written. Values stay
//!   text, with no type inference (so `007` stays `007`). The same pass checks UTF-8, the
//!   header (present, no duplicate names), every record's field count, and maps records to
//!   line numbers; blank lines are skipped (and counted), so there is no second reader to
//!   disagree with.
//! - **Parquet** is scanned lazily by polars, selecting only the requested columns.
//! - **JSON Lines and JSON arrays** are read with serde_json, line by line. polars' JSON
//!   reader needs its streaming engine (a large build for two formats) and reports a syntax
//!   error without its line; JSON is typed per row anyway, so types are checked per row.
//!
//! Values: a text column must hold strings; a key column (label, object, split) strings or
//! integers, integers written in decimal. Values are trimmed; null, missing or empty values
//! are `None` for the caller to treat as malformed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde_json::Value;

use super::{TableFormat, TaskError};

/// What a column holds, which decides the types it may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnRole {
    /// Text for a template or encoder: strings only.
    Text,
    /// A label, object or split name: strings or integers.
    Key,
}

/// One column a task asks for.
#[derive(Debug, Clone)]
pub struct ColumnRequest {
    pub name: String,
    pub role: ColumnRole,
    /// What the column is for, in the experiment's terms (for errors).
    pub purpose: String,
    /// The experiment key that names it (for plan-time errors).
    pub key: String,
}

/// The columns of a read.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub columns: Vec<ColumnRequest>,
    /// Also read every other text column (strings only), in file order.
    pub all_text: bool,
}

/// The requested columns of one file.
#[derive(Debug, Clone)]
pub struct Table {
    /// The file, and where each row is in it.
    pub locator: Locator,
    /// Column name → one trimmed value per row (`None`: null, missing or empty).
    pub columns: Columns,
    /// Text columns read because of [`Request::all_text`], in file order.
    pub extra_text: Vec<String>,
    /// Blank lines skipped (CSV, TSV, JSON Lines).
    pub blank_lines: usize,
    rows: usize,
}

impl Table {
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The values of a column that was read.
    pub fn column(&self, name: &str) -> &[Option<String>] {
        self.columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .expect("only requested columns are looked up")
    }

    /// Where row `index` is (see [`Locator::place`]).
    pub fn place(&self, index: usize) -> String {
        self.locator.place(index)
    }
}

/// A table's file and where its rows are, kept for errors after the values are gone.
#[derive(Debug, Clone)]
pub struct Locator {
    pub path: PathBuf,
    format: TableFormat,
    /// Line of each row in the file (CSV, TSV, JSON Lines).
    lines: Option<Vec<usize>>,
}

impl Locator {
    /// Where row `index` (0-based) is, as a user finds it: `line 7` in a text file, `row 7`
    /// of a Parquet file, `item 7` of a JSON array (both 1-based).
    pub fn place(&self, index: usize) -> String {
        match (&self.lines, self.format) {
            (Some(lines), _) => format!("line {}", lines[index]),
            (None, TableFormat::Json) => format!("item {} of the array", index + 1),
            (None, _) => format!("row {}", index + 1),
        }
    }
}

/// A problem with a whole file (or one of its columns), under the key that named it.
fn file_error(path: &Path, key: &str, message: String) -> TaskError {
    TaskError::Table {
        path: path.to_owned(),
        key: key.to_string(),
        message,
    }
}

/// The format of `path`: `format` when given, else by extension.
pub fn format_of(
    path: &Path,
    format: Option<TableFormat>,
    key: &str,
) -> Result<TableFormat, TaskError> {
    format
        .or_else(|| TableFormat::from_extension(path))
        .ok_or_else(|| file_error(path, key, "cannot tell the format from the extension (expected .csv, .tsv, .jsonl, .json or .parquet); set task.format".into()))
}

/// Reads the requested columns of `path`. `key` is the experiment key that named the file;
/// `delimiter` (`task.delimiter`) replaces a CSV or TSV file's field separator.
pub fn read(
    path: &Path,
    format: TableFormat,
    delimiter: Option<u8>,
    request: &Request,
    key: &str,
) -> Result<Table, TaskError> {
    let table_error = |message: String| file_error(path, key, message);
    let io_error = |source| TaskError::Io {
        path: path.to_owned(),
        hint: format!("the file named by {key}"),
        source,
    };
    if delimiter.is_some() && !matches!(format, TableFormat::Csv | TableFormat::Tsv) {
        return Err(file_error(
            path,
            "task.delimiter",
            format!(
                "is read as {}, which has no field separator; task.delimiter applies to CSV and TSV files",
                format_name(format)
            ),
        ));
    }
    if format == TableFormat::Parquet {
        // polars reads the file itself: look only at its two ends here.
        let (head, tail, len) = file_ends(path).map_err(io_error)?;
        if &head != b"PAR1" {
            return Err(table_error(
                "is not a Parquet file (it does not start with the `PAR1` magic); if it is CSV, TSV or JSON, give it that extension or set task.format".into(),
            ));
        }
        if &tail != b"PAR1" || len < 12 {
            return Err(table_error(
                "is a truncated Parquet file (its footer, which must end with `PAR1`, is missing)"
                    .into(),
            ));
        }
        return read_parquet(path, request, key);
    }
    let bytes = std::fs::read(path).map_err(io_error)?;
    if bytes.starts_with(b"PAR1") {
        return Err(table_error(format!(
            "looks like a Parquet file (it starts with `PAR1`), not {}; give it the .parquet extension or set task.format = \"parquet\"",
            format_name(format)
        )));
    }
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        table_error(format!(
            "line {line}: invalid UTF-8 (byte {} of the file); tables must be UTF-8 text",
            e.valid_up_to() + 1
        ))
    })?;
    match format {
        TableFormat::Csv | TableFormat::Tsv => {
            read_delimited(path, text, format, delimiter, request, key)
        }
        TableFormat::Jsonl => read_json_lines(path, text, request, key),
        TableFormat::Json => read_json_array(path, text, request, key),
        TableFormat::Parquet => unreachable!("read above"),
    }
}

/// The first and last 4 bytes of a file (zeros when it is shorter) and its length.
fn file_ends(path: &Path) -> std::io::Result<([u8; 4], [u8; 4], u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let (mut head, mut tail) = ([0u8; 4], [0u8; 4]);
    if len >= 4 {
        file.read_exact(&mut head)?;
        file.seek(SeekFrom::End(-4))?;
        file.read_exact(&mut tail)?;
    }
    Ok((head, tail, len))
}

fn format_name(format: TableFormat) -> &'static str {
    match format {
        TableFormat::Csv => "CSV",
        TableFormat::Tsv => "TSV",
        TableFormat::Jsonl => "JSON Lines",
        TableFormat::Json => "JSON",
        TableFormat::Parquet => "Parquet",
    }
}

fn missing(path: &Path, request: &ColumnRequest, available: &[String]) -> TaskError {
    TaskError::MissingColumn {
        path: path.to_owned(),
        column: request.name.clone(),
        role: request.purpose.clone(),
        key: request.key.clone(),
        available: available.to_vec(),
    }
}

/// The columns to read: the requested ones (each must exist), then, under `all_text`,
/// every other column `is_text` accepts.
fn chosen_columns(
    path: &Path,
    request: &Request,
    available: &[String],
    is_text: impl Fn(&str) -> bool,
) -> Result<(Vec<String>, Vec<String>), TaskError> {
    let mut names = vec![];
    for c in &request.columns {
        if !available.contains(&c.name) {
            return Err(missing(path, c, available));
        }
        if !names.contains(&c.name) {
            names.push(c.name.clone());
        }
    }
    let mut extra = vec![];
    if request.all_text {
        for name in available {
            if !names.contains(name) && is_text(name) {
                extra.push(name.clone());
            }
        }
    }
    Ok((names, extra))
}

/// A delimited text file's header and records, as one RFC 4180 reader (the `csv` crate)
/// reads them: quoted fields (header included), doubled quotes, CRLF, a UTF-8 BOM.
struct Delimited {
    header: Vec<String>,
    records: Vec<csv::StringRecord>,
    /// Line where each record starts.
    lines: Vec<usize>,
    /// Blank (or whitespace-only) lines, skipped.
    blank_lines: usize,
}

/// Reads every record of `text`, checking that each has as many fields as the header and
/// that the header names no column twice. Blank lines are skipped and counted.
fn parse_delimited(
    path: &Path,
    text: &str,
    separator: u8,
    quoting: bool,
    key: &str,
) -> Result<Delimited, TaskError> {
    let table_error = |message: String| file_error(path, key, message);
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(separator)
        .quoting(quoting)
        .from_reader(text.as_bytes());
    let mut header: Option<Vec<String>> = None;
    let (mut records, mut lines, mut blank_lines) = (vec![], vec![], 0);
    let mut record = csv::StringRecord::new();
    // The reader skips empty lines itself, and a record's position is where the reader
    // stood before them: count them from the text.
    let newlines_from = |byte: u64| {
        text.as_bytes()[byte as usize..]
            .iter()
            .take_while(|b| matches!(b, b'\n' | b'\r'))
            .filter(|&&b| b == b'\n')
            .count()
    };
    loop {
        let before = reader.position().clone();
        let more = reader.read_record(&mut record).map_err(|e| {
            let line = e.position().unwrap_or(&before).line();
            table_error(format!("line {line}: {e}"))
        })?;
        if !more {
            blank_lines += newlines_from(before.byte());
            break;
        }
        let start = record.position().unwrap_or(&before);
        let skipped = newlines_from(start.byte());
        let line = start.line() as usize + skipped;
        blank_lines += skipped;
        // A line of spaces is a record of one blank field: blank too.
        if record.len() == 1 && record[0].trim().is_empty() {
            blank_lines += 1;
            continue;
        }
        let Some(names) = &header else {
            let names: Vec<String> = record.iter().map(|f| f.trim().to_string()).collect();
            let mut seen = BTreeSet::new();
            for n in names.iter().filter(|n| !n.is_empty()) {
                if !seen.insert(n) {
                    return Err(table_error(format!(
                        "line {line}: the header names column `{n}` twice; column names must be unique"
                    )));
                }
            }
            header = Some(names);
            continue;
        };
        if record.len() != names.len() {
            let end = reader.position().line() as usize;
            let hint = if quoting && record.iter().any(|f| f.contains('\n')) {
                format!(
                    "; a quoted field runs from line {line} to line {end}: is a closing `\"` missing?"
                )
            } else if quoting {
                "; a field holding the separator must be quoted".into()
            } else if separator == b'\t' {
                "; TSV fields cannot hold tabs (for quoted fields, read it with format = \"csv\" and delimiter = \"\\t\")".into()
            } else {
                "; unquoted fields cannot hold the separator".into()
            };
            return Err(table_error(format!(
                "line {line}: {} fields, but the header has {} ({}){hint}",
                record.len(),
                names.len(),
                names.join(", "),
            )));
        }
        records.push(std::mem::take(&mut record));
        lines.push(line);
    }
    let Some(header) = header else {
        return Err(table_error(
            "is empty: expected a header row naming the columns".into(),
        ));
    };
    Ok(Delimited {
        header,
        records,
        lines,
        blank_lines,
    })
}

/// The field separator of a CSV / TSV file and whether `"` quotes: `,` and quoting for CSV,
/// tab without quoting for TSV (as GLUE's and SICK's files); `delimiter` replaces the
/// separator.
fn dialect(format: TableFormat, delimiter: Option<u8>) -> (u8, bool) {
    match format {
        TableFormat::Tsv => (delimiter.unwrap_or(b'\t'), false),
        _ => (delimiter.unwrap_or(b','), true),
    }
}

fn read_delimited(
    path: &Path,
    text: &str,
    format: TableFormat,
    delimiter: Option<u8>,
    request: &Request,
    key: &str,
) -> Result<Table, TaskError> {
    let (separator, quoting) = dialect(format, delimiter);
    let parsed = parse_delimited(path, text, separator, quoting, key)?;
    if parsed.blank_lines > 0 {
        tracing::debug!(path = %path.display(), blank_lines = parsed.blank_lines, "blank lines skipped");
    }
    // An unnamed column (R's row names) cannot be named by a template: not read as text.
    let (names, extra) = chosen_columns(path, request, &parsed.header, |n| !n.is_empty())?;
    let all: Vec<String> = names.iter().chain(&extra).cloned().collect();
    let columns: Columns = all
        .iter()
        .map(|name| {
            let index = parsed
                .header
                .iter()
                .position(|h| h == name)
                .expect("chosen from the header");
            let values = parsed.records.iter().map(|r| clean(r.get(index))).collect();
            (name.clone(), values)
        })
        .collect();
    let lines = parsed.lines;
    // CSV has no types: a label column of decimals is the float column JSON and Parquet
    // reject by type.
    for c in request.columns.iter().filter(|c| c.role == ColumnRole::Key) {
        let values = &columns.iter().find(|(n, _)| *n == c.name).expect("read").1;
        if let Some((row, v)) = values.iter().enumerate().find_map(|(i, v)| {
            v.as_deref()
                .filter(|v| is_fractional_number(v))
                .map(|v| (i, v))
        }) && values.iter().flatten().all(|v| v.parse::<f64>().is_ok())
        {
            return Err(file_error(
                path,
                &c.key,
                format!(
                    "column `{}` ({}) holds decimal numbers (`{v}` on line {}); labels must be strings or integers",
                    c.name, c.purpose, lines[row]
                ),
            ));
        }
    }
    Ok(Table {
        locator: Locator {
            path: path.to_owned(),
            format,
            lines: Some(lines),
        },
        rows: parsed.records.len(),
        columns,
        extra_text: extra,
        blank_lines: parsed.blank_lines,
    })
}

/// The named string columns of a frame, values trimmed (empty → `None`).
type Columns = Vec<(String, Vec<Option<String>>)>;

fn string_columns(frame: &DataFrame, names: &[String]) -> PolarsResult<Columns> {
    names
        .iter()
        .map(|name| {
            let values = frame.column(name)?.str()?.into_iter().map(clean).collect();
            Ok((name.clone(), values))
        })
        .collect()
}

/// A JSON value as an error names it.
fn describe(v: &Value) -> String {
    crate::config::GridValue(v).described(crate::config::Dialect::Json)
}

fn is_fractional_number(v: &str) -> bool {
    v.parse::<i64>().is_err() && v.parse::<f64>().is_ok_and(f64::is_finite)
}

fn clean(v: Option<&str>) -> Option<String> {
    v.map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

fn read_parquet(path: &Path, request: &Request, key: &str) -> Result<Table, TaskError> {
    let polars_error = |e: PolarsError| {
        file_error(
            path,
            key,
            format!("could not be read as Parquet (truncated or corrupt?): {e}"),
        )
    };
    let mut lazy = LazyFrame::scan_parquet(PlPath::Local(path.into()), Default::default())
        .map_err(polars_error)?;
    let schema = lazy.collect_schema().map_err(polars_error)?;
    let available: Vec<String> = schema.iter_names().map(|n| n.to_string()).collect();
    let dtype = |name: &str| schema.get(name).cloned().expect("present");
    let (names, extra) =
        chosen_columns(path, request, &available, |n| dtype(n) == DataType::String)?;
    for c in &request.columns {
        let dt = dtype(&c.name);
        let ok = match c.role {
            ColumnRole::Text => dt == DataType::String,
            ColumnRole::Key => dt == DataType::String || dt.is_integer(),
        };
        if !ok {
            let expected = match c.role {
                ColumnRole::Text => "text columns must hold strings",
                ColumnRole::Key if dt.is_float() => {
                    "labels must be strings or integers, not decimal numbers"
                }
                ColumnRole::Key => "labels must be strings or integers",
            };
            return Err(file_error(
                path,
                &c.key,
                format!(
                    "column `{}` ({}) has type {dt}; {expected}",
                    c.name, c.purpose
                ),
            ));
        }
    }
    let all: Vec<String> = names.iter().chain(&extra).cloned().collect();
    let frame = lazy
        .select(
            all.iter()
                .map(|n| col(n.as_str()).cast(DataType::String))
                .collect::<Vec<_>>(),
        )
        .collect()
        .map_err(polars_error)?;
    let columns = string_columns(&frame, &all).map_err(polars_error)?;
    Ok(Table {
        locator: Locator {
            path: path.to_owned(),
            format: TableFormat::Parquet,
            lines: None,
        },
        rows: frame.height(),
        columns,
        extra_text: extra,
        blank_lines: 0,
    })
}

/// Rows of a JSON table before column selection: objects with their place.
fn read_json_lines(
    path: &Path,
    text: &str,
    request: &Request,
    key: &str,
) -> Result<Table, TaskError> {
    let table_error = |message: String| file_error(path, key, message);
    let mut objects = vec![];
    let mut lines = vec![];
    let mut blank_lines = 0;
    for (line, row) in super::lines(text) {
        if row.trim().is_empty() {
            blank_lines += 1;
            continue;
        }
        let value: Value = serde_json::from_str(row)
            .map_err(|e| table_error(format!("line {line}: invalid JSON: {e}")))?;
        let Value::Object(object) = value else {
            return Err(table_error(format!(
                "line {line}: expected a JSON object (one row), found {}",
                describe(&value)
            )));
        };
        objects.push(object);
        lines.push(line);
    }
    let mut table = json_table(path, TableFormat::Jsonl, objects, Some(lines), request)?;
    table.blank_lines = blank_lines;
    Ok(table)
}

fn read_json_array(
    path: &Path,
    text: &str,
    request: &Request,
    key: &str,
) -> Result<Table, TaskError> {
    let table_error = |message: String| file_error(path, key, message);
    let value: Value = serde_json::from_str(text)
        .map_err(|e| table_error(format!("line {}: invalid JSON: {e}", e.line())))?;
    let Value::Array(items) = value else {
        return Err(table_error(format!(
            "expected a JSON array of objects (one per row), found {}; for one object per line use .jsonl",
            describe(&value)
        )));
    };
    let mut objects = vec![];
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Value::Object(object) => objects.push(object),
            other => {
                return Err(table_error(format!(
                    "item {} of the array: expected an object (one row), found {}",
                    i + 1,
                    describe(&other)
                )));
            }
        }
    }
    json_table(path, TableFormat::Json, objects, None, request)
}

fn json_table(
    path: &Path,
    format: TableFormat,
    objects: Vec<serde_json::Map<String, Value>>,
    lines: Option<Vec<usize>>,
    request: &Request,
) -> Result<Table, TaskError> {
    let locator = Locator {
        path: path.to_owned(),
        format,
        lines,
    };
    // Columns in order of first appearance.
    let mut available: Vec<String> = vec![];
    for object in &objects {
        for k in object.keys() {
            if !available.contains(k) {
                available.push(k.clone());
            }
        }
    }
    let is_text = |name: &str| {
        objects
            .iter()
            .filter_map(|o| o.get(name))
            .all(|v| matches!(v, Value::String(_) | Value::Null))
    };
    let (names, extra) = chosen_columns(path, request, &available, is_text)?;
    let role_of = |name: &str| {
        request
            .columns
            .iter()
            .find(|c| c.name == name)
            .map_or((ColumnRole::Text, None), |c| (c.role, Some(c)))
    };
    let mut columns = vec![];
    for name in names.iter().chain(&extra) {
        let (role, request) = role_of(name);
        let mut values = Vec::with_capacity(objects.len());
        for (i, object) in objects.iter().enumerate() {
            let value = match object.get(name) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => clean(Some(s)),
                Some(Value::Number(n)) if role == ColumnRole::Key && (n.is_i64() || n.is_u64()) => {
                    Some(n.to_string())
                }
                Some(other) => {
                    let expected = match role {
                        ColumnRole::Text => "text columns must hold strings",
                        ColumnRole::Key => "labels must be strings or integers",
                    };
                    return Err(file_error(
                        path,
                        request.map_or("", |c| &c.key),
                        format!(
                            "{}, column `{name}`{}: found {}; {expected}",
                            locator.place(i),
                            request.map_or_else(String::new, |c| format!(" ({})", c.purpose)),
                            describe(other)
                        ),
                    ));
                }
            };
            values.push(value);
        }
        columns.push((name.clone(), values));
    }
    Ok(Table {
        locator,
        rows: objects.len(),
        columns,
        extra_text: extra,
        blank_lines: 0,
    })
}
