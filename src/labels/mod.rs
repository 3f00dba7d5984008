//! Barcode labels for serials: ZPL for Zebra printers and PDF label sheets.
//!
//! Two outputs from one list of [`Label`]s (a serial and its SKU):
//!
//! - [`zpl()`]: one `^XA … ^XZ` format per label for a thermal printer, which renders the
//!   barcode itself: Code 128 (`^BC`) or Data Matrix (`^BX`), with the serial and the SKU as
//!   text (`^A0`). Sized by [`ZplOptions`] (label width and height in dots, printer dpi).
//! - [`pdf()`]: label sheets for an office printer, A4 or Letter, cut into a
//!   [`Grid`] of cells (default 3x8), filled row by row over as many pages as needed. Each
//!   cell holds a Code 128 barcode drawn as filled rectangles, the serial under it and the
//!   SKU under that, in the base-14 Helvetica font.
//!
//! Both refuse to produce an unscannable barcode: a Code 128 module narrower than
//! [`MODULE_MM_MIN`] is a [`LabelError::SerialTooLong`] naming the serial and what to change,
//! never a label. Serials must be valid serials (`crate::serial::check_syntax`: 1–64 bytes
//! of printable ASCII 0x21–0x7E); SKUs printable ASCII 0x20–0x7E, at most [`SKU_LEN_MAX`]
//! bytes, and may be empty. An empty label list is [`LabelError::NoLabels`] for both
//! formats. The Code 128 symbol is the same in both formats: character set B, switching to
//! set C for runs of digits long enough to shorten the symbol (see `code128`).
//!
//! What does not live here: where serials come from (the engine) and files or command-line
//! flags (the CLI). docs/labels.md has the geometry, the ZPL commands and the escaping.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::serial::{check_syntax, SyntaxError};

mod code128;
mod pdf;
mod zpl;

pub use pdf::{
    pdf, PageSize, PdfOptions, BAR_HEIGHT_MM_MAX, BAR_HEIGHT_MM_MIN, CELL_PADDING_MM, GAP_MM_MAX,
    MARGIN_MM_MAX,
};
pub use zpl::{zpl, Symbol, ZplOptions, ZPL_DOTS_MAX, ZPL_DPI};

/// Narrowest Code 128 module (X dimension) either format prints, in millimetres: 7.5 mil,
/// the usual floor for scanners reading labels from a printer.
pub const MODULE_MM_MIN: f32 = 0.19;
/// Widest Code 128 module printed; a short serial gets a shorter barcode, not fatter bars.
pub const MODULE_MM_MAX: f32 = 0.5;
/// Quiet zone on each side of a Code 128 symbol, in modules (the standard's minimum).
pub const QUIET_ZONE_MODULES: u32 = 10;
/// Longest SKU accepted on a label, in bytes.
pub const SKU_LEN_MAX: usize = 64;
/// Most labels rendered by one call (a PDF of this many labels at 3x8 is about 2,100
/// pages); callers split bigger runs.
pub const LABELS_PER_DOCUMENT_MAX: usize = 50_000;
/// Grid limits: 1..=10 columns, 1..=30 rows.
pub const GRID_COLUMNS_MAX: u32 = 10;
pub const GRID_ROWS_MAX: u32 = 30;

/// One label: the serial (encoded in the barcode and printed under it) and its SKU
/// (printed only; may be empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub serial: String,
    pub sku: String,
}

impl Label {
    pub fn new(serial: impl Into<String>, sku: impl Into<String>) -> Self {
        Label {
            serial: serial.into(),
            sku: sku.into(),
        }
    }
}

/// Rows and columns of label cells on one PDF page. Parses from `"<columns>x<rows>"`,
/// e.g. `"3x8"`; [`Grid::default`] is 3x8 (24 labels a page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    pub columns: u32,
    pub rows: u32,
}

impl Grid {
    /// A grid within the limits: 1..=[`GRID_COLUMNS_MAX`] columns and 1..=[`GRID_ROWS_MAX`]
    /// rows.
    pub fn new(columns: u32, rows: u32) -> Result<Self, LabelError> {
        let grid = Grid { columns, rows };
        grid.check()?;
        Ok(grid)
    }

    /// Labels on one page.
    pub fn per_page(&self) -> usize {
        self.columns as usize * self.rows as usize
    }

