//! Labels: ZPL golden files and PDF sheets decoded back with zbarimg.
//!
//! The ZPL goldens pin every byte sent to a printer. To regenerate them after an intended
//! change, run `SERIALGATE_BLESS=1 cargo test --release --test integration labels` and
//! review the diff of `tests/golden/labels-*.zpl`.
//!
//! The PDF test renders sheets, rasterises them with `pdftoppm -r 300` (poppler-utils) and
//! reads every barcode back with `zbarimg` (zbar-tools): the decoded values must be the
//! serials, each exactly once.

use std::path::{Path, PathBuf};
use std::process::Command;

use serialgate::labels::{
    pdf, zpl, Grid, Label, LabelError, PageSize, PdfOptions, Symbol, ZplOptions, GRID_COLUMNS_MAX,
    GRID_ROWS_MAX, LABELS_PER_DOCUMENT_MAX,
};

fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Compares with the golden file, or rewrites it when `SERIALGATE_BLESS=1`.
fn check_golden(name: &str, actual: &str) {
    let path = golden_path(name);
    if std::env::var("SERIALGATE_BLESS").as_deref() == Ok("1") {
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("{}: {err}; run with SERIALGATE_BLESS=1", path.display()));
    assert!(
        expected == actual,
        "{} differs from the output; if the change is intended, rerun with SERIALGATE_BLESS=1 \
         and review the diff.\n--- output ---\n{actual}",
        path.display()
    );
}

fn golden_labels() -> Vec<Label> {
    vec![
        Label::new("SG000000012345", "SODA01"),
        Label::new("UK-07812/a", "PLAIN1"),
        Label::new("A^B~C_D", "SKU^~_1"),
        Label::new("x>y\\z,1", "S K U"),
        Label::new("0123456789", ""),
        Label::new("7", "T4SKU"),
    ]
}

#[test]
fn zpl_code128_matches_golden() {
    let options = ZplOptions::default();
    assert_eq!(options.symbol, Symbol::Code128);
    let out = zpl(&golden_labels(), &options).expect("zpl");
    check_golden("labels-code128.zpl", &out);
}

#[test]
fn zpl_datamatrix_matches_golden() {
    let options = ZplOptions {
        symbol: Symbol::DataMatrix,
        ..ZplOptions::default()
    };
    let out = zpl(&golden_labels(), &options).expect("zpl");
    check_golden("labels-datamatrix.zpl", &out);
}

/// Field data of every `^FH^FD…^FS` in a format, hex escapes decoded.
fn fields(format: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in format.lines() {
        let Some(at) = line.find("^FH^FD") else {
            continue;
        };
        let command = line[..at].to_string();
        let raw = &line[at + 6..];
        let raw = raw.strip_suffix("^FS").expect("field ends with ^FS");
        assert!(
            !raw.contains('^') && !raw.contains('~'),
            "raw command prefix in field data: {line}"
        );
        let bytes = raw.as_bytes();
        let mut data = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'_' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex");
                data.push(u8::from_str_radix(hex, 16).expect("hex escape"));
                i += 3;
            } else {
                data.push(bytes[i]);
                i += 1;
            }
        }
        out.push((command, String::from_utf8(data).expect("ascii")));
    }
    out
}

/// Reads `^BC` mode-N data back to the encoded text (start/switch/invocation codes).
fn decode_bc(data: &str) -> String {
    let mut out = String::new();
    let mut chars = data.chars();
    while let Some(ch) = chars.next() {
        if ch != '>' {
            out.push(ch);
            continue;
        }
        match chars.next() {
            Some(':' | ';' | '5' | '6') => {}
            Some('0') => out.push('>'),
            Some('<') => out.push('^'),
            Some('=') => out.push('~'),
            other => panic!("unexpected invocation >{other:?} in {data:?}"),
        }
    }
    out
}

