//! `serialgate import po|grn`: a sheet (CSV, Excel, ODS) into the engine, on a data
//! directory or through a running server. All or nothing: a rejected import writes
//! nothing and leaves an error file of the failing rows beside the input.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::bail;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serialgate::client::ClientError;
use serialgate::import::{self, grn, po, Problems, Sheet};
use serialgate::outcome::{GrnReply, PoImportReply};
use serialgate::GrnMode;

use super::TargetArgs;

#[derive(Subcommand)]
pub enum ImportCommand {
    /// POs from rows of referenceCode, vendorId, lineItemNumber, sku, quantity, serial
    /// (type 1: one serial per row). Every PO of the file is created, or none is.
    Po(ImportArgs),
    /// One GRN from rows of sku, serial, condition, bin, qcReason (or sku, quantity),
    /// committed atomically.
    Grn(GrnArgs),
}

#[derive(Args)]
pub struct ImportArgs {
    /// The account to import into.
    account: String,
    /// The sheet: .csv (any other extension is read as CSV), .xlsx, .xlsm, .xlsb, .xls or
    /// .ods.
    file: PathBuf,
    /// Validate only; write nothing.
    #[arg(long)]
    check: bool,
    /// Worksheet of a workbook to read (default: the first).
    #[arg(long)]
    sheet: Option<String>,
    /// Where the failing rows go (default: beside the input, `NAME.errors.csv`).
    #[arg(long)]
    errors: Option<PathBuf>,
    #[command(flatten)]
    target: TargetArgs,
}

#[derive(Args)]
pub struct GrnArgs {
    #[command(flatten)]
    import: ImportArgs,
    /// GRN id (else the file's grnId column).
    #[arg(long)]
    grn: Option<String>,
    /// The PO's referenceCode (else the file's referenceCode column).
    #[arg(long)]
    po: Option<String>,
    /// Invoice number (else the file's invoiceNumber column, if any).
    #[arg(long)]
    invoice: Option<String>,
}

pub fn run(command: ImportCommand) -> anyhow::Result<()> {
    match command {
        ImportCommand::Po(args) => import_po(args),
        ImportCommand::Grn(args) => import_grn(args),
    }
}

fn import_grn(args: GrnArgs) -> anyhow::Result<()> {
    let a = &args.import;
    let started = Instant::now();
    let mut sheet = Sheet::open(&a.file, a.sheet.as_deref())?;
    let bar = reading_bar(&sheet);
    let options = grn::GrnOptions {
        grn_id: args.grn.clone(),
        reference_code: args.po.clone(),
        invoice_number: args.invoice.clone(),
    };
    // The store opens (or the server connection is made) while the sheet is read.
    let (read, target) = std::thread::scope(|scope| {
        let opening = scope.spawn(|| a.target.open());
        let read = grn::read(&mut sheet, &options, &|bytes, rows| {
            advance(&bar, bytes, rows)
        });
        (read, opening.join())
    });
    let mut read = read?;
    let read_seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let errors_path = a
        .errors
        .clone()
        .unwrap_or_else(|| import::default_error_path(&a.file));
    if !read.problems.is_empty() {
        report_problems(&sheet, &read.problems);
        let mut judge = read.judge(&[]);
        return reject_rows(
            &a.file,
            a.sheet.as_deref(),
            &errors_path,
            &mut judge,
            |_| {},
        );
    }
    eprintln!(
        "{}: {} rows, {} units for GRN {:?} against PO {:?}; validating{}",
        sheet.file_name(),
        read.rows,
        read.units,
        read.payload.grn_id,
        read.payload.reference_code,
        if a.check {
            " (check only)"
        } else {
            " and committing"
        }
    );
    let mut target = target.map_err(|_| anyhow::anyhow!("opening the target panicked"))??;
    let spinner = spinner("validating");
    let mode = if a.check {
        GrnMode::Check
    } else {
        GrnMode::Commit
    };
    let reply = target.receive(&a.account, &read.payload, mode);
    spinner.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    match reply {
        Ok(GrnReply::Committed {
            grn_id,
            units,
            serials,
            replayed,
        }) => {
            println!(
                "GRN {grn_id:?} {}: {units} units from {} rows in {seconds:.2} s ({:.0} rows/s; \
                 reading {read_seconds:.2} s, validating and committing {:.2} s){}",
                if replayed {
                    "was already committed with this content (nothing changed)"
                } else {
                    "committed"
                },
                read.rows,
                read.rows as f64 / seconds,
                seconds - read_seconds,
                if serials.is_empty() {
                    String::new()
                } else {
                    format!("; {} serials generated", serials.len())
                }
            );
            Ok(())
        }
        Ok(GrnReply::Valid { grn_id, units }) => {
            println!(
                "GRN {grn_id:?} check passed: {units} units from {} rows would be received; \
                 nothing was written",
                read.rows
            );
            Ok(())
        }
        Ok(GrnReply::Rejected { errors, .. }) => {
            for e in errors.iter().take(import::PROBLEMS_SHOWN_MAX) {
                eprintln!(
                    "  {} {} {}",
                    e.code,
                    e.serial.as_deref().or(e.sku.as_deref()).unwrap_or(""),
                    e.detail.as_deref().unwrap_or("")
                );
            }
            let count = errors.len();
            let mut judge = read.judge(&errors);
            reject_rows(
                &a.file,
                a.sheet.as_deref(),
                &errors_path,
                &mut judge,
                |rows| eprintln!("GRN rejected: {count} errors on {rows} rows"),
            )
        }
        Err(e) => refused("GRN", e),
    }
}

