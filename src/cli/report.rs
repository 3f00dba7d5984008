//! `serialgate report po|serial|reconcile`: the USN report of a PO (CSV or XLSX), one
//! serial's record with its history, and a PO's reconciliation, from a data directory or a
//! running server.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use rust_xlsxwriter::{Format, Workbook};
use serialgate::reconcile;

use super::TargetArgs;

/// Rows an XLSX worksheet holds (Excel's limit), header included.
const XLSX_ROWS_MAX: usize = 1_048_576;

#[derive(Subcommand)]
pub enum ReportCommand {
    /// The USN report of a PO: one row per serial it ever had, in its current state.
    Po(PoReportArgs),
    /// One serial's record: SKU, PO, line, GRN, state, condition, bin, order and history.
    Serial(SerialArgs),
    /// Per line of a PO: ordered, listed, received, over tolerance, missing, and serial
    /// states.
    Reconcile(PoReportArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    Csv,
    Xlsx,
}

#[derive(Args)]
pub struct PoReportArgs {
    account: String,
    /// The PO's referenceCode.
    reference_code: String,
    /// Output format; XLSX needs --out.
    #[arg(long, value_enum, default_value = "csv")]
    format: OutputFormat,
    /// Output file (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    target: TargetArgs,
}

#[derive(Args)]
pub struct SerialArgs {
    account: String,
    serial: String,
    /// Print the record as the protocol's JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: TargetArgs,
}

pub fn run(command: ReportCommand) -> anyhow::Result<()> {
    match command {
        ReportCommand::Po(args) => po(args),
        ReportCommand::Serial(args) => serial(args),
        ReportCommand::Reconcile(args) => reconciliation(args),
    }
}

fn po(args: PoReportArgs) -> anyhow::Result<()> {
    let mut target = args.target.open()?;
    let csv = target.po_report(&args.account, &args.reference_code)?;
    match args.format {
        OutputFormat::Csv => output(args.out.as_ref(), &csv),
        OutputFormat::Xlsx => {
            let rows: Vec<Vec<String>> = csv::Reader::from_reader(csv.as_slice())
                .into_records()
                .map(|r| r.map(|r| r.iter().map(str::to_string).collect()))
                .collect::<Result<_, _>>()
                .context("reading the report")?;
            let header: Vec<&str> = serialgate::engine::REPORT_HEADER.to_vec();
            xlsx(args.out.as_ref(), "USN report", &header, &rows, None)
        }
    }
}

fn reconciliation(args: PoReportArgs) -> anyhow::Result<()> {
    let mut target = args.target.open()?;
    let view = target.po_view(&args.account, &args.reference_code)?;
    let report = target.po_report(&args.account, &args.reference_code)?;
    let lines = reconcile::reconcile(&view, &report).context("reading the report")?;
    let rows: Vec<Vec<String>> = lines.iter().map(|l| l.cells().to_vec()).collect();
    match args.format {
        OutputFormat::Csv => {
            let mut out = csv::Writer::from_writer(Vec::new());
            out.write_record(reconcile::HEADER)?;
            for row in &rows {
                out.write_record(row)?;
            }
            output(args.out.as_ref(), &out.into_inner()?)
        }
        OutputFormat::Xlsx => xlsx(
            args.out.as_ref(),
            "Reconciliation",
            &reconcile::HEADER,
            &rows,
            Some(2),
        ),
    }
}

fn serial(args: SerialArgs) -> anyhow::Result<()> {
    let mut target = args.target.open()?;
    let Some(json) = target.serial_json(&args.account, args.serial.as_bytes())? else {
        bail!(
            "serial {:?} is unknown to account {:?}",
            args.serial,
            args.account
        );
    };
    if args.json {
        println!("{json}");
        return Ok(());
    }
    let record: serde_json::Value = serde_json::from_str(&json)?;
    let text = |key: &str| match &record[key] {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for (label, key) in [
        ("serial", "serial"),
        ("sku", "sku"),
        ("PO", "referenceCode"),
        ("line", "lineItemNumber"),
        ("GRN", "grn"),
        ("state", "state"),
        ("condition", "condition"),
        ("bin", "bin"),
        ("QC reason", "qcReason"),
        ("order", "order"),
        ("updated", "updatedAt"),
    ] {
        println!("{label:<10} {}", text(key));
    }
    println!("history");
    for event in record["history"].as_array().into_iter().flatten() {
        let mut line = format!(
            "  {}  {}",
            event["at"].as_str().unwrap_or(""),
            event["event"].as_str().unwrap_or("")
        );
        for key in ["referenceCode", "grn", "order", "condition"] {
            if let Some(value) = event[key].as_str() {
                line.push_str(&format!(" {key}={value}"));
            }
        }
        println!("{line}");
    }
    Ok(())
}

fn output(out: Option<&PathBuf>, bytes: &[u8]) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
        }
        None => Ok(std::io::stdout().write_all(bytes)?),
    }
}

/// One worksheet: a bold, frozen header row, then `rows`, as text (serials and line
/// numbers that look numeric stay as typed) except columns from `numbers_from` on.
fn xlsx(
    out: Option<&PathBuf>,
    name: &str,
    header: &[&str],
    rows: &[Vec<String>],
    numbers_from: Option<usize>,
) -> anyhow::Result<()> {
    let Some(path) = out else {
        bail!("XLSX output needs --out FILE");
    };
    if rows.len() + 1 > XLSX_ROWS_MAX {
        bail!(
            "{} rows do not fit an XLSX worksheet ({XLSX_ROWS_MAX} rows at most); use --format csv",
            rows.len()
        );
    }
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name(name)?;
    let bold = Format::new().set_bold();
    for (c, h) in header.iter().enumerate() {
        sheet.write_string_with_format(0, c as u16, *h, &bold)?;
        sheet.set_column_width(c as u16, (h.len() + 4).max(12) as f64)?;
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, value) in row.iter().enumerate() {
            let (r, c) = (r as u32 + 1, c as u16);
            match value.parse::<u64>() {
                Ok(n) if numbers_from.is_some_and(|from| usize::from(c) >= from) => {
                    sheet.write_number(r, c, n as f64)?
                }
                _ => sheet.write_string(r, c, value)?,
            };
        }
    }
    sheet.set_freeze_panes(1, 0)?;
    book.save(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xlsx_past_excels_row_limit_is_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.xlsx");
        let header = ["serial"];
        let fits = vec![vec!["x".to_string()]; XLSX_ROWS_MAX - 1];
        let over = vec![vec!["x".to_string()]; XLSX_ROWS_MAX];
        let err = xlsx(Some(&path), "r", &header, &over, None).unwrap_err();
        assert!(err.to_string().contains("use --format csv"), "{err}");
        assert!(!path.exists());
        xlsx(Some(&path), "r", &header, &fits[..10], None).unwrap();
        assert!(path.exists());
        drop(fits);
    }
}