/// Every printable ASCII byte, in serials and SKUs, comes back verbatim from the text
/// fields and from the barcode data of both symbols.
#[test]
fn zpl_fields_carry_every_printable_byte_verbatim() {
    let printable: Vec<u8> = (0x21..=0x7E).collect();
    let labels: Vec<Label> = printable
        .chunks(8)
        .map(|chunk| {
            let serial = String::from_utf8(chunk.to_vec()).expect("ascii");
            Label::new(serial.clone(), format!("sku {serial}"))
        })
        .collect();
    for symbol in [Symbol::Code128, Symbol::DataMatrix] {
        let options = ZplOptions {
            symbol,
            ..ZplOptions::default()
        };
        let out = zpl(&labels, &options).expect("zpl");
        let formats: Vec<&str> = out
            .split_inclusive("^XZ\n")
            .filter(|f| !f.is_empty())
            .collect();
        assert_eq!(formats.len(), labels.len());
        for (format, label) in formats.iter().zip(&labels) {
            assert!(format.starts_with("^XA\n"));
            let fields = fields(format);
            assert_eq!(fields.len(), 3, "{format}");
            let (barcode_cmd, barcode_data) = &fields[0];
            match symbol {
                Symbol::Code128 => {
                    assert!(barcode_cmd.contains("^BCN,"), "{barcode_cmd}");
                    assert_eq!(decode_bc(barcode_data), label.serial);
                }
                Symbol::DataMatrix => {
                    assert!(barcode_cmd.contains("^BXN,"), "{barcode_cmd}");
                    assert!(
                        barcode_cmd.ends_with(",_"),
                        "escape char set: {barcode_cmd}"
                    );
                    assert_eq!(barcode_data.replace("__", "_"), label.serial);
                }
            }
            assert!(fields[1].0.contains("^A0N,"));
            assert_eq!(fields[1].1, label.serial);
            assert_eq!(fields[2].1, label.sku);
        }
    }
}

