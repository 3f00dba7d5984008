//! ZPL II for Zebra-compatible thermal printers: one `^XA … ^XZ` format per label. The
//! printer draws the barcode itself (`^BC` Code 128 or `^BX` Data Matrix); this module
//! only chooses sizes and positions in dots and spells the field data safely.
//!
//! Escaping: every field is written `^FH^FD…^FS`, and in the field data `^`, `~` and `_`
//! are written as the hex escapes `_5E`, `_7E`, `_5F`, so no serial or SKU byte can be read
//! as a command prefix (`^`, `~`) or a stray escape (`_`). On top of that, `^BC` data uses
//! Code 128 invocation codes for `>` `^` `~` (see `code128`), and `^BX` data doubles its
//! escape character `_` (set explicitly, since firmware defaults differ).

use std::fmt::Write as _;
use std::str::FromStr;

use super::{
    check_labels, code128, Label, LabelError, MODULE_MM_MAX, MODULE_MM_MIN, QUIET_ZONE_MODULES,
};

/// Which barcode the printer draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Symbol {
    #[default]
    Code128,
    DataMatrix,
}

impl FromStr for Symbol {
    type Err = LabelError;

    /// `code128` or `datamatrix` (case-insensitive).
    fn from_str(text: &str) -> Result<Self, LabelError> {
        match text.to_ascii_lowercase().as_str() {
            "code128" => Ok(Symbol::Code128),
            "datamatrix" => Ok(Symbol::DataMatrix),
            _ => Err(LabelError::InvalidOptions(format!(
                "unknown symbol {text:?}: expected code128 or datamatrix"
            ))),
        }
    }
}

/// Label stock and printer: size in dots at the printer's resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZplOptions {
    pub symbol: Symbol,
    pub width_dots: u32,
    pub height_dots: u32,
    /// Printer resolution, dots per inch: one of [`ZPL_DPI`].
    pub dpi: u32,
}

/// Resolutions of Zebra printheads (6, 8, 12 and 24 dots/mm).
pub const ZPL_DPI: [u32; 4] = [152, 203, 300, 600];
/// Tallest or widest label accepted, in dots (ZPL's own field limit).
pub const ZPL_DOTS_MAX: u32 = 32_000;
/// Shortest Code 128 bars printed, in millimetres.
const BAR_HEIGHT_MM_MIN: f32 = 5.0;
/// Blank border kept on every side of the label, in millimetres.
const EDGE_MM: f32 = 1.0;
/// Text heights: the serial and the SKU (`^A0` font), and the gap between lines.
const SERIAL_TEXT_MM: f32 = 2.8;
const SKU_TEXT_MM: f32 = 2.3;
const LINE_GAP_MM: f32 = 0.8;
/// Space between a Data Matrix symbol and its text.
const DATAMATRIX_TEXT_GAP_MM: f32 = 2.0;
/// Widest Data Matrix module printed.
const DATAMATRIX_MODULE_MM_MAX: f32 = 1.0;
/// Estimated advance of one `^A0` character as a share of its width parameter; used only
/// to narrow long text so it stays on the label.
const A0_ADVANCE: f32 = 0.6;

impl Default for ZplOptions {
    /// A 2 x 1 inch label on a 203 dpi printer, Code 128.
    fn default() -> Self {
        ZplOptions {
            symbol: Symbol::Code128,
            width_dots: 406,
            height_dots: 203,
            dpi: 203,
        }
    }
}

impl ZplOptions {
    fn check(&self) -> Result<(), LabelError> {
        if !ZPL_DPI.contains(&self.dpi) {
            return Err(LabelError::InvalidOptions(format!(
                "dpi {} is not a printhead resolution: expected one of {ZPL_DPI:?}",
                self.dpi
            )));
        }
        for (name, value) in [("width", self.width_dots), ("height", self.height_dots)] {
            if !(1..=ZPL_DOTS_MAX).contains(&value) {
                return Err(LabelError::InvalidOptions(format!(
                    "label {name} {value} dots: expected 1 to {ZPL_DOTS_MAX}"
                )));
            }
        }
        Ok(())
    }

    fn dots(&self, mm: f32) -> f32 {
        mm * self.dpi as f32 / 25.4
    }

    fn mm(&self, dots: u32) -> f32 {
        dots as f32 * 25.4 / self.dpi as f32
    }