    pub(crate) fn check(&self) -> Result<(), LabelError> {
        let bad = |reason: String| LabelError::InvalidGrid {
            grid: self.to_string(),
            reason,
        };
        if !(1..=GRID_COLUMNS_MAX).contains(&self.columns) {
            return Err(bad(format!("columns must be 1 to {GRID_COLUMNS_MAX}")));
        }
        if !(1..=GRID_ROWS_MAX).contains(&self.rows) {
            return Err(bad(format!("rows must be 1 to {GRID_ROWS_MAX}")));
        }
        Ok(())
    }
}

impl Default for Grid {
    fn default() -> Self {
        Grid {
            columns: 3,
            rows: 8,
        }
    }
}

impl fmt::Display for Grid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.columns, self.rows)
    }
}

impl FromStr for Grid {
    type Err = LabelError;

    fn from_str(text: &str) -> Result<Self, LabelError> {
        let bad = |reason: &str| LabelError::InvalidGrid {
            grid: text.to_string(),
            reason: reason.to_string(),
        };
        let (columns, rows) = text
            .split_once(['x', 'X'])
            .ok_or_else(|| bad("expected <columns>x<rows>, e.g. 3x8"))?;
        let number = |part: &str, what: &str| {
            part.trim()
                .parse::<u32>()
                .map_err(|_| bad(&format!("{what} {part:?} is not a whole number")))
        };
        let grid = Grid {
            columns: number(columns, "columns")?,
            rows: number(rows, "rows")?,
        };
        grid.check().map_err(|err| match err {
            LabelError::InvalidGrid { reason, .. } => bad(&reason),
            other => other,
        })?;
        Ok(grid)
    }
}

/// Why labels could not be rendered. Nothing is half-written: either every label renders
/// or the call fails.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LabelError {
    #[error("no labels to render")]
    NoLabels,
    #[error("{count} labels in one document, the limit is {LABELS_PER_DOCUMENT_MAX}")]
    TooManyLabels { count: usize },
    #[error("label {index}: serial {serial:?} is not a valid serial: {reason}")]
    InvalidSerial {
        index: usize,
        serial: String,
        reason: SyntaxError,
    },
    #[error("label {index}: SKU {sku:?} {reason}")]
    InvalidSku {
        index: usize,
        sku: String,
        reason: String,
    },
    #[error("grid {grid:?}: {reason}")]
    InvalidGrid { grid: String, reason: String },
    #[error("invalid label options: {0}")]
    InvalidOptions(String),
    /// The serial's Code 128 symbol does not fit the label at [`MODULE_MM_MIN`].
    #[error(
        "serial {serial:?} is too long for a {label_width_mm:.1} mm wide label: its Code 128 \
         symbol is {modules} modules plus quiet zones, which would make each module \
         {module_mm:.3} mm, below the {MODULE_MM_MIN} mm minimum that scanners read; {hint}"
    )]
    SerialTooLong {
        serial: String,
        modules: u32,
        label_width_mm: f32,
        module_mm: f32,
        hint: String,
    },
    /// The label is too small for a barcode of minimum height plus its text.
    #[error("{0}")]
    LabelTooSmall(String),
    /// The Code 128 encoder refused data that validation accepted (a bug, not an input
    /// error).
    #[error("Code 128 encoder refused serial {serial:?}: {reason}")]
    Encoder { serial: String, reason: String },
}

/// Checks every label before anything is rendered, so a bad one fails the whole call.
fn check_labels(labels: &[Label]) -> Result<(), LabelError> {
    if labels.is_empty() {
        return Err(LabelError::NoLabels);
    }
    if labels.len() > LABELS_PER_DOCUMENT_MAX {
        return Err(LabelError::TooManyLabels {
            count: labels.len(),
        });
    }
    for (index, label) in labels.iter().enumerate() {
        check_syntax(label.serial.as_bytes()).map_err(|reason| LabelError::InvalidSerial {
            index,
            serial: label.serial.clone(),
            reason,
        })?;
        let sku_error = |reason: String| LabelError::InvalidSku {
            index,
            sku: label.sku.clone(),
            reason,
        };
        if label.sku.len() > SKU_LEN_MAX {
            return Err(sku_error(format!(
                "is {} bytes, the limit is {SKU_LEN_MAX}",
                label.sku.len()
            )));
        }
        if let Some(position) = label.sku.bytes().position(|b| !(0x20..=0x7E).contains(&b)) {
            return Err(sku_error(format!(
                "has a byte at position {position} that is not printable ASCII (0x20-0x7E)"
            )));
        }
    }
    Ok(())
}