#[test]
fn zpl_serial_too_long_for_code128_names_it_and_data_matrix_fits() {
    let serial = "ABCDEFGHIJKLMNOPQRSTUVWXYZ-abcdefghijklmnopqrstuvwxyz";
    let labels = [Label::new(serial, "SKU")];
    let err = zpl(&labels, &ZplOptions::default()).expect_err("too long");
    assert!(matches!(err, LabelError::SerialTooLong { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(serial), "{message}");
    assert!(message.contains("Data Matrix"), "{message}");
    let options = ZplOptions {
        symbol: Symbol::DataMatrix,
        ..ZplOptions::default()
    };
    zpl(&labels, &options).expect("Data Matrix holds a 64-byte serial");
    let wide = ZplOptions {
        width_dots: 1624,
        ..ZplOptions::default()
    };
    zpl(&labels, &wide).expect("an 8-inch label holds it as Code 128");
}

#[test]
fn zpl_rejects_bad_options() {
    let labels = [Label::new("SG000000012345", "")];
    let bad_dpi = ZplOptions {
        dpi: 250,
        ..ZplOptions::default()
    };
    assert!(matches!(
        zpl(&labels, &bad_dpi),
        Err(LabelError::InvalidOptions(_))
    ));
    let too_short = ZplOptions {
        height_dots: 60,
        ..ZplOptions::default()
    };
    assert!(matches!(
        zpl(&labels, &too_short),
        Err(LabelError::LabelTooSmall(_))
    ));
}

/// Serials for a sheet: engine-generated style, punctuation, one character, and the
/// longest mixed serial that fits a 3x8 cell on both page sizes.
fn sheet_serials(longest: &str) -> Vec<String> {
    let mut serials: Vec<String> = (0..14)
        .map(|i| format!("SG{:012}", 12_345 + i * 7_919))
        .collect();
    serials.extend(
        [
            "UK-07812/a",
            "ab:CD;ef<gh>",
            "A^B~C_D",
            "x\\y\"z'q",
            "(paren)[sq]",
            "Q",
            "7",
            "{brace}|pipe",
            "%$#@!&*+=?",
            "`grave`.,",
            "PO-2024-000017-L12",
            "mixed12345678end",
            "0123456789012345",
            "lower-case-only",
        ]
        .map(String::from),
    );
    serials.push(longest.to_string());
    serials
}

/// The longest prefix of a mixed, digit-poor pattern that `pdf` accepts in one cell.
fn longest_fitting(options: &PdfOptions) -> String {
    let pattern = "Lng-Serial/Mixed.Case!x@Y#z%W&";
    let mut best = None;
    for len in 1..=pattern.len() {
        let serial = &pattern[..len];
        match pdf(&[Label::new(serial, "")], options) {
            Ok(_) => best = Some(serial.to_string()),
            Err(LabelError::SerialTooLong { .. }) => break,
            Err(err) => panic!("{err}"),
        }
    }
    best.expect("some serial fits")
}

fn tool(name: &str, args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(name)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|err| panic!("run {name} (is it installed?): {err}"))
}

/// Renders the sheet, rasterises each page at 300 dpi and decodes every Code 128 on it.
/// Returns the page count and the decoded values.
fn render_and_decode(labels: &[Label], options: &PdfOptions, dir: &Path) -> (usize, Vec<String>) {
    let bytes = pdf(labels, options).expect("pdf");
    decode_pdf(&bytes, dir)
}

/// Rasterises a PDF's pages at 300 dpi and decodes every Code 128 on them: the page count
/// and the decoded values.
fn decode_pdf(bytes: &[u8], dir: &Path) -> (usize, Vec<String>) {
    assert!(bytes.starts_with(b"%PDF-"));
    std::fs::write(dir.join("sheet.pdf"), bytes).expect("write pdf");
    let out = tool("pdftoppm", &["-r", "300", "-png", "sheet.pdf", "page"], dir);
    assert!(
        out.status.success(),
        "pdftoppm: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut pngs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "png"))
        .collect();
    pngs.sort();
    let mut decoded = Vec::new();
    for png in &pngs {
        let name = png.file_name().and_then(|n| n.to_str()).expect("name");
        let out = tool(
            "zbarimg",
            &["--quiet", "--raw", "-Sdisable", "-Scode128.enable", name],
            dir,
        );
        // zbarimg exits 4 when it finds nothing; that shows up as missing serials below.
        let text = String::from_utf8(out.stdout).expect("utf-8 from zbarimg");
        decoded.extend(text.lines().map(String::from));
    }
    (pngs.len(), decoded)
}

#[test]
fn pdf_sheets_decode_back_to_the_serials() {
    for page in [PageSize::A4, PageSize::Letter] {
        let options = PdfOptions {
            page,
            ..PdfOptions::default()
        };
        let longest = longest_fitting(&PdfOptions {
            page: PageSize::A4,
            ..PdfOptions::default()
        });
        assert!(longest.len() >= 20, "longest fitting serial {longest:?}");
        let serials = sheet_serials(&longest);
        assert_eq!(serials.len(), 29);
        let labels: Vec<Label> = serials
            .iter()
            .enumerate()
            .map(|(i, serial)| {
                let sku = if i % 5 == 4 {
                    String::new()
                } else {
                    format!("SKU-{i:03}")
                };
                Label::new(serial.clone(), sku)
            })
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let (pages, mut decoded) = render_and_decode(&labels, &options, dir.path());
        assert_eq!(pages, serials.len().div_ceil(24), "{page:?}: pages");
        let mut expected = serials.clone();
        expected.sort();
        decoded.sort();
        assert_eq!(decoded, expected, "{page:?}: decoded barcodes");
        if std::env::var_os("SERIALGATE_KEEP_LABELS").is_some() {
            let kept = dir.keep();
            eprintln!("{page:?} sheet kept in {}", kept.display());
        }
    }
}

#[test]
fn pdf_is_deterministic_and_fills_pages_row_by_row() {
    let labels: Vec<Label> = (0..25)
        .map(|i| Label::new(format!("SG{i:012}"), "S"))
        .collect();
    let options = PdfOptions::default();
    let first = pdf(&labels, &options).expect("pdf");
    assert_eq!(first, pdf(&labels, &options).expect("pdf"));
    let text = String::from_utf8_lossy(&first);
    assert!(text.contains("/Count 2"), "25 labels at 3x8 take 2 pages");
    assert!(text.contains("/BaseFont /Helvetica"));
    assert!(text.contains("/Encoding /WinAnsiEncoding"));
    let one_column = PdfOptions {
        grid: "1x4".parse().expect("grid"),
        ..PdfOptions::default()
    };
    let text = String::from_utf8_lossy(&pdf(&labels, &one_column).expect("pdf")).into_owned();
    assert!(text.contains("/Count 7"), "25 labels at 1x4 take 7 pages");
}

#[test]
fn pdf_serial_too_long_for_the_grid_suggests_fewer_columns() {
    let options = PdfOptions::default();
    let longest = longest_fitting(&options);
    let pattern = "Lng-Serial/Mixed.Case!x@Y#z%W&";
    let too_long = &pattern[..longest.len() + 1];
    let labels = [Label::new("SG000000000001", "A"), Label::new(too_long, "B")];
    let err = pdf(&labels, &options).expect_err("too long for 3 columns");
    let LabelError::SerialTooLong {
        serial, module_mm, ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(serial, too_long);
    assert!(*module_mm < serialgate::labels::MODULE_MM_MIN);
    let message = err.to_string();
    assert!(message.contains(too_long), "{message}");
    assert!(
        message.contains("at most 2 columns (e.g. 2x8)"),
        "{message}"
    );
    // The suggestion is right: two columns print it.
    let two = PdfOptions {
        grid: Grid::new(2, 8).expect("grid"),
        ..options
    };
    pdf(&labels, &two).expect("fits 2 columns");
    // A 64-byte serial needs one column; with 50 mm margins it fits none, and the error
    // says what to do instead.
    let max = "M".repeat(64);
    let err = pdf(&[Label::new(max.clone(), "")], &options).expect_err("64 bytes");
    assert!(
        err.to_string().contains("at most 1 column (e.g. 1x8)"),
        "{err}"
    );
    let one = PdfOptions {
        grid: Grid::new(1, 8).expect("grid"),
        ..options
    };
    pdf(&[Label::new(max.clone(), "")], &one).expect("64 bytes fit one column");
    let narrow = PdfOptions {
        margin_mm: 50.0,
        ..one
    };
    let err = pdf(&[Label::new(max, "")], &narrow).expect_err("no column fits");
    assert!(err.to_string().contains("Data Matrix"), "{err}");
}

#[test]
fn grid_parses_within_limits_only() {
    assert_eq!("3x8".parse::<Grid>().expect("3x8"), Grid::default());
    assert_eq!(
        "10X30".parse::<Grid>().expect("max"),
        Grid::new(GRID_COLUMNS_MAX, GRID_ROWS_MAX).expect("max")
    );
    assert_eq!(
        "1x1".parse::<Grid>().expect("min"),
        Grid {
            columns: 1,
            rows: 1
        }
    );
    for bad in [
        "0x8", "3x", "11x8", "3x0", "3x31", "x8", "3*8", "", "-1x8", "3x8x2",
    ] {
        let err = bad.parse::<Grid>().expect_err(bad);
        assert!(
            matches!(err, LabelError::InvalidGrid { .. }),
            "{bad}: {err:?}"
        );
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
    assert!(Grid::new(11, 8).is_err());
    // A grid built past its limits field by field is refused at render time.
    let options = PdfOptions {
        grid: Grid {
            columns: 0,
            rows: 8,
        },
        ..PdfOptions::default()
    };
    assert!(matches!(
        pdf(&[Label::new("A1", "")], &options),
        Err(LabelError::InvalidGrid { .. })
    ));
}

#[test]
fn pdf_cells_too_small_for_a_label_are_refused() {
    let options = PdfOptions {
        grid: "3x30".parse().expect("grid"),
        ..PdfOptions::default()
    };
    let err = pdf(&[Label::new("A1", "")], &options).expect_err("8 mm cells");
    assert!(matches!(err, LabelError::LabelTooSmall(_)), "{err:?}");
    let options = PdfOptions {
        margin_mm: -1.0,
        ..PdfOptions::default()
    };
    assert!(matches!(
        pdf(&[Label::new("A1", "")], &options),
        Err(LabelError::InvalidOptions(_))
    ));
    let options = PdfOptions {
        gap_mm: f32::NAN,
        ..PdfOptions::default()
    };
    assert!(matches!(
        pdf(&[Label::new("A1", "")], &options),
        Err(LabelError::InvalidOptions(_))
    ));
}

#[test]
fn default_cells_are_the_documented_size() {
    let (w, h) = PdfOptions::default().cell_mm();
    assert!(
        (w - 62.0).abs() < 0.01 && (h - 32.875).abs() < 0.01,
        "{w} x {h}"
    );
    let letter = PdfOptions {
        page: PageSize::Letter,
        ..PdfOptions::default()
    };
    let (w, h) = letter.cell_mm();
    assert!(
        (w - 63.967).abs() < 0.01 && (h - 30.675).abs() < 0.01,
        "{w} x {h}"
    );
}

#[test]
fn empty_and_invalid_label_lists_are_errors() {
    assert_eq!(pdf(&[], &PdfOptions::default()), Err(LabelError::NoLabels));
    assert_eq!(zpl(&[], &ZplOptions::default()), Err(LabelError::NoLabels));
    for serial in ["", "has space", "tab\t", "é", &"x".repeat(65)] {
        let labels = [Label::new("OK1", ""), Label::new(serial, "")];
        let err = pdf(&labels, &PdfOptions::default()).expect_err(serial);
        assert!(
            matches!(err, LabelError::InvalidSerial { index: 1, .. }),
            "{serial:?}: {err:?}"
        );
        let err = zpl(&labels, &ZplOptions::default()).expect_err(serial);
        assert!(matches!(err, LabelError::InvalidSerial { index: 1, .. }));
    }
    for sku in ["tab\tsku", "ünïcode", &"s".repeat(65)] {
        let err = zpl(&[Label::new("OK1", sku)], &ZplOptions::default()).expect_err(sku);
        assert!(
            matches!(err, LabelError::InvalidSku { index: 0, .. }),
            "{err:?}"
        );
    }
    let many = vec![Label::new("A1", ""); LABELS_PER_DOCUMENT_MAX + 1];
    assert!(matches!(
        pdf(&many, &PdfOptions::default()),
        Err(LabelError::TooManyLabels { .. })
    ));
    assert!(matches!(
        zpl(&many, &ZplOptions::default()),
        Err(LabelError::TooManyLabels { .. })
    ));
}

/// Longest serial `make(len)` that renders, for lengths 1..=64.
fn capacity(make: impl Fn(usize) -> String, render: impl Fn(&Label) -> bool) -> usize {
    (1..=64)
        .take_while(|&len| render(&Label::new(make(len), "")))
        .last()
        .unwrap_or(0)
}

/// The capacities docs/labels.md quotes: set-B characters, and the letter prefix of an
/// engine-generated serial (prefix + 12 digits), per format.
#[test]
fn documented_capacities_hold() {
    let letters = |len: usize| {
        "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKL"[..len].to_string()
    };
    let generated = |prefix: usize| format!("{}000000012345", letters(prefix));
    for (page, set_b, prefix) in [(PageSize::A4, 23, 16), (PageSize::Letter, 24, 17)] {
        let options = PdfOptions {
            page,
            ..PdfOptions::default()
        };
        let render = |label: &Label| pdf(std::slice::from_ref(label), &options).is_ok();
        assert_eq!(capacity(letters, render), set_b, "{page:?} set B");
        assert_eq!(
            capacity(generated, render),
            prefix,
            "{page:?} generated prefix"
        );
    }
    let options = ZplOptions::default();
    let render = |label: &Label| zpl(std::slice::from_ref(label), &options).is_ok();
    assert_eq!(capacity(letters, render), 12, "ZPL set B");
    assert_eq!(capacity(generated, render), 5, "ZPL generated prefix");
    let options = ZplOptions {
        symbol: Symbol::DataMatrix,
        ..ZplOptions::default()
    };
    let render = |label: &Label| zpl(std::slice::from_ref(label), &options).is_ok();
    assert_eq!(
        capacity(letters, render),
        64,
        "Data Matrix holds any serial"
    );
}

/// A store with a `usn` account whose generated serials start with `prefix`.
fn store_of(
    usn: serialgate::domain::UsnType,
    prefix: &str,
) -> (tempfile::TempDir, serialgate::Engine) {
    use crate::util::{self, WritePath};
    let data = tempfile::tempdir().unwrap();
    let engine = util::open(data.path(), WritePath::Wal);
    util::setup_account(
        &engine,
        serialgate::AccountOptions {
            prefix: Some(prefix.into()),
            ..serialgate::AccountOptions::new(usn)
        },
    );
    (data, engine)
}

/// `serialgate labels` on a stopped store.
fn labels_cli(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_serialgate"))
        .arg("labels")
        .args(args)
        .args(["--data", data.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run serialgate labels")
}

#[test]
fn cli_labels_a_type4_grn_and_a_sheet_decoding_back() {
    use crate::util::{self, ACCOUNT};
    use serialgate::domain::UsnType;
    use serialgate::engine::GrnItem;
    use serialgate::GrnMode;

    let (data, engine) = store_of(UsnType::GeneratedAtGrn, "BX");
    let generated = {
        util::po(&engine, "PO-4", &[("S1", 40)]);
        let item = |n| GrnItem {
            sku: Some("S1".into()),
            quantity: Some(n),
            ..GrnItem::default()
        };
        let first = engine
            .receive(
                ACCOUNT,
                &util::grn("G-1", "PO-4", vec![item(27)]),
                GrnMode::Commit,
            )
            .unwrap();
        let other = engine
            .receive(
                ACCOUNT,
                &util::grn("G-2", "PO-4", vec![item(3)]),
                GrnMode::Commit,
            )
            .unwrap();
        assert!(first.is_committed() && other.is_committed());
        match first {
            serialgate::outcome::GrnReply::Committed { serials, .. } => util::strings(&serials),
            _ => unreachable!(),
        }
    };
    drop(engine); // the command opens the store itself
    let out_dir = tempfile::tempdir().unwrap();
    let pdf_path = out_dir.path().join("g1.pdf");
    let out = labels_cli(
        data.path(),
        &[
            ACCOUNT,
            "--po",
            "PO-4",
            "--grn",
            "G-1",
            "--out",
            pdf_path.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (pages, mut decoded) = decode_pdf(&std::fs::read(&pdf_path).unwrap(), out_dir.path());
    assert_eq!(pages, 2, "27 labels at 3x8");
    decoded.sort();
    let mut expected = generated.clone();
    expected.sort();
    assert_eq!(decoded, expected, "only G-1's serials, each once");

    // ZPL for the whole PO: one format per serial, the SKU printed.
    let zpl_path = out_dir.path().join("po.zpl");
    let out = labels_cli(
        data.path(),
        &[ACCOUNT, "--po", "PO-4", "--out", zpl_path.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let zpl = std::fs::read_to_string(&zpl_path).unwrap();
    assert_eq!(zpl.matches("^XA").count(), 30);
    assert!(zpl.contains(&format!("^FD{}^FS", generated[0])));

    // A sheet of serials, Letter paper, 2 columns.
    let sheet = out_dir.path().join("serials.csv");
    std::fs::write(
        &sheet,
        "Serial,SKU,note\nUK-07812/a,SODA01,x\nSN 1,,bad serial\n",
    )
    .unwrap();
    let sheet_pdf = out_dir.path().join("sheet.pdf");
    let args = [
        ACCOUNT,
        "--file",
        sheet.to_str().unwrap(),
        "--out",
        sheet_pdf.to_str().unwrap(),
        "--page",
        "letter",
        "--grid",
        "2x7",
    ];
    let out = labels_cli(data.path(), &args);
    assert!(!out.status.success(), "a serial with a space was labelled");
    std::fs::write(&sheet, "Serial,SKU,note\nUK-07812/a,SODA01,x\nZ,,\n").unwrap();
    let out = labels_cli(data.path(), &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decode_dir = tempfile::tempdir().unwrap();
    let (_, mut decoded) = decode_pdf(&std::fs::read(&sheet_pdf).unwrap(), decode_dir.path());
    decoded.sort();
    assert_eq!(decoded, ["UK-07812/a", "Z"]);

    // Bad requests say what is wrong.
    for (args, needle) in [
        (vec![ACCOUNT, "--out", "x.pdf"], "--po"),
        (vec![ACCOUNT, "--po", "PO-4", "--out", "x.txt"], "--format"),
        (
            vec![ACCOUNT, "--po", "PO-9", "--out", "x.pdf"],
            "UNKNOWN_PO",
        ),
        (
            vec![ACCOUNT, "--po", "PO-4", "--grn", "G-9", "--out", "x.pdf"],
            "no serials",
        ),
        (
            vec![ACCOUNT, "--po", "PO-4", "--grid", "11x8", "--out", "x.pdf"],
            "11x8",
        ),
    ] {
        let out = labels_cli(data.path(), &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(needle),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn cli_generates_pool_serials_and_labels_them() {
    use crate::util::{self, WritePath, ACCOUNT};
    use serialgate::domain::UsnType;

    let (data, engine) = store_of(UsnType::Pool, "PL");
    drop(engine);
    let out_dir = tempfile::tempdir().unwrap();
    let zpl_path = out_dir.path().join("pool.zpl");
    let out = labels_cli(
        data.path(),
        &[
            ACCOUNT,
            "--generate",
            "4",
            "--sku",
            "S2",
            "--symbol",
            "datamatrix",
            "--out",
            zpl_path.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let zpl = std::fs::read_to_string(&zpl_path).unwrap();
    assert_eq!(zpl.matches("^BX").count(), 4);
    let engine = util::open(data.path(), WritePath::Wal);
    for n in 1..=4 {
        let serial = format!("PL{n:012}");
        assert!(zpl.contains(&serial), "{serial} not printed");
        assert_eq!(
            util::state_of(&engine, &serial).as_deref(),
            Some("generated")
        );
    }
}

#[test]
fn cli_generates_type3_serials_for_a_po_line_and_labels_them() {
    use crate::util::{self, WritePath, ACCOUNT};
    use serialgate::domain::UsnType;

    let (data, engine) = store_of(UsnType::GeneratedForPo, "DM");
    util::po(&engine, "PO-3", &[("S1", 5)]);
    drop(engine);
    let out_dir = tempfile::tempdir().unwrap();
    let pdf_path = out_dir.path().join("po3.pdf");
    let args = [
        ACCOUNT,
        "--generate",
        "5",
        "--po",
        "PO-3",
        "--sku",
        "S1",
        "--out",
        pdf_path.to_str().unwrap(),
    ];
    let out = labels_cli(data.path(), &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (pages, mut decoded) = decode_pdf(&std::fs::read(&pdf_path).unwrap(), out_dir.path());
    decoded.sort();
    assert_eq!(pages, 1);
    assert_eq!(
        decoded,
        (1..=5).map(|n| format!("DM{n:012}")).collect::<Vec<_>>()
    );
    let engine = util::open(data.path(), WritePath::Wal);
    assert_eq!(util::line_counts(&engine, "PO-3"), vec![(5, 5, 0)]);
    drop(engine);
    // Past the line's quantity: refused, nothing generated, no file written.
    let again = out_dir.path().join("again.pdf");
    let args = [
        ACCOUNT,
        "--generate",
        "1",
        "--po",
        "PO-3",
        "--sku",
        "S1",
        "--out",
        again.to_str().unwrap(),
    ];
    let out = labels_cli(data.path(), &args);
    assert!(String::from_utf8_lossy(&out.stderr).contains("QUANTITY_EXCEEDED"));
    assert!(!again.exists());
}
