//! `serialgate labels`: barcode labels for a selection of serials — a PO's (optionally one
//! GRN's, e.g. the serials a type 4 GRN generated), the rows of a sheet, or serials
//! generated on the spot (type 3 for a PO line, type 5 into the pool) — as ZPL for Zebra
//! printers or a PDF sheet for office printers.

use std::path::PathBuf;

use anyhow::{bail, ensure, Context};
use clap::{Args, ValueEnum};
use csv::ByteRecord;
use serialgate::engine::REPORT_HEADER;
use serialgate::import::{self, Columns, Sheet};
use serialgate::labels::{self, Grid, Label, PageSize, PdfOptions, Symbol, ZplOptions};

use super::TargetArgs;

#[derive(Clone, Copy, ValueEnum)]
enum LabelFormat {
    Zpl,
    Pdf,
}

#[derive(Args)]
pub struct LabelsArgs {
    account: String,
    /// Output file; its extension (.zpl or .pdf) picks the format unless --format says.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum)]
    format: Option<LabelFormat>,
    /// Serials of this PO (every serial its USN report lists).
    #[arg(long, conflicts_with = "file")]
    po: Option<String>,
    /// With --po: only the serials this GRN received.
    #[arg(long, requires = "po", conflicts_with = "generate")]
    grn: Option<String>,
    /// Serials of a sheet (CSV, Excel, ODS) with a serial column and optionally sku.
    #[arg(long, conflicts_with = "generate")]
    file: Option<PathBuf>,
    /// Generate this many serials first (type 3: with --po and --sku; type 5: into the
    /// pool, optionally bound to --sku), then label them.
    #[arg(long)]
    generate: Option<u64>,
    /// SKU for --generate.
    #[arg(long, requires = "generate")]
    sku: Option<String>,
    /// PDF: paper size, a4 or letter.
    #[arg(long, default_value = "a4")]
    page: PageSize,
    /// PDF: label grid, <columns>x<rows>.
    #[arg(long, default_value = "3x8")]
    grid: Grid,
    /// ZPL: the barcode the printer draws, code128 or datamatrix.
    #[arg(long, default_value = "code128")]
    symbol: Symbol,
    /// ZPL: printer resolution in dots per inch (152, 203, 300 or 600).
    #[arg(long, default_value_t = 203)]
    dpi: u32,
    #[command(flatten)]
    target: TargetArgs,
}

pub fn run(args: LabelsArgs) -> anyhow::Result<()> {
    let format = match (args.format, args.out.extension().and_then(|e| e.to_str())) {
        (Some(format), _) => format,
        (None, Some(e)) if e.eq_ignore_ascii_case("zpl") => LabelFormat::Zpl,
        (None, Some(e)) if e.eq_ignore_ascii_case("pdf") => LabelFormat::Pdf,
        _ => bail!("say --format zpl|pdf, or name the output .zpl or .pdf"),
    };
    let labels = select(&args)?;
    ensure!(!labels.is_empty(), "the selection holds no serials");
    let bytes = match format {
        LabelFormat::Zpl => {
            // A 2 x 1 inch label at the printer's resolution.
            let options = ZplOptions {
                symbol: args.symbol,
                width_dots: 2 * args.dpi,
                height_dots: args.dpi,
                dpi: args.dpi,
            };
            // ZPL is a stream of label formats: a long run is rendered in pieces.
            let mut text = String::new();
            for chunk in labels.chunks(labels::LABELS_PER_DOCUMENT_MAX) {
                text.push_str(&labels::zpl(chunk, &options)?);
            }
            text.into_bytes()
        }
        LabelFormat::Pdf => labels::pdf(
            &labels,
            &PdfOptions {
                page: args.page,
                grid: args.grid,
                ..PdfOptions::default()
            },
        )?,
    };
    std::fs::write(&args.out, bytes).with_context(|| format!("writing {}", args.out.display()))?;
    println!("{} labels written to {}", labels.len(), args.out.display());
    Ok(())
}

fn select(args: &LabelsArgs) -> anyhow::Result<Vec<Label>> {
    if let Some(file) = &args.file {
        return from_sheet(file);
    }
    let mut target = args.target.open()?;
    if let Some(count) = args.generate {
        let reply = target.generate(
            &args.account,
            args.po.as_deref(),
            args.sku.as_deref(),
            count,
        )?;
        let sku = reply.sku.unwrap_or_default();
        return Ok(reply
            .serials
            .iter()
            .map(|s| Label::new(String::from_utf8_lossy(s), sku.clone()))
            .collect());
    }
    let Some(po) = &args.po else {
        bail!("select serials with --po REF [--grn ID], --file SHEET or --generate N");
    };
    let report = target.po_report(&args.account, po)?;
    let column = |name: &str| REPORT_HEADER.iter().position(|h| *h == name);
    let (serial, sku, grn) = (column("serial"), column("sku"), column("grn"));
    let mut labels = Vec::new();
    for record in csv::Reader::from_reader(report.as_slice()).into_byte_records() {
        let record = record?;
        let cell =
            |c: Option<usize>| String::from_utf8_lossy(import::cell(&record, c)).into_owned();
        if args.grn.as_ref().is_some_and(|g| *g != cell(grn)) {
            continue;
        }
        labels.push(Label::new(cell(serial), cell(sku)));
    }
    Ok(labels)
}

fn from_sheet(path: &std::path::Path) -> anyhow::Result<Vec<Label>> {
    let mut sheet = Sheet::open(path, None)?;
    let columns = Columns::new(&sheet);
    let serial = columns.require("serial", &["serial", "sku"])?;
    let sku = columns.find("sku");
    let mut labels = Vec::new();
    let mut record = ByteRecord::new();
    while let Some(row) = sheet.next_row(&mut record)? {
        let text =
            |c: Option<usize>| std::str::from_utf8(import::cell(&record, c)).map(str::to_string);
        let (Ok(serial), Ok(sku)) = (text(Some(serial)), text(sku)) else {
            bail!("{}: row {row} is not UTF-8 text", sheet.file_name());
        };
        if !serial.is_empty() {
            labels.push(Label::new(serial, sku));
        }
    }
    Ok(labels)
}
