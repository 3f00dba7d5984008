//! PDF label sheets: pages of A4 or Letter cut into a [`Grid`] of equal cells, one label
//! per cell, filled row by row from the top-left, as many pages as the labels need.
//!
//! Page geometry: a blank `margin_mm` on every side of the page and `gap_mm` between
//! cells, so a cell is `(page width - 2 margin - (columns - 1) gap) / columns` wide and
//! likewise tall. Inside a cell, [`CELL_PADDING_MM`] on every side, then top to bottom:
//! the Code 128 bars (quiet zones of [`QUIET_ZONE_MODULES`] modules inside the padding),
//! the serial, the SKU. The block is centred in the cell; bars are at most
//! [`BAR_HEIGHT_MM_MAX`] tall and must be at least [`BAR_HEIGHT_MM_MIN`].
//!
//! The module width is the cell's usable width divided by the symbol's modules plus both
//! quiet zones, capped at [`MODULE_MM_MAX`]; below [`MODULE_MM_MIN`] the serial is refused
//! with the largest column count that would fit it. Bars are filled rectangles, one per
//! run of dark modules; text is Helvetica (a base-14 font, not embedded) with
//! WinAnsiEncoding. The serial's text shrinks below 9 pt to stay within the cell; the SKU
//! shrinks to 5 pt and is then cut short with `...`. The output is deterministic: the same
//! labels and options give the same bytes.

use std::str::FromStr;

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};

use super::{check_labels, code128, Grid, Label, LabelError};
use super::{MODULE_MM_MAX, MODULE_MM_MIN, QUIET_ZONE_MODULES};

/// Blank space inside each cell, on every side, in millimetres.
pub const CELL_PADDING_MM: f32 = 1.5;
/// Shortest bars drawn (a quarter inch, the usual floor for hand scanners).
pub const BAR_HEIGHT_MM_MIN: f32 = 6.35;
/// Tallest bars drawn; a bigger cell gets white space, not longer bars.
pub const BAR_HEIGHT_MM_MAX: f32 = 18.0;
/// Page margin and cell gap limits, in millimetres.
pub const MARGIN_MM_MAX: f32 = 50.0;
pub const GAP_MM_MAX: f32 = 20.0;

const SERIAL_PT: f32 = 9.0;
const SKU_PT: f32 = 7.0;
const SKU_PT_MIN: f32 = 5.0;
/// Space between the bars and the serial's text line, and between the two text lines.
const BARS_TEXT_GAP_MM: f32 = 1.0;
const LINE_GAP_MM: f32 = 0.6;
/// Helvetica's ascender and descender, in thousandths of the font size.
const ASCENT: f32 = 0.718;
const DESCENT: f32 = 0.207;
const PT_PER_MM: f32 = 72.0 / 25.4;
const MM_PER_PT: f32 = 25.4 / 72.0;

/// Paper size of the sheet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PageSize {
    /// 210 x 297 mm.
    #[default]
    A4,
    /// 8.5 x 11 in (215.9 x 279.4 mm).
    Letter,
}

impl PageSize {
    /// Width and height in millimetres.
    pub fn size_mm(&self) -> (f32, f32) {
        match self {
            PageSize::A4 => (210.0, 297.0),
            PageSize::Letter => (215.9, 279.4),
        }
    }
}

impl FromStr for PageSize {
    type Err = LabelError;

    /// `a4` or `letter` (case-insensitive).
    fn from_str(text: &str) -> Result<Self, LabelError> {
        match text.to_ascii_lowercase().as_str() {
            "a4" => Ok(PageSize::A4),
            "letter" => Ok(PageSize::Letter),
            _ => Err(LabelError::InvalidOptions(format!(
                "unknown page size {text:?}: expected a4 or letter"
            ))),
        }
    }
}

/// The sheet: paper, grid, page margin and the gap between cells.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PdfOptions {
    pub page: PageSize,
    pub grid: Grid,
    /// Blank border on every side of the page, 0 to [`MARGIN_MM_MAX`].
    pub margin_mm: f32,
    /// Space between neighbouring cells, both ways, 0 to [`GAP_MM_MAX`].
    pub gap_mm: f32,
}

impl Default for PdfOptions {
    /// A4, 3x8, 10 mm margin, 2 mm gap: 62.0 x 32.9 mm cells.
    fn default() -> Self {
        PdfOptions {
            page: PageSize::A4,
            grid: Grid::default(),
            margin_mm: 10.0,
            gap_mm: 2.0,
        }
    }
}

impl PdfOptions {
    /// Width and height of one label cell in millimetres.
    pub fn cell_mm(&self) -> (f32, f32) {
        self.cell_mm_with_columns(self.grid.columns)
    }

    fn cell_mm_with_columns(&self, columns: u32) -> (f32, f32) {
        let (page_w, page_h) = self.page.size_mm();
        let columns = columns.max(1) as f32;
        let rows = self.grid.rows.max(1) as f32;
        (
            (page_w - 2.0 * self.margin_mm - (columns - 1.0) * self.gap_mm) / columns,
            (page_h - 2.0 * self.margin_mm - (rows - 1.0) * self.gap_mm) / rows,
        )
    }

