//! SVG plots of the results (plotters; text is left to the SVG viewer's fonts).

use std::path::Path;

use anyhow::anyhow;
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

const WIDTH: u32 = 960;
const ROW_HEIGHT: u32 = 26;
const FONT: &str = "sans-serif";

fn fail<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a plot: {e:?}")
}

/// Horizontal bars from zero (a linear axis, so lengths compare as ratios), one per
/// `(label, value, highlighted)`, the first at the top.
pub fn bars(
    path: &Path,
    title: &str,
    unit: &str,
    rows: &[(String, f64, bool)],
) -> anyhow::Result<()> {
    let height = 90 + rows.len() as u32 * ROW_HEIGHT;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(fail)?;
    let max = rows.iter().map(|r| r.1).fold(1.0, f64::max) * 1.12;
    let min = 0.0;
    let n = rows.len() as i32;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(330)
        .build_cartesian_2d(min..max, (0..n).into_segmented())
        .map_err(fail)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(rows.len())
        .y_label_formatter(&|y| match y {
            SegmentValue::CenterOf(i) => rows
                .get((n - 1 - *i) as usize)
                .map(|r| r.0.clone())
                .unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc(unit)
        .x_label_formatter(&|v| human(*v))
        .label_style((FONT, 13))
        .draw()
        .map_err(fail)?;
    let colour = |highlighted: bool| {
        if highlighted {
            RGBColor(0x1f, 0x6f, 0xb4)
        } else {
            RGBColor(0x9a, 0x9a, 0x9a)
        }
    };
    chart
        .draw_series(rows.iter().enumerate().map(|(k, (_, value, hl))| {
            // The first row is drawn at the top.
            let i = n - 1 - k as i32;
            let mut bar = Rectangle::new(
                [
                    (min, SegmentValue::Exact(i)),
                    (value.max(min), SegmentValue::Exact(i + 1)),
                ],
                colour(*hl).filled(),
            );
            bar.set_margin(4, 4, 0, 0);
            bar
        }))
        .map_err(fail)?;
    chart
        .draw_series(rows.iter().enumerate().map(|(k, (_, value, _))| {
            let i = n - 1 - k as i32;
            Text::new(
                format!(" {}", human(*value)),
                (value.max(min), SegmentValue::CenterOf(i)),
                (FONT, 12),
            )
        }))
        .map_err(fail)?;
    root.present().map_err(fail)?;
    Ok(())
}

/// One line of `(x, y)` points with markers.
pub fn line(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    points: &[(f64, f64)],
) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (WIDTH, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(fail)?;
    let x_max = points.iter().map(|p| p.0).fold(1.0, f64::max);
    let y_max = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(fail)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|v| human(*v))
        .y_label_formatter(&|v| human(*v))
        .label_style((FONT, 13))
        .draw()
        .map_err(fail)?;
    let blue = RGBColor(0x1f, 0x6f, 0xb4);
    chart
        .draw_series(LineSeries::new(
            points.iter().copied(),
            blue.stroke_width(2),
        ))
        .map_err(fail)?;
    chart
        .draw_series(points.iter().map(|&p| Circle::new(p, 3, blue.filled())))
        .map_err(fail)?;
    root.present().map_err(fail)?;
    Ok(())
}

/// 1234567 → "1.2M".
pub fn human(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_svg_with_their_labels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bars.svg");
        let rows = vec![
            ("W1 serialgate".to_string(), 1_200_000.0, true),
            ("W1 PostgreSQL 15".to_string(), 60_000.0, false),
        ];
        bars(&path, "W1", "serials/s", &rows).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        assert!(svg.contains("W1 PostgreSQL 15") && svg.contains("1.2M"));
        assert!(svg.matches("<rect").count() >= 2);

        let path = dir.path().join("line.svg");
        line(
            &path,
            "scale",
            "serials",
            "serials/s",
            &[(1e6, 1e6), (1e8, 9e5)],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("<polyline") || svg.contains("<path"), "{svg}");
        assert_eq!(human(1_234_567.0), "1.2M");
    }
}