    /// Whole dots for a length, at least one.
    fn round_dots(&self, mm: f32) -> u32 {
        (self.dots(mm).round() as u32).max(1)
    }
}

/// One `^XA … ^XZ` format per label, in order, each line ending in `\n`. Errors if any
/// label is invalid or does not fit (see [`LabelError`]); nothing is returned then.
pub fn zpl(labels: &[Label], options: &ZplOptions) -> Result<String, LabelError> {
    check_labels(labels)?;
    options.check()?;
    let mut out = String::with_capacity(labels.len() * 256);
    for label in labels {
        match options.symbol {
            Symbol::Code128 => code128_label(&mut out, label, options)?,
            Symbol::DataMatrix => datamatrix_label(&mut out, label, options)?,
        }
    }
    Ok(out)
}

fn code128_label(out: &mut String, label: &Label, o: &ZplOptions) -> Result<(), LabelError> {
    let symbol = code128::encode(&label.serial)?;
    let modules = symbol.modules.len() as u32;
    let edge = o.round_dots(EDGE_MM);
    let usable = o.width_dots.saturating_sub(2 * edge);
    let span = modules + 2 * QUIET_ZONE_MODULES;
    // ^BY takes 1 to 10 dots per module.
    let module_max = (o.dots(MODULE_MM_MAX).floor() as u32).clamp(1, 10);
    let module_min = o.dots(MODULE_MM_MIN).ceil() as u32;
    let module = (usable / span).min(module_max);
    if module < module_min || module == 0 {
        let needed_dots = span * module_min + 2 * edge;
        return Err(LabelError::SerialTooLong {
            serial: label.serial.clone(),
            modules,
            label_width_mm: o.mm(o.width_dots),
            module_mm: o.mm(usable) / span as f32,
            hint: format!(
                "use a label at least {:.1} mm ({needed_dots} dots) wide, or Data Matrix",
                o.mm(needed_dots)
            ),
        });
    }
    let serial_h = o.round_dots(SERIAL_TEXT_MM);
    let sku_h = o.round_dots(SKU_TEXT_MM);
    let gap = o.round_dots(LINE_GAP_MM);
    let text_block = gap + serial_h + gap + sku_h;
    let bar_h = o.height_dots.saturating_sub(2 * edge + text_block);
    let bar_h_min = o.round_dots(BAR_HEIGHT_MM_MIN);
    if bar_h < bar_h_min {
        return Err(LabelError::LabelTooSmall(format!(
            "a {:.1} mm tall label leaves {:.1} mm for Code 128 bars under the text, \
             the minimum is {BAR_HEIGHT_MM_MIN} mm; use a label at least {:.1} mm tall",
            o.mm(o.height_dots),
            o.mm(bar_h),
            o.mm(2 * edge + text_block + bar_h_min)
        )));
    }
    let bars_x = (o.width_dots - modules * module) / 2;
    let serial_y = edge + bar_h + gap;
    let sku_y = serial_y + serial_h + gap;

    begin(out, o);
    // ^BCo,h,f,g,e,m: normal, bar height, no interpretation line (the text is ours), not
    // above, no UCC check digit, mode N (the data carries explicit start/switch codes).
    let _ = writeln!(
        out,
        "^FO{bars_x},{edge}^BY{module}^BCN,{bar_h},N,N,N,N{}",
        field(&symbol.zpl_data)
    );
    // Text starts under the first bar; long text is narrowed to stay on the label.
    text(out, o, bars_x, serial_y, serial_h, &label.serial);
    if !label.sku.is_empty() {
        text(out, o, bars_x, sku_y, sku_h, &label.sku);
    }
    out.push_str("^XZ\n");
    Ok(())
}