    /// Widest module the cell allows a symbol of `modules` modules (before the cap).
    fn module_mm(&self, columns: u32, modules: u32) -> f32 {
        let usable = self.cell_mm_with_columns(columns).0 - 2.0 * CELL_PADDING_MM;
        usable / (modules + 2 * QUIET_ZONE_MODULES) as f32
    }

    fn check(&self) -> Result<(), LabelError> {
        self.grid.check()?;
        let bad = LabelError::InvalidOptions;
        if !(0.0..=MARGIN_MM_MAX).contains(&self.margin_mm) {
            return Err(bad(format!(
                "margin {} mm: expected 0 to {MARGIN_MM_MAX}",
                self.margin_mm
            )));
        }
        if !(0.0..=GAP_MM_MAX).contains(&self.gap_mm) {
            return Err(bad(format!(
                "gap {} mm: expected 0 to {GAP_MM_MAX}",
                self.gap_mm
            )));
        }
        let (cell_w, cell_h) = self.cell_mm();
        let needed_h = 2.0 * CELL_PADDING_MM + BAR_HEIGHT_MM_MIN + text_block_mm();
        if cell_h < needed_h || cell_w <= 2.0 * CELL_PADDING_MM {
            return Err(LabelError::LabelTooSmall(format!(
                "grid {} on {:?} with {} mm margins and {} mm gaps gives {cell_w:.1} x \
                 {cell_h:.1} mm cells; a label needs at least {needed_h:.1} mm of height \
                 (bars of {BAR_HEIGHT_MM_MIN} mm, the serial and the SKU); use fewer rows \
                 or smaller margins",
                self.grid, self.page, self.margin_mm, self.gap_mm
            )));
        }
        Ok(())
    }
}

/// Height under the bars taken by the two text lines and their gaps.
fn text_block_mm() -> f32 {
    BARS_TEXT_GAP_MM
        + SERIAL_PT * (ASCENT + DESCENT) * MM_PER_PT
        + LINE_GAP_MM
        + SKU_PT * (ASCENT + DESCENT) * MM_PER_PT
}

/// A PDF of label sheets, `grid.columns * grid.rows` labels a page, in order, row by row.
/// Every label is checked and encoded before anything is written: a serial too long for
/// the cell fails the call with [`LabelError::SerialTooLong`].
pub fn pdf(labels: &[Label], options: &PdfOptions) -> Result<Vec<u8>, LabelError> {
    check_labels(labels)?;
    options.check()?;
    let mut symbols = Vec::with_capacity(labels.len());
    for label in labels {
        let symbol = code128::encode(&label.serial)?;
        let modules = symbol.modules.len() as u32;
        let module_mm = options.module_mm(options.grid.columns, modules);
        if module_mm < MODULE_MM_MIN {
            return Err(too_long(label, modules, module_mm, options));
        }
        symbols.push((symbol.modules, module_mm.min(MODULE_MM_MAX)));
    }

    let catalog_id = Ref::new(1);
    let tree_id = Ref::new(2);
    let font_id = Ref::new(3);
    let font_name = Name(b"F1");
    let per_page = options.grid.per_page();
    let pages = labels.len().div_ceil(per_page);
    let page_ids: Vec<Ref> = (0..pages).map(|p| Ref::new(4 + 2 * p as i32)).collect();
    let (page_w, page_h) = options.page.size_mm();
    let (cell_w, cell_h) = options.cell_mm();

    let mut pdf = Pdf::new();
    pdf.catalog(catalog_id).pages(tree_id);
    pdf.pages(tree_id)
        .kids(page_ids.iter().copied())
        .count(pages as i32);
    pdf.type1_font(font_id)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));

    for (page_index, page_id) in page_ids.iter().enumerate() {
        let content_id = Ref::new(page_id.get() + 1);
        let mut page = pdf.page(*page_id);
        page.media_box(Rect::new(0.0, 0.0, page_w * PT_PER_MM, page_h * PT_PER_MM))
            .parent(tree_id)
            .contents(content_id);
        page.resources().fonts().pair(font_name, font_id);
        page.finish();

        let mut content = Content::new();
        let first = page_index * per_page;
        let last = (first + per_page).min(labels.len());
        for index in first..last {
            let slot = (index - first) as u32;
            let (column, row) = (slot % options.grid.columns, slot / options.grid.columns);
            let cell = Cell {
                x: options.margin_mm + column as f32 * (cell_w + options.gap_mm),
                top: page_h - options.margin_mm - row as f32 * (cell_h + options.gap_mm),
                width: cell_w,
                height: cell_h,
            };
            let (modules, module_mm) = &symbols[index];
            draw_label(
                &mut content,
                font_name,
                &cell,
                &labels[index],
                modules,
                *module_mm,
            );
        }
        pdf.stream(content_id, &content.finish());
    }
    Ok(pdf.finish())
}

/// A label cell in page millimetres, y measured up from the bottom of the page.
struct Cell {
    x: f32,
    top: f32,
    width: f32,
    height: f32,
}

