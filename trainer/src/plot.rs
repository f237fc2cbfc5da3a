//! The training curve: train loss and val recall per epoch, as an SVG (plotters' SVG backend needs no fonts).

use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use crate::run::EpochLog;

/// Draws loss (left) and val R@1/R@10/rsum/6 (right) per epoch into `path` (written atomically).
pub fn training_curve(history: &[EpochLog], path: &Path) -> Result<()> {
    if history.is_empty() {
        return Ok(());
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 400)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(480);
        let epochs = history.len() as f64;
        let x_range = 0.5..epochs + 0.5;

        let max_loss = history.iter().map(|h| h.train_loss).fold(0.0f64, f64::max).max(1e-6) * 1.1;
        let mut chart = ChartBuilder::on(&left)
            .caption("train loss", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(x_range.clone(), 0.0..max_loss)?;
        chart.configure_mesh().x_desc("epoch").draw()?;
        chart.draw_series(LineSeries::new(history.iter().map(|h| (h.epoch as f64, h.train_loss)), &BLUE))?;

        let mut chart = ChartBuilder::on(&right)
            .caption("val recall (%)", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(x_range, 0.0..100.0)?;
        chart.configure_mesh().x_desc("epoch").draw()?;
        type Series = (&'static str, RGBColor, fn(&EpochLog) -> f64);
        let series: [Series; 5] = [
            ("t2i R@1", RED, |h| h.val.t2i_r1),
            ("t2i R@10", MAGENTA, |h| h.val.t2i_r10),
            ("i2t R@1", BLUE, |h| h.val.i2t_r1),
            ("i2t R@10", CYAN, |h| h.val.i2t_r10),
            ("rsum / 6", BLACK, |h| h.val.rsum / 6.0),
        ];
        for (name, color, f) in series {
            chart
                .draw_series(LineSeries::new(history.iter().map(|h| (h.epoch as f64, f(h))), color))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
        root.present()?;
    }
    crate::write_atomic(path, svg.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn draws_an_svg_with_every_series() {
        let history: Vec<EpochLog> = (1..=3)
            .map(|e| EpochLog {
                epoch: e,
                train_loss: 10.0 / e as f64,
                val: Metrics { t2i_r1: e as f64, t2i_r10: 10.0 * e as f64, rsum: 60.0 * e as f64, ..Default::default() },
                seconds: 1.0,
            })
            .collect();
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("curve.svg");
        training_curve(&history, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("t2i R@1") && svg.contains("rsum / 6"));
        assert!(svg.matches("<polyline").count() >= 6, "one line per series");
    }
}