fn import_po(args: ImportArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut sheet = Sheet::open(&args.file, args.sheet.as_deref())?;
    let bar = reading_bar(&sheet);
    let read = po::read(&mut sheet, &|bytes, rows| advance(&bar, bytes, rows))?;
    bar.finish_and_clear();
    let errors_path = args
        .errors
        .clone()
        .unwrap_or_else(|| import::default_error_path(&args.file));
    if !read.problems.is_empty() {
        report_problems(&sheet, &read.problems);
        let mut judge = read.judge(&[], None);
        return reject_rows(
            &args.file,
            args.sheet.as_deref(),
            &errors_path,
            &mut judge,
            |_| {},
        );
    }
    eprintln!(
        "{}: {} rows, {} POs, {} serials; validating{}",
        sheet.file_name(),
        read.rows,
        read.payloads.len(),
        read.serials,
        if args.check {
            " (check only)"
        } else {
            " and creating"
        }
    );
    let mut target = args.target.open()?;
    let spinner = spinner("validating");
    let reply = target.import_pos(&args.account, &read.payloads, args.check);
    spinner.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    match reply {
        Ok(PoImportReply::Created {
            pos,
            lines,
            expected,
        }) => {
            println!(
                "{pos} POs created ({lines} lines, {expected} serials expected) from {} rows \
                 in {seconds:.2} s",
                read.rows
            );
            Ok(())
        }
        Ok(PoImportReply::Valid {
            pos,
            lines,
            expected,
        }) => {
            println!(
                "check passed: {pos} POs ({lines} lines, {expected} serials expected) would be \
                 created; nothing was written"
            );
            Ok(())
        }
        Ok(PoImportReply::Rejected { pos }) => {
            for (reference, e) in po::errors_of(&pos).take(import::PROBLEMS_SHOWN_MAX) {
                eprintln!(
                    "  PO {reference}: {} {} {}",
                    e.code,
                    e.serial.as_deref().or(e.sku.as_deref()).unwrap_or(""),
                    e.detail.as_deref().unwrap_or("")
                );
            }
            let count = pos.len();
            let mut judge = read.judge(&pos, None);
            reject_rows(
                &args.file,
                args.sheet.as_deref(),
                &errors_path,
                &mut judge,
                |rows| eprintln!("import rejected: {count} POs failed, on {rows} rows"),
            )
        }
        // A refusal that names one of the file's POs (it exists already, say) is that
        // PO's rows' fault: they go to the error file.
        Err(ClientError::Refused { code, message })
            if read
                .payloads
                .iter()
                .any(|p| message.contains(&format!("{:?}", p.reference_code))) =>
        {
            let reference = read
                .payloads
                .iter()
                .map(|p| p.reference_code.clone())
                .find(|r| message.contains(&format!("{r:?}")))
                .unwrap_or_default();
            let mut judge = read.judge(&[], Some((reference, code.clone(), message.clone())));
            reject_rows(
                &args.file,
                args.sheet.as_deref(),
                &errors_path,
                &mut judge,
                |rows| eprintln!("import refused: {code} {message} ({rows} rows)"),
            )
        }
        Err(e) => refused("import", e),
    }
}

/// Writes the error file, tells the user, and fails the command.
fn reject_rows(
    input: &Path,
    worksheet: Option<&str>,
    errors_path: &Path,
    judge: &mut dyn FnMut(u64, &csv::ByteRecord) -> import::Verdict,
    tell: impl FnOnce(u64),
) -> anyhow::Result<()> {
    let rows = import::write_error_file(input, worksheet, errors_path, judge)?;
    tell(rows);
    bail!(
        "nothing was imported; the {rows} failing rows are in {}",
        errors_path.display()
    )
}

fn report_problems(sheet: &Sheet, problems: &Problems) {
    for problem in &problems.first {
        eprintln!("{}: {problem}", sheet.file_name());
    }
    if problems.count > problems.first.len() as u64 {
        eprintln!(
            "{}: … and {} more rows",
            sheet.file_name(),
            problems.count - problems.first.len() as u64
        );
    }
}

fn refused(what: &str, e: ClientError) -> anyhow::Result<()> {
    bail!("{what} refused, nothing was imported: {e}")
}

fn reading_bar(sheet: &Sheet) -> ProgressBar {
    let (total, unit) = match (sheet.rows_total(), std::fs::metadata(sheet.path())) {
        (Some(rows), _) => (rows, "{human_pos}/{human_len} rows"),
        (None, Ok(meta)) => (meta.len(), "{bytes}/{total_bytes}"),
        (None, Err(_)) => (0, "{bytes}"),
    };
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{msg:>10}} [{{bar:40}}] {unit} ({{elapsed}}, eta {{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message("reading");
    bar
}

/// Moves the bar to the bytes read (CSV) or, for a workbook (bytes 0), the rows.
fn advance(bar: &ProgressBar, bytes: u64, rows: u64) {
    bar.set_position(if bytes > 0 { bytes } else { rows });
}

fn spinner(message: &'static str) -> ProgressBar {
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(message);
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    spinner
}
