//! Curves of a metric over seeds, shaded ±sd, on a log x-axis, written as SVG and PNG: the
//! low-resource curve (against training-set size) and the compute curve (against the
//! encoder rows a search has run).

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::prelude::*;

/// One point of a curve: x (train size, encoder rows), mean, sd (0 for one seed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f64,
    pub mean: f64,
    pub sd: f64,
}

/// A named curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub label: String,
    pub points: Vec<Point>,
}

/// A plot that could not be written; the cause follows the message in the error chain.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Creating the plot's directory or moving the finished PNG into place failed.
    #[error("plot {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing the SVG failed.
    #[error("plot {}", path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: crate::store::StoreError,
    },
    /// plotters could not draw. Its error, `DrawingAreaErrorKind<DB::ErrorType>`, is generic
    /// over the backend (SVG: `std::io::Error`; bitmap: `BitMapBackendError`), so it is kept
    /// boxed (it is `Error + Send + Sync + 'static` for both backends).
    #[error("plot {}: drawing failed", path.display())]
    Draw {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The bundled DejaVu Sans (see `framework/assets/DejaVuSans.LICENSE`), so plots render the
/// same on machines without system fonts.
fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../../assets/DejaVuSans.ttf");
        if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_err() {
            panic!("the bundled font framework/assets/DejaVuSans.ttf does not parse");
        }
    });
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x_desc: &str,
    metric: &str,
    curves: &[Curve],
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let xs = curves.iter().flat_map(|c| c.points.iter().map(|p| p.x));
    let (xmin, xmax) = xs.fold((f64::INFINITY, 0f64), |(a, b), x| (a.min(x), b.max(x)));
    let (xmin, xmax) = if xmin.is_finite() {
        (xmin / 1.5, xmax * 1.5)
    } else {
        (1.0, 10.0)
    };
    let ys = curves
        .iter()
        .flat_map(|c| c.points.iter().flat_map(|p| [p.mean - p.sd, p.mean + p.sd]));
    let (ymin, ymax) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
        (a.min(y), b.max(y))
    });
    let pad = ((ymax - ymin) * 0.1).max(0.02);
    let (ymin, ymax) = if ymin.is_finite() {
        (ymin - pad, ymax + pad)
    } else {
        (0.0, 1.0)
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d((xmin..xmax).log_scale(), ymin..ymax)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .x_label_formatter(&|x| {
            if *x >= 1e5 {
                format!("{x:.0e}")
            } else {
                format!("{x:.0}")
            }
        })
        .y_desc(metric)
        .label_style(("sans-serif", 14))
        .draw()?;
    for (i, curve) in curves.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let band: Vec<(f64, f64)> = curve
            .points
            .iter()
            .map(|p| (p.x, p.mean + p.sd))
            .chain(curve.points.iter().rev().map(|p| (p.x, p.mean - p.sd)))
            .collect();
        chart.draw_series(std::iter::once(Polygon::new(band, color.mix(0.18))))?;
        chart
            .draw_series(LineSeries::new(
                curve.points.iter().map(|p| (p.x, p.mean)),
                color.stroke_width(2),
            ))?
            .label(curve.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        // Markers for a handful of points (train sizes); a trajectory is a line.
        if curve.points.len() <= 20 {
            chart.draw_series(
                curve
                    .points
                    .iter()
                    .map(|p| Circle::new((p.x, p.mean), 4, color.filled())),
            )?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

/// The low-resource curve: `<stem>.svg` and `<stem>.png`; returns their paths.
pub fn low_resource_curve(
    stem: &Path,
    title: &str,
    metric: &str,
    curves: &[Curve],
) -> Result<Vec<PathBuf>, PlotError> {
    curve_plot(stem, title, "training examples (log scale)", metric, curves)
}

/// The compute curve: the dev metric of the prompt a search would return against the
/// encoder rows it has run; `<stem>.svg` and `<stem>.png`.
pub fn compute_curve(
    stem: &Path,
    title: &str,
    metric: &str,
    curves: &[Curve],
) -> Result<Vec<PathBuf>, PlotError> {
    curve_plot(
        stem,
        title,
        "encoder rows, forward + backward (log scale)",
        metric,
        curves,
    )
}

/// Writes `<stem>.svg` and `<stem>.png`; returns their paths.
fn curve_plot(
    stem: &Path,
    title: &str,
    x_desc: &str,
    metric: &str,
    curves: &[Curve],
) -> Result<Vec<PathBuf>, PlotError> {
    register_font();
    let svg = stem.with_extension("svg");
    let png = stem.with_extension("png");
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| PlotError::Io { path, source }
    };
    let drawing = |path: &Path| {
        let path = path.to_owned();
        move |source| PlotError::Draw { path, source }
    };
    if let Some(dir) = stem.parent() {
        std::fs::create_dir_all(dir).map_err(io(stem))?;
    }
    let mut svg_text = String::new();
    draw(
        SVGBackend::with_string(&mut svg_text, (900, 560)).into_drawing_area(),
        title,
        x_desc,
        metric,
        curves,
    )
    .map_err(drawing(&svg))?;
    crate::store::write_atomic(&svg, svg_text.as_bytes()).map_err(|source| PlotError::Store {
        path: svg.clone(),
        source,
    })?;
    // The bitmap backend encodes straight to a file (format from the extension): draw into a
    // temp file beside the target, then rename, so a reader never sees half a PNG.
    let name = png
        .file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned();
    let tmp = png.with_file_name(format!(".{name}.{}.tmp.png", std::process::id()));
    draw(
        BitMapBackend::new(&tmp, (900, 560)).into_drawing_area(),
        title,
        x_desc,
        metric,
        curves,
    )
    .map_err(drawing(&png))?;
    std::fs::rename(&tmp, &png).map_err(io(&png))?;
    Ok(vec![svg, png])
}