fn datamatrix_label(out: &mut String, label: &Label, o: &ZplOptions) -> Result<(), LabelError> {
    let edge = o.round_dots(EDGE_MM);
    let usable_h = o.height_dots.saturating_sub(2 * edge);
    // The printer picks the symbol size; this is the largest it can pick (ASCII
    // encodation), so the symbol never outgrows the space reserved for it.
    let size = datamatrix_size(&label.serial);
    let module_max = o.round_dots(DATAMATRIX_MODULE_MM_MAX);
    let module_min = o.dots(MODULE_MM_MIN).ceil() as u32;
    let module = (usable_h / size).min(module_max);
    if module < module_min || module == 0 {
        return Err(LabelError::LabelTooSmall(format!(
            "serial {:?} needs a Data Matrix of up to {size}x{size} modules, which does not \
             fit a {:.1} mm tall label at the {MODULE_MM_MIN} mm minimum module; use a label \
             at least {:.1} mm tall",
            label.serial,
            o.mm(o.height_dots),
            o.mm(size * module_min.max(1) + 2 * edge)
        )));
    }
    let text_x = edge + size * module + o.round_dots(DATAMATRIX_TEXT_GAP_MM);
    let serial_h = o.round_dots(SERIAL_TEXT_MM);
    let sku_h = o.round_dots(SKU_TEXT_MM);
    let gap = o.round_dots(LINE_GAP_MM);
    if text_x + edge + serial_h >= o.width_dots {
        return Err(LabelError::LabelTooSmall(format!(
            "a {:.1} mm wide label leaves no room for text beside a {:.1} mm Data Matrix",
            o.mm(o.width_dots),
            o.mm(size * module)
        )));
    }

    begin(out, o);
    // ^BXo,h,s,c,r,f,g: normal, module size, ECC 200, rows and columns chosen by the
    // printer, format 6 (unused by ECC 200), escape character `_`.
    let mut data = String::with_capacity(label.serial.len() + 4);
    for ch in label.serial.chars() {
        if ch == '_' {
            data.push('_');
        }
        data.push(ch);
    }
    let _ = writeln!(
        out,
        "^FO{edge},{edge}^BXN,{module},200,0,0,6,_{}",
        field(&data)
    );
    text(out, o, text_x, edge, serial_h, &label.serial);
    if !label.sku.is_empty() {
        text(out, o, text_x, edge + serial_h + gap, sku_h, &label.sku);
    }
    out.push_str("^XZ\n");
    Ok(())
}

/// The header every format starts with: UTF-8 (`^CI28`), print width, label length, and
/// home at the top-left corner, so nothing depends on what a previous job left set.
fn begin(out: &mut String, o: &ZplOptions) {
    let _ = writeln!(
        out,
        "^XA\n^CI28\n^PW{}\n^LL{}\n^LH0,0",
        o.width_dots, o.height_dots
    );
}

/// A line of `^A0` text at (x, y), its character width narrowed (to a third of its
/// height at most) when the text would run off the label.
fn text(out: &mut String, o: &ZplOptions, x: u32, y: u32, height: u32, value: &str) {
    let width = text_char_width(o, value, height, x);
    let _ = writeln!(out, "^FO{x},{y}^A0N,{height},{width}{}", field(value));
}

fn text_char_width(o: &ZplOptions, value: &str, height: u32, x: u32) -> u32 {
    let room = o.width_dots.saturating_sub(x + o.round_dots(EDGE_MM)) as f32;
    let fit = (room / (value.len().max(1) as f32 * A0_ADVANCE)).floor() as u32;
    fit.clamp((height / 3).max(1), height)
}

/// `^FH^FD<data>^FS` with `^`, `~` and `_` hex-escaped.
fn field(data: &str) -> String {
    let mut out = String::with_capacity(data.len() + 12);
    out.push_str("^FH^FD");
    for ch in data.chars() {
        match ch {
            '^' => out.push_str("_5E"),
            '~' => out.push_str("_7E"),
            '_' => out.push_str("_5F"),
            other => out.push(other),
        }
    }
    out.push_str("^FS");
    out
}

/// Side of the largest square ECC 200 symbol the serial can need: one codeword per
/// character, one per digit pair (ASCII encodation), against the square sizes' data
/// capacities.
fn datamatrix_size(serial: &str) -> u32 {
    const SQUARES: [(u32, usize); 12] = [
        (10, 3),
        (12, 5),
        (14, 8),
        (16, 12),
        (18, 18),
        (20, 22),
        (22, 30),
        (24, 36),
        (26, 44),
        (32, 62),
        (36, 86),
        (40, 114),
    ];
    let bytes = serial.as_bytes();
    let mut codewords = 0;
    let mut i = 0;
    while i < bytes.len() {
        let pair =
            i + 1 < bytes.len() && bytes[i].is_ascii_digit() && bytes[i + 1].is_ascii_digit();
        i += if pair { 2 } else { 1 };
        codewords += 1;
    }
    SQUARES
        .iter()
        .find(|(_, capacity)| *capacity >= codewords)
        .map_or(44, |(size, _)| *size)
}
