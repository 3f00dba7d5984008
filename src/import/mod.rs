//! Bulk import of POs and GRNs from sheets (CSV, Excel, ODS): rows in, engine payloads out,
//! and for a rejected import an error file of the rows that failed.
//!
//! An import is two passes over the file. The first streams the rows into one payload (a
//! GRN, or every PO of the file), checking each row's cells on the way; the engine then
//! validates and commits it atomically, or rejects it and writes nothing. Only if something
//! failed does the second pass run: it reads the file again and copies each failing row to
//! the error file with its row number, outcome code and detail, so the file needs no row
//! kept in memory to be reported. Workflow rules stay in the engine; this module only
//! knows sheets.

pub mod grn;
pub mod po;
pub mod sheet;

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use csv::ByteRecord;
use thiserror::Error;

pub use sheet::Sheet;

/// Local row problems kept for the console; all of them go to the error file.
pub const PROBLEMS_SHOWN_MAX: usize = 10;

/// Code of a cell that cannot be read as its column's value (not a number, not good|bad,
/// empty where required). Validation failures carry the contract's outcome codes.
pub const INVALID_CELL: &str = "INVALID_CELL";

/// Columns the error file adds after the input's own. An error file can be fixed and
/// imported again as it is: importers ignore columns they do not know.
pub const ERROR_COLUMNS: [&str; 3] = ["errorRow", "errorCode", "errorDetail"];

#[derive(Debug, Error)]
pub enum ImportError {
    #[error("{file}: {message}")]
    Io { file: String, message: String },
    #[error("{file}: {message}")]
    Sheet { file: String, message: String },
    #[error("{file}: the sheet is empty (no header row)")]
    Empty { file: String },
    #[error("{file}: no data rows under the header")]
    NoRows { file: String },
    #[error("{file}: missing required column {column:?}{hint}; the header has: {found}")]
    MissingColumn {
        file: String,
        column: String,
        hint: String,
        found: String,
    },
    #[error("{file}: {message}")]
    Options { file: String, message: String },
}

impl ImportError {
    pub(crate) fn io(path: &Path, e: std::io::Error) -> Self {
        ImportError::Io {
            file: path.display().to_string(),
            message: e.to_string(),
        }
    }

    pub(crate) fn csv(path: &Path, e: csv::Error) -> Self {
        let message = match e.position() {
            Some(p) => format!("row {}: {e}", p.record() + 1),
            None => e.to_string(),
        };
        ImportError::Sheet {
            file: path.display().to_string(),
            message,
        }
    }
}

/// What the error file says of a row: `Some((code, detail))` if it failed.
pub type Verdict = Option<(String, String)>;

/// A row that cannot go into the payload, or that the engine rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    pub row: u64,
    /// The column at fault, as the importer names it.
    pub column: &'static str,
    pub code: String,
    pub detail: String,
}

impl std::fmt::Display for RowProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "row {}, column {}: {} {}",
            self.row, self.column, self.code, self.detail
        )
    }
}

/// Local problems found while reading: a count and the first few.
#[derive(Debug, Default)]
pub struct Problems {
    pub count: u64,
    pub first: Vec<RowProblem>,
}