fn draw_label(
    content: &mut Content,
    font: Name,
    cell: &Cell,
    label: &Label,
    modules: &[u8],
    module_mm: f32,
) {
    let usable_w = cell.width - 2.0 * CELL_PADDING_MM;
    let text_h = text_block_mm();
    let bar_h = (cell.height - 2.0 * CELL_PADDING_MM - text_h).min(BAR_HEIGHT_MM_MAX);
    let block_top = cell.top - (cell.height - bar_h - text_h) / 2.0;
    let bars_bottom = block_top - bar_h;
    let bars_x = cell.x + (cell.width - modules.len() as f32 * module_mm) / 2.0;

    // One rectangle per run of dark modules, all filled at once.
    content.set_fill_gray(0.0);
    let mut i = 0;
    while i < modules.len() {
        if modules[i] == 0 {
            i += 1;
            continue;
        }
        let start = i;
        while i < modules.len() && modules[i] != 0 {
            i += 1;
        }
        content.rect(
            pt(bars_x + start as f32 * module_mm),
            pt(bars_bottom),
            pt((i - start) as f32 * module_mm),
            pt(bar_h),
        );
    }
    content.fill_nonzero();

    let serial_top = bars_bottom - BARS_TEXT_GAP_MM;
    let serial_size = fit_size(label.serial.as_bytes(), SERIAL_PT, usable_w);
    let serial_baseline = serial_top - SERIAL_PT * ASCENT * MM_PER_PT;
    show_centered(
        content,
        font,
        cell,
        serial_baseline,
        serial_size,
        label.serial.as_bytes(),
    );

    if !label.sku.is_empty() {
        let sku_top = serial_top - SERIAL_PT * (ASCENT + DESCENT) * MM_PER_PT - LINE_GAP_MM;
        let sku_baseline = sku_top - SKU_PT * ASCENT * MM_PER_PT;
        let (text, size) = fit_sku(label.sku.as_bytes(), usable_w);
        show_centered(content, font, cell, sku_baseline, size, &text);
    }
}

fn show_centered(
    content: &mut Content,
    font: Name,
    cell: &Cell,
    baseline: f32,
    size: f32,
    text: &[u8],
) {
    let width = text_width_mm(text, size);
    content
        .begin_text()
        .set_font(font, size)
        .next_line(pt(cell.x + (cell.width - width) / 2.0), pt(baseline))
        .show(Str(text))
        .end_text();
}

/// The nominal size, or smaller so the text fits `width_mm`.
fn fit_size(text: &[u8], nominal: f32, width_mm: f32) -> f32 {
    let at_nominal = text_width_mm(text, nominal);
    if at_nominal <= width_mm {
        nominal
    } else {
        nominal * width_mm / at_nominal
    }
}

/// The SKU at 7 pt, shrunk to 5 pt if need be, then cut short with `...` to fit.
fn fit_sku(sku: &[u8], width_mm: f32) -> (Vec<u8>, f32) {
    let size = fit_size(sku, SKU_PT, width_mm).max(SKU_PT_MIN);
    if text_width_mm(sku, size) <= width_mm {
        return (sku.to_vec(), size);
    }
    let mut keep = sku.len();
    loop {
        let mut text = sku[..keep].to_vec();
        text.extend_from_slice(b"...");
        if keep == 0 || text_width_mm(&text, size) <= width_mm {
            return (text, size);
        }
        keep -= 1;
    }
}

fn text_width_mm(text: &[u8], size_pt: f32) -> f32 {
    let units: u32 = text.iter().map(|&b| helvetica_width(b)).sum();
    units as f32 / 1000.0 * size_pt * MM_PER_PT
}

/// Helvetica advance widths (AFM, thousandths of an em) for WinAnsiEncoding 0x20..=0x7E.
fn helvetica_width(byte: u8) -> u32 {
    const WIDTHS: [u16; 95] = [
        278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278,
        278, // 0x20
        556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584,
        556, // 0x30
        1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722,
        778, // 0x40
        667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469,
        556, // 0x50
        333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556,
        556, // 0x60
        556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, // 0x70
    ];
    match byte {
        0x20..=0x7E => u32::from(WIDTHS[usize::from(byte - 0x20)]),
        _ => 556,
    }
}

fn too_long(label: &Label, modules: u32, module_mm: f32, options: &PdfOptions) -> LabelError {
    let (page_w, _) = options.page.size_mm();
    let fits = (1..options.grid.columns)
        .rev()
        .find(|&columns| options.module_mm(columns, modules) >= MODULE_MM_MIN);
    let hint = match fits {
        Some(columns) => format!(
            "use a grid with at most {columns} column{} (e.g. {columns}x{})",
            if columns == 1 { "" } else { "s" },
            options.grid.rows
        ),
        None => format!(
            "it does not fit even one column on a {page_w} mm wide {:?} page; print it as \
             a ZPL Data Matrix label instead",
            options.page
        ),
    };
    LabelError::SerialTooLong {
        serial: label.serial.clone(),
        modules,
        label_width_mm: options.cell_mm().0,
        module_mm,
        hint,
    }
}

fn pt(mm: f32) -> f32 {
    mm * PT_PER_MM
}
