//! The latency chart: one percentile curve per measured distribution
//! (HdrHistogram style: the x axis stretches the tail, 50% … 99.99%), on a
//! logarithmic millisecond axis, drawn with plotters' SVG backend.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::BoxError;

/// `series`: name and histogram in microseconds.
pub(crate) fn draw(path: &Path, series: &[(String, &Histogram<u64>)]) -> Result<(), BoxError> {
    let series: Vec<_> = series.iter().filter(|(_, h)| !h.is_empty()).collect();
    let max_ms = series
        .iter()
        .map(|(_, h)| h.max() as f64 / 1000.0)
        .fold(1.0_f64, f64::max)
        * 1.5;
    let min_ms = series
        .iter()
        .map(|(_, h)| h.value_at_quantile(0.5) as f64 / 1000.0)
        .fold(max_ms, f64::min)
        .max(0.01)
        / 2.0;
    let root = SVGBackend::new(path, (1000, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("hookline latency distributions", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0_f64..4.0_f64, (min_ms..max_ms).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_labels(5)
        .x_label_formatter(&|x| format!("{}%", trim(100.0 * (1.0 - 10_f64.powf(-x)))))
        .y_label_formatter(&|y| trim(*y))
        .draw()?;
    for (i, (name, hist)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = (0..=400)
            .map(|step| {
                let x = f64::from(step) / 100.0;
                let q = 1.0 - 10_f64.powf(-x);
                (x, (hist.value_at_quantile(q) as f64 / 1000.0).max(min_ms))
            })
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}