impl Problems {
    pub fn add(&mut self, problem: RowProblem) {
        self.count += 1;
        if self.first.len() < PROBLEMS_SHOWN_MAX {
            self.first.push(problem);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Where each known column sits in a sheet. Names are matched case-insensitively.
pub struct Columns<'a> {
    file: String,
    headers: &'a [String],
}

impl<'a> Columns<'a> {
    pub fn new(sheet: &'a Sheet) -> Self {
        Self {
            file: sheet.file_name(),
            headers: sheet.headers(),
        }
    }

    /// The index of column `name`, if the sheet has it.
    pub fn find(&self, name: &str) -> Option<usize> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().position(|h| *h == name)
    }

    /// The index of required column `name`, or an error that names the closest header
    /// the sheet does have ("did you mean …").
    pub fn require(&self, name: &str, known: &[&str]) -> Result<usize, ImportError> {
        self.find(name).ok_or_else(|| self.missing(name, known))
    }

    /// The error for a missing required column `name`. `known` are the importer's column
    /// names: a header close to `name` that is not itself known is the likely misspelling.
    pub fn missing(&self, name: &str, known: &[&str]) -> ImportError {
        let lower = name.to_ascii_lowercase();
        let suggestion = self
            .headers
            .iter()
            .filter(|h| !h.is_empty() && !known.iter().any(|k| k.eq_ignore_ascii_case(h)))
            .map(|h| (strsim::jaro_winkler(h, &lower), h))
            .filter(|(score, _)| *score >= 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, h)| h.clone());
        ImportError::MissingColumn {
            file: self.file.clone(),
            column: name.to_string(),
            hint: suggestion
                .map(|s| format!(" (is {s:?} a misspelling of it?)"))
                .unwrap_or_default(),
            found: self
                .headers
                .iter()
                .filter(|h| !h.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// A cell of `record`, empty if the column is absent or the row is short.
pub fn cell(record: &ByteRecord, column: Option<usize>) -> &[u8] {
    column.and_then(|c| record.get(c)).unwrap_or(b"")
}

/// A cell as UTF-8 text.
pub fn text_cell<'r>(
    record: &'r ByteRecord,
    column: Option<usize>,
    row: u64,
    name: &'static str,
) -> Result<&'r str, RowProblem> {
    std::str::from_utf8(cell(record, column)).map_err(|_| RowProblem {
        row,
        column: name,
        code: INVALID_CELL.into(),
        detail: "is not UTF-8 text".into(),
    })
}

/// A cell holding a whole number of at least 1.
pub fn quantity_cell(
    record: &ByteRecord,
    column: Option<usize>,
    row: u64,
) -> Result<Option<u64>, RowProblem> {
    let raw = cell(record, column);
    if raw.is_empty() {
        return Ok(None);
    }
    match std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        Some(q) if q >= 1 => Ok(Some(q)),
        _ => Err(RowProblem {
            row,
            column: "quantity",
            code: INVALID_CELL.into(),
            detail: format!(
                "{:?} is not a whole number of at least 1",
                String::from_utf8_lossy(raw)
            ),
        }),
    }
}

/// The default error file of `input`: `orders.csv` → `orders.errors.csv`, beside it.
pub fn default_error_path(input: &Path) -> PathBuf {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "import".into());
    input.with_file_name(format!("{stem}.errors.csv"))
}

/// Reads `input` again and writes each row `judge` finds fault with to `out`: the row's
/// own cells (columns the input had), then its row number, code and detail. Returns the
/// number of rows written.
pub fn write_error_file(
    input: &Path,
    worksheet: Option<&str>,
    out: &Path,
    judge: &mut dyn FnMut(u64, &ByteRecord) -> Verdict,
) -> Result<u64, ImportError> {
    let mut sheet = Sheet::open(input, worksheet)?;
    // An error file imported again and failing again gets fresh error columns.
    let keep: Vec<usize> = sheet
        .headers()
        .iter()
        .enumerate()
        .filter(|(_, h)| !ERROR_COLUMNS.iter().any(|e| e.eq_ignore_ascii_case(h)))
        .map(|(i, _)| i)
        .collect();
    let file = File::create(out).map_err(|e| ImportError::io(out, e))?;
    let mut writer = csv::Writer::from_writer(BufWriter::new(file));
    let write_error = |e: csv::Error| ImportError::Io {
        file: out.display().to_string(),
        message: e.to_string(),
    };
    let mut header = ByteRecord::new();
    for &i in &keep {
        let name = sheet.raw_headers().get(i).unwrap_or(b"");
        header.push_field(name.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(name));
    }
    for name in ERROR_COLUMNS {
        header.push_field(name.as_bytes());
    }
    writer.write_byte_record(&header).map_err(write_error)?;
    let mut record = ByteRecord::new();
    let mut out_record = ByteRecord::new();
    let mut written = 0;
    while let Some(row) = sheet.next_row(&mut record)? {
        let Some((code, detail)) = judge(row, &record) else {
            continue;
        };
        out_record.clear();
        for &i in &keep {
            out_record.push_field(record.get(i).unwrap_or(b""));
        }
        out_record.push_field(row.to_string().as_bytes());
        out_record.push_field(code.as_bytes());
        out_record.push_field(detail.as_bytes());
        writer.write_byte_record(&out_record).map_err(write_error)?;
        written += 1;
    }
    writer.flush().map_err(|e| ImportError::io(out, e))?;
    Ok(written)
}
