//! Rows out of a sheet file: CSV streamed record by record, or the first worksheet (or a
//! named one) of an Excel or ODS workbook. Every row comes out as a `csv::ByteRecord` with
//! its row number as a spreadsheet shows it (the header is row 1), so both kinds feed the
//! same importer.
//!
//! Values are never trimmed or rewritten: a serial with spaces reaches validation as it is
//! and is reported there. Header names are matched case-insensitively, ignoring
//! surrounding spaces and a UTF-8 byte-order mark.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
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

/// CSV bytes: the whole file, or one part of it.
type CsvInput = BufReader<Box<dyn Read + Send>>;

enum Source {
    Csv(csv::Reader<CsvInput>),
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
        let mut reader = csv_reader(Box::new(file), true);
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

    /// Splits a CSV's data rows into `parts` sheets over consecutive byte ranges, cut at
    /// line ends, to be read in parallel. A part numbers its rows from its own start, so
    /// problems are reported from a read of the whole sheet. `None` when that is not safe or not worth it: a
    /// workbook, a small file, or a file with any `"` (a quoted cell may hold a line end,
    /// so a cut could fall inside it). Finding the cuts is one scan of the file.
    pub fn split(&self, parts: usize) -> Result<Option<Vec<Sheet>>, ImportError> {
        let Source::Csv(reader) = &self.source else {
            return Ok(None);
        };
        let start = reader.position().byte();
        let len = std::fs::metadata(&self.path)
            .map_err(|e| ImportError::io(&self.path, e))?
            .len();
        if parts < 2 || len.saturating_sub(start) < SPLIT_BYTES_MIN {
            return Ok(None);
        }
        let Some(cuts) = find_cuts(&self.path, start, len, parts)? else {
            return Ok(None);
        };
        let mut sheets = Vec::with_capacity(cuts.len());
        for window in cuts.windows(2) {
            let (from, to) = (window[0], window[1]);
            let mut file = File::open(&self.path).map_err(|e| ImportError::io(&self.path, e))?;
            file.seek(SeekFrom::Start(from))
                .map_err(|e| ImportError::io(&self.path, e))?;
            sheets.push(Sheet {
                path: self.path.clone(),
                source: Source::Csv(csv_reader(Box::new(file.take(to - from)), false)),
                headers: self.headers.clone(),
                raw_headers: self.raw_headers.clone(),
            });
        }
        Ok(Some(sheets))
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
                    // Records, not lines: a quoted cell spanning lines is one row, as in a
                    // spreadsheet (csv's line count is off after CRLF and blank lines).
                    // The header is record 0, row 1; blank lines are skipped, uncounted.
                    record.position().map_or(0, |p| p.record()) + 1
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

/// Data below this size is read in one piece.
const SPLIT_BYTES_MIN: u64 = 8 << 20;

fn csv_reader(input: Box<dyn Read + Send>, has_headers: bool) -> csv::Reader<CsvInput> {
    csv::ReaderBuilder::new()
        .has_headers(has_headers)
        // Rows may be short (trailing empty cells dropped by some tools) or carry extra
        // cells; columns are looked up by name, and a missing cell reads as empty.
        .flexible(true)
        .from_reader(BufReader::with_capacity(1 << 20, input))
}

/// Byte offsets where each part starts, then `len`; `None` if the data holds a `"` or
/// would not split. A part starts just after the first line end at or past each even
/// share of the data; without quotes a line end always ends a record.
fn find_cuts(
    path: &Path,
    start: u64,
    len: u64,
    parts: usize,
) -> Result<Option<Vec<u64>>, ImportError> {
    let io = |e| ImportError::io(path, e);
    let mut file = File::open(path).map_err(io)?;
    let share = (len - start) / parts as u64;
    let mut cuts = vec![start];
    let mut offset = 0u64;
    let mut block = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut block).map_err(io)?;
        if n == 0 {
            break;
        }
        let bytes = &block[..n];
        let end = offset + n as u64;
        let data_from = start.saturating_sub(offset).min(n as u64) as usize;
        if bytes[data_from..].contains(&b'"') {
            return Ok(None);
        }
        // Cut k (k ≥ 1) is sought from the k-th share's start, after the previous cut.
        while cuts.len() < parts {
            let last = cuts[cuts.len() - 1];
            let target = (start + share * cuts.len() as u64).max(last);
            if target >= end {
                break;
            }
            let from = target.saturating_sub(offset) as usize;
            let Some(i) = bytes[from..].iter().position(|&b| b == b'\n') else {
                break; // this line goes on into the next block
            };
            cuts.push(offset + (from + i + 1) as u64);
        }
        offset = end;
    }
    cuts.retain(|&c| c < len);
    cuts.dedup();
    if cuts.len() < 2 {
        return Ok(None);
    }
    cuts.push(len);
    Ok(Some(cuts))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row with its number, read in one piece.
    fn rows_of(sheet: &mut Sheet) -> Vec<(u64, Vec<u8>)> {
        let mut record = ByteRecord::new();
        let mut out = Vec::new();
        while let Some(row) = sheet.next_row(&mut record).unwrap() {
            out.push((row, record.as_slice().to_vec()));
        }
        out
    }

    fn big_csv(dir: &Path, quoted_row: Option<usize>) -> PathBuf {
        let path = dir.join("big.csv");
        let mut text = String::from("sku,serial\r\n");
        for i in 0..600_000 {
            if Some(i) == quoted_row {
                text.push_str("S1,\"Q\nUOTED\"\r\n");
            } else {
                text.push_str(&format!("S{},SERIAL-{i:09}\r\n", i % 7));
            }
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn split_parts_hold_every_row_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = big_csv(dir.path(), None);
        let whole = rows_of(&mut Sheet::open(&path, None).unwrap());
        // The header is row 1 (CRLF line ends do not shift the count).
        assert_eq!(whole[0].0, 2);
        assert_eq!(whole.last().unwrap().0, 600_001);
        for parts in [2, 3, 7] {
            let sheet = Sheet::open(&path, None).unwrap();
            let split = sheet
                .split(parts)
                .unwrap()
                .expect("a big unquoted CSV splits");
            assert_eq!(split.len(), parts);
            let mut joined = Vec::new();
            for mut part in split {
                assert_eq!(part.headers(), sheet.headers());
                joined.extend(rows_of(&mut part).into_iter().map(|(_, r)| r));
            }
            let whole: Vec<Vec<u8>> = whole.iter().map(|(_, r)| r.clone()).collect();
            assert_eq!(joined, whole, "{parts} parts");
        }
    }

    #[test]
    fn quoted_or_small_files_are_not_split() {
        let dir = tempfile::tempdir().unwrap();
        let path = big_csv(dir.path(), Some(450_000));
        let sheet = Sheet::open(&path, None).unwrap();
        assert!(sheet.split(2).unwrap().is_none());
        // The quoted cell's line end is part of the cell, not a new row.
        let rows = rows_of(&mut Sheet::open(&path, None).unwrap());
        assert_eq!(rows.len(), 600_000);
        assert_eq!(rows.last().map(|r| r.0), Some(600_001), "rows are records");
        let small = dir.path().join("small.csv");
        std::fs::write(&small, "sku,serial\nS1,A\n").unwrap();
        assert!(Sheet::open(&small, None)
            .unwrap()
            .split(2)
            .unwrap()
            .is_none());
    }
}
