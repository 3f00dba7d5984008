//! Rows out of a sheet file: CSV streamed record by record, or the first worksheet (or a
//! named one) of an Excel or ODS workbook. Every row comes out as a `csv::ByteRecord` with
//! its row number as a spreadsheet shows it (the header is row 1), so both kinds feed the
//! same importer.
//!
//! Values are never trimmed or rewritten: a serial with spaces reaches validation as it is
//! and is reported there. Header names are matched case-insensitively, ignoring
//! surrounding spaces and a UTF-8 byte-order mark.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use calamine::{Data, Range, Reader};
use csv::ByteRecord;

use super::ImportError;

/// Extensions read as workbooks; anything else is read as CSV.
const BOM: &[u8] = b"\xEF\xBB\xBF";

const WORKBOOK_EXTENSIONS: [&str; 5] = ["xlsx", "xlsm", "xlsb", "xls", "ods"];

pub struct Sheet {
    path: PathBuf,
    source: Source,
    headers: Vec<String>,
    raw_headers: ByteRecord,
}

enum Source {
    Csv(csv::Reader<BufReader<File>>),
    Workbook {
        range: Range<Data>,
        /// Index into the range's rows of the next data row.
        next: usize,
        /// The sheet row number of the range's first row.
        first_row: u64,
    },
}

impl Sheet {
    /// Opens `path` and reads its header row. `worksheet` picks a workbook's sheet by name
    /// (default: the first).
    pub fn open(path: &Path, worksheet: Option<&str>) -> Result<Self, ImportError> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        if WORKBOOK_EXTENSIONS.contains(&extension.as_str()) {
            Self::open_workbook(path, worksheet)
        } else {
            Self::open_csv(path)
        }
    }

    fn open_csv(path: &Path) -> Result<Self, ImportError> {
        let file = File::open(path).map_err(|e| ImportError::io(path, e))?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            // Rows may be short (trailing empty cells dropped by some tools) or carry extra
            // cells; columns are looked up by name, and a missing cell reads as empty.
            .flexible(true)
            .from_reader(BufReader::with_capacity(1 << 20, file));
        let raw_headers = reader
            .byte_headers()
            .map_err(|e| ImportError::csv(path, e))?
            .clone();
        let headers = raw_headers.iter().map(header_name).collect();
        let sheet = Self {
            path: path.to_path_buf(),
            source: Source::Csv(reader),
            headers,
            raw_headers,
        };
        sheet.check_headers()?;
        Ok(sheet)
    }

    fn open_workbook(path: &Path, worksheet: Option<&str>) -> Result<Self, ImportError> {
        let mut workbook = calamine::open_workbook_auto(path).map_err(|e| ImportError::Sheet {
            file: path.display().to_string(),
            message: e.to_string(),
        })?;
        let range = match worksheet {
            Some(name) => workbook
                .worksheet_range(name)
                .map_err(|e| ImportError::Sheet {
                    file: path.display().to_string(),
                    message: format!("worksheet {name:?}: {e}"),
                })?,
            None => match workbook.worksheet_range_at(0) {
                Some(range) => range.map_err(|e| ImportError::Sheet {
                    file: path.display().to_string(),
                    message: e.to_string(),
                })?,
                None => {
                    return Err(ImportError::Empty {
                        file: path.display().to_string(),
                    })
                }
            },
        };
        let first_row = range.start().map_or(1, |(row, _)| u64::from(row) + 1);
        // Columns keep their sheet position: a range starting at column C has two empty
        // columns before it, which no header can name.
        let raw_headers: ByteRecord = range
            .rows()
            .next()
            .map(|row| row.iter().map(cell_text).collect())
            .unwrap_or_default();
        let headers = raw_headers.iter().map(header_name).collect();
        let sheet = Self {
            path: path.to_path_buf(),
            source: Source::Workbook {
                range,
                next: 1,
                first_row,
            },
            headers,
            raw_headers,
        };
        sheet.check_headers()?;
        Ok(sheet)
    }

    fn check_headers(&self) -> Result<(), ImportError> {
        if self.headers.iter().all(String::is_empty) {
            return Err(ImportError::Empty {
                file: self.file_name(),
            });
        }
        Ok(())
    }

    /// The file as messages name it.
    pub fn file_name(&self) -> String {
        self.path.display().to_string()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Header names, lower-cased, in column order.
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// The header row as the file spells it.
    pub fn raw_headers(&self) -> &ByteRecord {
        &self.raw_headers
    }

    /// Bytes of the file read so far (CSV), for progress; `None` for workbooks.
    pub fn bytes_read(&self) -> Option<u64> {
        match &self.source {
            Source::Csv(reader) => Some(reader.position().byte()),
            Source::Workbook { .. } => None,
        }
    }

    /// Data rows in a workbook (known up front); `None` for CSV.
    pub fn rows_total(&self) -> Option<u64> {
        match &self.source {
            Source::Csv(_) => None,
            Source::Workbook { range, .. } => Some(range.height().saturating_sub(1) as u64),
        }
    }

    /// Reads the next data row into `record` and returns its row number, or `None` at the
    /// end. Blank rows (every cell empty) are skipped.
    pub fn next_row(&mut self, record: &mut ByteRecord) -> Result<Option<u64>, ImportError> {
        loop {
            let number = match &mut self.source {
                Source::Csv(reader) => {
                    if !reader
                        .read_byte_record(record)
                        .map_err(|e| ImportError::csv(&self.path, e))?
                    {
                        return Ok(None);
                    }
                    record.position().map_or(0, |p| p.line())
                }
                Source::Workbook {
                    range,
                    next,
                    first_row,
                } => {
                    if *next >= range.height() {
                        return Ok(None);
                    }
                    record.clear();
                    for column in 0..range.width() {
                        let cell = range.get((*next, column)).unwrap_or(&Data::Empty);
                        record.push_field(cell_text(cell).as_bytes());
                    }
                    *next += 1;
                    *first_row + *next as u64 - 1
                }
            };
            if record.iter().any(|field| !field.is_empty()) {
                return Ok(Some(number));
            }
        }
    }
}

fn header_name(raw: &[u8]) -> String {
    let raw = raw.strip_prefix(BOM).unwrap_or(raw);
    String::from_utf8_lossy(raw).trim().to_ascii_lowercase()
}

/// A cell as text. Whole numbers print without a fraction: a numeric serial or quantity
/// typed into a spreadsheet is stored as a float.
fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        other => other.to_string(),
    }
}
