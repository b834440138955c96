//! Loss curves of a run, drawn from its CSV files into an SVG (plotters; SVG text
//! needs no font files, unlike its bitmap backend): the negative ELBO of training
//! (`metrics.csv`), the test set (`eval.csv`) and the validation set (`valid.csv`, if
//! any), and the KL, against the step.

use std::path::Path;

use plotters::prelude::*;

use crate::error::TrainError;
use crate::output::read_csv_column;

/// One line of a panel: its label, colour and (step, value) points.
type Series = (String, RGBColor, Vec<(f64, f64)>);

/// Reads `(step, value)` pairs of column `name` of `file` in `run_dir`; a missing file
/// gives no points.
fn points(
    run_dir: &Path,
    file: &str,
    name: &str,
    sign: f64,
) -> Result<Vec<(f64, f64)>, TrainError> {
    let path = run_dir.join(file);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let steps = read_csv_column(&path, "step")?;
    let values = read_csv_column(&path, name)?;
    Ok(steps
        .into_iter()
        .zip(values)
        .filter_map(|(s, v)| Some((s?, sign * v?)))
        .collect())
}

/// Writes the curves of the run in `run_dir` to `out` (SVG).
pub fn loss_curves(run_dir: &Path, out: &Path) -> Result<(), TrainError> {
    let elbo: Vec<Series> = vec![
        (
            "train".into(),
            BLUE,
            points(run_dir, "metrics.csv", "elbo", -1.0)?,
        ),
        (
            "test".into(),
            RED,
            points(run_dir, "eval.csv", "elbo", -1.0)?,
        ),
        (
            "validation".into(),
            GREEN,
            points(run_dir, "valid.csv", "elbo", -1.0)?,
        ),
    ];
    let kl: Vec<Series> = vec![
        (
            "train".into(),
            BLUE,
            points(run_dir, "metrics.csv", "kl", 1.0)?,
        ),
        ("test".into(), RED, points(run_dir, "eval.csv", "kl", 1.0)?),
    ];
    if elbo[0].2.is_empty() {
        return Err(TrainError::Data {
            file: run_dir.join("metrics.csv"),
            message: "no training metrics to plot: is this a run folder?".into(),
        });
    }
    two_panels(
        out,
        380,
        ("-ELBO (nats per image)", &elbo),
        ("KL (nats per image)", &kl),
    )
}

/// An SVG of two panels, the upper `split` pixels tall, at `out`.
fn two_panels(
    out: &Path,
    split: u32,
    (title_a, a): (&str, &[Series]),
    (title_b, b): (&str, &[Series]),
) -> Result<(), TrainError> {
    let plot_err = |e: String| TrainError::Io {
        what: "drawing",
        path: out.to_path_buf(),
        source: std::io::Error::other(e),
    };
    let root = SVGBackend::new(out, (900, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(e.to_string()))?;
    let (upper, lower) = root.split_vertically(split);
    panel(&upper, title_a, a).map_err(plot_err)?;
    panel(&lower, title_b, b).map_err(plot_err)?;
    root.present().map_err(|e| plot_err(e.to_string()))
}

/// The collapse plot: the training KL (`metrics.csv`) and the test set's mutual
/// information I(x; z) (`eval.csv`, text runs) of several runs against the step, one
/// colour per run, labelled by its folder name (SVG).
pub fn collapse_curves(run_dirs: &[&Path], out: &Path) -> Result<(), TrainError> {
    let colours = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    let mut kl = Vec::new();
    let mut mi = Vec::new();
    for (i, dir) in run_dirs.iter().enumerate() {
        let label = dir
            .file_name()
            .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into());
        let colour = colours[i % colours.len()];
        let k = points(dir, "metrics.csv", "kl", 1.0)?;
        if k.is_empty() {
            return Err(TrainError::Data {
                file: dir.join("metrics.csv"),
                message: "no training metrics to plot: is this a run folder?".into(),
            });
        }
        kl.push((label.clone(), colour, k));
        let has_mi = std::fs::read_to_string(dir.join("eval.csv")).is_ok_and(|t| {
            t.lines()
                .next()
                .is_some_and(|h| h.split(',').any(|c| c == "mi"))
        });
        if has_mi {
            mi.push((label, colour, points(dir, "eval.csv", "mi", 1.0)?));
        }
    }
    two_panels(
        out,
        350,
        ("KL, training (nats per example)", &kl),
        ("mutual information I(x; z), test set (nats)", &mi),
    )
}

/// One chart of `series` against the step. The first 5% of the steps are left out
/// of the value range: the untrained start (~540 nats) would flatten the rest.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    series: &[Series],
) -> Result<(), String> {
    let all = || series.iter().flat_map(|s| s.2.iter().copied());
    if all().next().is_none() {
        return Ok(()); // nothing to draw (e.g. no mutual information for images)
    }
    let x_max = all().map(|p| p.0).fold(1.0, f64::max);
    let settled = || all().filter(|p| p.0 >= 0.05 * x_max).map(|p| p.1);
    let lo = settled().fold(f64::INFINITY, f64::min);
    let hi = settled().fold(f64::NEG_INFINITY, f64::max);
    // At least 2% of the magnitude tall: a constant (the vMF KL at fixed kappa, logged
    // in f32 and f64) is a flat line, not rounding noise blown up.
    let half = (0.55 * (hi - lo))
        .max(0.01 * hi.abs().max(lo.abs()))
        .max(0.5);
    let mid = 0.5 * (hi + lo);
    let (lo, hi) = (mid - half, mid + half);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..x_max, lo..hi)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(|e| e.to_string())?;
    for (label, colour, pts) in series.iter().filter(|s| !s.2.is_empty()) {
        let colour = *colour;
        let inside = pts.iter().copied().filter(|p| p.1 >= lo && p.1 <= hi);
        chart
            .draw_series(LineSeries::new(inside.clone(), colour.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
        // Marks, so that a series of one point (one epoch) shows.
        chart
            .draw_series(inside.map(|p| Circle::new(p, 3, colour.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}
