//! The bench's chart as SVG text (pure): round-trip latency (median bar, 99th percentile
//! whisker) and TCP throughput against hop count, side by side, one bar group per row, with
//! the values written on the bars; the control plane's cost per object below, when measured.

use std::fmt::Write;

use super::{Report, OBJECTS};

const W: f64 = 960.0;
const PANEL_H: f64 = 300.0;
const MARGIN: f64 = 60.0;
const HOPS: &str = "namespace crossings (hops)";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A round upper bound for an axis.
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// One bar panel at (`x0`, `y0`): `bars` as (label, value, optional whisker), `unit` on the
/// axis.
/// A panel's words and colour.
struct Look<'a> {
    title: &'a str,
    unit: &'a str,
    xlabel: &'a str,
    colour: &'a str,
}

fn panel(
    s: &mut String,
    x0: f64,
    y0: f64,
    w: f64,
    look: &Look<'_>,
    bars: &[(String, f64, Option<f64>)],
) {
    let Look {
        title,
        unit,
        xlabel,
        colour,
    } = *look;
    let plot_h = PANEL_H - 90.0;
    let top = y0 + 40.0;
    let base = top + plot_h;
    let max = nice_max(
        bars.iter()
            .map(|(_, v, w)| w.unwrap_or(*v).max(*v))
            .fold(0.0, f64::max),
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" font-size="13" font-weight="bold">{}</text>"#,
        x0,
        y0 + 20.0,
        esc(title)
    );
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let y = base - plot_h * f64::from(i) / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{x0:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            x0 + w,
            x0 - 4.0,
            y + 4.0,
            fmt(v)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" font-size="11" transform="rotate(-90 {:.1} {:.1})" text-anchor="middle">{}</text>"#,
        x0 - 42.0,
        top + plot_h / 2.0,
        x0 - 42.0,
        top + plot_h / 2.0,
        esc(unit)
    );
    let n = bars.len().max(1) as f64;
    let slot = w / n;
    for (i, (label, v, whisker)) in bars.iter().enumerate() {
        let x = x0 + slot * i as f64 + slot * 0.15;
        let bw = slot * 0.7;
        let h = plot_h * v / max;
        let _ = writeln!(
            s,
            r#"<rect x="{x:.1}" y="{:.1}" width="{bw:.1}" height="{h:.1}" fill="{colour}"><title>{}: {} {}</title></rect>"#,
            base - h,
            esc(label),
            fmt(*v),
            esc(unit)
        );
        if let Some(p) = whisker {
            let y = base - plot_h * p / max;
            let cx = x + bw / 2.0;
            let _ = writeln!(
                s,
                r##"<line x1="{cx:.1}" y1="{:.1}" x2="{cx:.1}" y2="{y:.1}" stroke="#333"/><line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#333"/>"##,
                base - h,
                cx - bw / 4.0,
                cx + bw / 4.0
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"#,
            x + bw / 2.0,
            base - h - 4.0,
            fmt(*v),
        );
        // A label may have two lines, split at '|'.
        for (k, line) in label.split('|').enumerate() {
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"#,
                x + bw / 2.0,
                base + 15.0 + 13.0 * k as f64,
                esc(line)
            );
        }
    }
    let _ = writeln!(
        s,
        r#"<line x1="{x0:.1}" y1="{base:.1}" x2="{:.1}" y2="{base:.1}" stroke="black"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"#,
        x0 + w,
        x0 + w / 2.0,
        base + 44.0,
        esc(xlabel)
    );
}

/// The chart of `r`.
pub fn render(r: &Report) -> String {
    let rows = if r.control.is_empty() { 1.0 } else { 2.0 };
    let h = PANEL_H * rows + 20.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif">"#
    );
    s.push_str("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    let label = |row: &super::HopRow| match row.path {
        "veth" | "bridge" => format!("{} {}", row.hops, row.path),
        "loopback" => "0 lo".to_string(),
        _ => row.hops.to_string(),
    };
    let pw = (W - 3.0 * MARGIN) / 2.0;
    let lat: Vec<(String, f64, Option<f64>)> = r
        .hops
        .iter()
        .map(|row| (label(row), row.rtt_median_us, Some(row.rtt_p99_us)))
        .collect();
    panel(
        &mut s,
        MARGIN,
        0.0,
        pw,
        &Look {
            title: "UDP round trip: median, 99th percentile (whisker)",
            unit: "microseconds",
            xlabel: HOPS,
            colour: "#4c78a8",
        },
        &lat,
    );
    let thr: Vec<(String, f64, Option<f64>)> = r
        .hops
        .iter()
        .map(|row| (label(row), row.throughput_mbit_s / 1000.0, None))
        .collect();
    panel(
        &mut s,
        2.0 * MARGIN + pw,
        0.0,
        pw,
        &Look {
            title: "TCP single stream",
            unit: "Gbit/s",
            xlabel: HOPS,
            colour: "#f58518",
        },
        &thr,
    );
    if !r.control.is_empty() {
        let mut bars = Vec::new();
        for c in &r.control {
            for (k, name) in OBJECTS.iter().enumerate() {
                bars.push((format!("{name}|N={}", c.n), c.per_object_us[k], None));
            }
        }
        let w = W - 2.0 * MARGIN;
        panel(
            &mut s,
            MARGIN,
            PANEL_H,
            w,
            &Look {
                title: "Control plane: time per object that plumb up creates",
                unit: "microseconds",
                xlabel: "object kind, lab size",
                colour: "#54a24b",
            },
            &bars,
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::super::{ControlRow, HopRow};
    use super::*;

    #[test]
    fn render_has_a_bar_per_row_and_escapes_nothing_raw() {
        let row = |hops, path| HopRow {
            hops,
            path,
            between: None,
            through: None,
            pings: 10,
            lost: 0,
            rtt_median_us: 12.5,
            rtt_p99_us: 30.0,
            stream_bytes: 1,
            throughput_mbit_s: 9000.0,
        };
        let r = Report {
            version: 1,
            hops: vec![
                row(0, "loopback"),
                row(1, "veth"),
                row(1, "bridge"),
                row(2, "routed"),
            ],
            control: vec![ControlRow {
                n: 10,
                up_s: [0.1; 4],
                noop_up_s: 0.01,
                per_object_us: [900.0, 500.0, 30.0, 40.0],
            }],
        };
        let s = render(&r);
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("<rect x=").count(), 2 * 4 + 4);
        assert_eq!(s.matches("<svg").count(), 1);
        assert!(s.contains(">1 bridge<") && s.contains(">N=10<"));
    }
}
