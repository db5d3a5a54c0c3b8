//! Server-rendered SVG pictures: bars of money per month, a line of energy
//! per day. Pure functions from numbers to markup.
//!
//! Every picture is an `<svg role="img">` labelled by its own `<title>` and
//! `<desc>`, drawn with presentation attributes only (the CSP allows no
//! inline style), and every text in it is escaped here: the pages put the
//! markup in with `|safe`. The pages also show the same numbers as a table
//! (a picture alone says nothing to a screen reader).

use std::fmt::Write as _;

/// The drawing's width, in SVG units (it scales to the page's width).
const WIDTH: f64 = 720.0;
/// The drawing's height.
const HEIGHT: f64 = 260.0;
/// Room for the value axis' labels, on the left.
const LEFT: f64 = 64.0;
/// Room on the right.
const RIGHT: f64 = 12.0;
/// Room above the plot.
const TOP: f64 = 14.0;
/// Room for the time axis' labels, below.
const BOTTOM: f64 = 34.0;
/// The most time labels drawn under the plot (the rest are in the table).
const MAX_TIME_LABELS: usize = 8;

/// The colour of money spent (the site's accent).
const SPENT: &str = "#2456c7";
/// The colour of money refunded (the site's "ok" green), drawn below the
/// zero line.
const REFUNDED: &str = "#1f7a4a";
/// The colour of the energy line and, lighter, of its area.
const ENERGY: &str = "#9a5b00";
/// Grid lines.
const GRID: &str = "#d9dee7";
/// Axis text.
const INK: &str = "#5b6475";

/// One month of bills: what was paid and what was refunded (both positive).
#[derive(Debug, Clone, PartialEq)]
pub struct MonthBar {
    /// The month as shown (`2025-03`).
    pub label: String,
    /// Money paid that month.
    pub spent: f64,
    /// Money refunded that month.
    pub refunded: f64,
}

/// One point of a series (a day's or a month's energy).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The day or month as shown (`2025-03-14`).
    pub label: String,
    /// The value, in the chart's unit.
    pub value: f64,
}

/// Escapes text for SVG (XML) content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // XML 1.0 allows no other control character.
            c if c.is_control() && !matches!(c, '\n' | '\t') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A number as shown on an axis or in a tooltip: two decimals at most,
/// none for whole numbers.
pub fn number(value: f64) -> String {
    if !value.is_finite() {
        return "0".into();
    }
    let rounded = (value * 100.0).round() / 100.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0}")
    } else {
        format!("{rounded:.2}")
    }
}

/// The smallest "round" number (1, 2, 2.5 or 5 times a power of ten) at
/// least `value`: the top of a value axis.
pub fn nice_ceiling(value: f64) -> f64 {
    if !value.is_finite() || value <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * power >= value * (1.0 - 1e-12) {
            return step * power;
        }
    }
    10.0 * power
}

/// A value that draws: finite and not negative.
fn clean(value: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        0.0
    }
}

/// The opening of a picture: `<svg>`, its title and its description.
fn open(out: &mut String, id: &str, title: &str, desc: &str) {
    let id = escape(id);
    let _ = write!(
        out,
        r#"<svg id="{id}" class="chart" role="img" aria-labelledby="{id}-title {id}-desc" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif" font-size="12"><title id="{id}-title">{}</title><desc id="{id}-desc">{}</desc>"#,
        escape(title),
        escape(desc),
    );
}

/// The picture shown when there is nothing to draw: the frame, the title
/// and a sentence saying so.
pub fn empty(id: &str, title: &str, message: &str) -> String {
    let mut out = String::new();
    open(&mut out, id, title, message);
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle" fill="{INK}" font-size="15">{}</text></svg>"#,
        WIDTH / 2.0,
        HEIGHT / 2.0,
        escape(message)
    );
    out
}

/// Which of `n` time labels are drawn: at most `most`, evenly
/// spread, always the last.
fn shown_label(i: usize, n: usize, most: usize) -> bool {
    let every = n.div_ceil(most.max(2) - 1).max(1);
    i + 1 == n || (i.is_multiple_of(every) && n - 1 - i >= every.div_ceil(2))
}

/// Where a time label at `x` is anchored: the first and last ones inside
/// the drawing.
fn anchor(x: f64) -> &'static str {
    if x < LEFT + 40.0 {
        "start"
    } else if x > WIDTH - RIGHT - 40.0 {
        "end"
    } else {
        "middle"
    }
}

/// Horizontal grid lines and their value labels from `zero_y` up to `top`
/// (value `max`), and, with `below`, the same spacing down to `bottom`.
fn grid(out: &mut String, zero_y: f64, scale: f64, max: f64, below: f64, unit: &str) {
    let steps = 4;
    for k in 0..=steps {
        let value = max * f64::from(k) / f64::from(steps);
        let y = zero_y - value * scale;
        grid_line(out, y, &number(value), unit);
    }
    if below > 0.0 {
        let step = max / f64::from(steps);
        let mut value = step;
        while value <= below * (1.0 + 1e-9) {
            let y = zero_y + value * scale;
            grid_line(out, y, &format!("-{}", number(value)), unit);
            value += step;
        }
    }
}

fn grid_line(out: &mut String, y: f64, label: &str, unit: &str) {
    let _ = write!(
        out,
        r#"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="{GRID}"/><text x="{}" y="{:.1}" text-anchor="end" fill="{INK}">{} {}</text>"#,
        WIDTH - RIGHT,
        LEFT - 6.0,
        y + 4.0,
        escape(label),
        escape(unit),
    );
}

/// Money per month as bars: spent above the zero line in blue, refunded
/// below it in green (a refund is money coming back, drawn as negative).
/// Heights are proportional to the amounts on one scale. `months` in time
/// order; an empty slice (or only zeros) gives the empty picture.
pub fn money_per_month(id: &str, title: &str, currency: &str, months: &[MonthBar]) -> String {
    let max_spent = months.iter().map(|m| clean(m.spent)).fold(0.0, f64::max);
    let max_refunded = months.iter().map(|m| clean(m.refunded)).fold(0.0, f64::max);
    if months.is_empty() || (max_spent == 0.0 && max_refunded == 0.0) {
        return empty(id, title, "No bills to draw yet.");
    }
    let top_value = nice_ceiling(max_spent.max(max_refunded / 4.0));
    let step = top_value / 4.0;
    // Below the line: whole grid steps, enough for the largest refund.
    let below = if max_refunded > 0.0 {
        (max_refunded / step).ceil() * step
    } else {
        0.0
    };
    let plot_h = HEIGHT - TOP - BOTTOM;
    let scale = plot_h / (top_value + below);
    let zero_y = TOP + top_value * scale;
    let plot_w = WIDTH - LEFT - RIGHT;
    let slot = plot_w / months.len() as f64;
    let bar_w = (slot * 0.7).max(1.0);
    let desc = format!(
        "{} month(s) from {} to {}; bars above the line are money spent, bars below it money refunded, in {}.",
        months.len(),
        months.first().map(|m| m.label.as_str()).unwrap_or_default(),
        months.last().map(|m| m.label.as_str()).unwrap_or_default(),
        currency
    );
    let mut out = String::new();
    open(&mut out, id, title, &desc);
    grid(&mut out, zero_y, scale, top_value, below, currency);
    for (i, m) in months.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
        let spent = clean(m.spent);
        let refunded = clean(m.refunded);
        if spent > 0.0 {
            let h = spent * scale;
            let _ = write!(
                out,
                r#"<rect class="bar-spent" data-value="{}" x="{x:.2}" y="{:.2}" width="{bar_w:.2}" height="{h:.2}" fill="{SPENT}"><title>{}: {} {} spent</title></rect>"#,
                number(spent),
                zero_y - h,
                escape(&m.label),
                number(spent),
                escape(currency),
            );
        }
        if refunded > 0.0 {
            let h = refunded * scale;
            let _ = write!(
                out,
                r#"<rect class="bar-refund" data-value="{}" x="{x:.2}" y="{zero_y:.2}" width="{bar_w:.2}" height="{h:.2}" fill="{REFUNDED}"><title>{}: {} {} refunded</title></rect>"#,
                number(refunded),
                escape(&m.label),
                number(refunded),
                escape(currency),
            );
        }
        if shown_label(i, months.len(), MAX_TIME_LABELS) {
            let _ = write!(
                out,
                r#"<text class="time" x="{:.1}" y="{}" text-anchor="middle" fill="{INK}">{}</text>"#,
                x + bar_w / 2.0,
                HEIGHT - 12.0,
                escape(&m.label)
            );
        }
    }
    let _ = write!(
        out,
        r#"<line x1="{LEFT}" x2="{}" y1="{zero_y:.1}" y2="{zero_y:.1}" stroke="{INK}"/>"#,
        WIDTH - RIGHT
    );
    legend(&mut out, max_refunded > 0.0);
    out.push_str("</svg>");
    out
}

/// The key of the bars (top right).
fn legend(out: &mut String, refunds: bool) {
    let mut x = WIDTH - RIGHT - 190.0;
    let items: &[(&str, &str)] = if refunds {
        &[(SPENT, "spent"), (REFUNDED, "refunded (below)")]
    } else {
        &[(SPENT, "spent")]
    };
    for (colour, text) in items {
        let _ = write!(
            out,
            r#"<rect x="{x:.1}" y="2" width="10" height="10" fill="{colour}"/><text x="{:.1}" y="11" fill="{INK}">{text}</text>"#,
            x + 14.0
        );
        x += 62.0;
    }
}

/// A series (energy per day or per month) as a line over a light area.
/// Points in time order; an empty slice gives the empty picture.
pub fn line(id: &str, title: &str, unit: &str, points: &[Point]) -> String {
    if points.is_empty() {
        return empty(id, title, "No measurements to draw yet.");
    }
    let max = points.iter().map(|p| clean(p.value)).fold(0.0, f64::max);
    let top_value = nice_ceiling(max);
    let plot_h = HEIGHT - TOP - BOTTOM;
    let scale = plot_h / top_value;
    let zero_y = TOP + plot_h;
    let plot_w = WIDTH - LEFT - RIGHT;
    let x_of = |i: usize| {
        if points.len() == 1 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + plot_w * i as f64 / (points.len() - 1) as f64
        }
    };
    let desc = format!(
        "{} value(s) from {} to {}, highest {} {}.",
        points.len(),
        points.first().map(|p| p.label.as_str()).unwrap_or_default(),
        points.last().map(|p| p.label.as_str()).unwrap_or_default(),
        number(max),
        unit
    );
    let mut out = String::new();
    open(&mut out, id, title, &desc);
    grid(&mut out, zero_y, scale, top_value, 0.0, unit);
    let mut path = String::new();
    for (i, p) in points.iter().enumerate() {
        let _ = write!(
            path,
            "{}{:.2},{:.2}",
            if i == 0 { "M" } else { " L" },
            x_of(i),
            zero_y - clean(p.value) * scale
        );
    }
    let _ = write!(
        out,
        r#"<path class="area" d="{path} L{:.2},{zero_y:.2} L{:.2},{zero_y:.2} Z" fill="{ENERGY}" fill-opacity="0.18"/><path class="line" d="{path}" fill="none" stroke="{ENERGY}" stroke-width="2"/>"#,
        x_of(points.len() - 1),
        x_of(0),
    );
    for (i, p) in points.iter().enumerate() {
        let _ = write!(
            out,
            r#"<circle class="point" data-value="{}" cx="{:.2}" cy="{:.2}" r="{}" fill="{ENERGY}"{}><title>{}: {} {}</title></circle>"#,
            number(clean(p.value)),
            x_of(i),
            zero_y - clean(p.value) * scale,
            if points.len() > 60 { 2.0 } else { 3.0 },
            // Many points: the line shows them; the dots are only there
            // for their tooltips.
            if points.len() > 60 {
                r#" fill-opacity="0""#
            } else {
                ""
            },
            escape(&p.label),
            number(clean(p.value)),
            escape(unit),
        );
        if shown_label(i, points.len(), MAX_TIME_LABELS - 2) {
            let _ = write!(
                out,
                r#"<text class="time" x="{:.1}" y="{}" text-anchor="{}" fill="{INK}">{}</text>"#,
                x_of(i),
                HEIGHT - 12.0,
                anchor(x_of(i)),
                escape(&p.label)
            );
        }
    }
    let _ = write!(
        out,
        r#"<line x1="{LEFT}" x2="{}" y1="{zero_y:.1}" y2="{zero_y:.1}" stroke="{INK}"/></svg>"#,
        WIDTH - RIGHT
    );
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The `(data-value, height)` of every rect of `class`.
    fn bars(svg: &str, class: &str) -> Vec<(f64, f64)> {
        let needle = format!(r#"<rect class="{class}" data-value=""#);
        svg.match_indices(&needle)
            .map(|(at, _)| {
                let rest = &svg[at + needle.len()..];
                let value: f64 = rest[..rest.find('"').unwrap()].parse().unwrap();
                let h_at = rest.find(r#"height=""#).unwrap() + 8;
                let h: f64 = rest[h_at..h_at + rest[h_at..].find('"').unwrap()]
                    .parse()
                    .unwrap();
                (value, h)
            })
            .collect()
    }

    fn month(label: &str, spent: f64, refunded: f64) -> MonthBar {
        MonthBar {
            label: label.into(),
            spent,
            refunded,
        }
    }

    #[test]
    fn bar_heights_are_proportional_to_amounts() {
        let svg = money_per_month(
            "chart-bills",
            "Money spent per month",
            "EUR",
            &[
                month("2025-01", 10.0, 0.0),
                month("2025-02", 20.0, 0.0),
                month("2025-03", 40.0, 0.0),
            ],
        );
        let b = bars(&svg, "bar-spent");
        assert_eq!(b.len(), 3, "{svg}");
        assert!((b[1].1 / b[0].1 - 2.0).abs() < 0.01, "{b:?}");
        assert!((b[2].1 / b[0].1 - 4.0).abs() < 0.01, "{b:?}");
        assert!(bars(&svg, "bar-refund").is_empty());
        assert!(svg.starts_with("<svg id=\"chart-bills\""), "{svg}");
        assert!(svg.contains(r#"role="img""#));
        assert!(svg.contains(r#"aria-labelledby="chart-bills-title chart-bills-desc""#));
        assert!(svg.contains(r#"<title id="chart-bills-title">Money spent per month</title>"#));
        assert!(svg.ends_with("</svg>"));
    }

    #[test]
    fn refunds_are_drawn_below_the_line_in_their_own_colour_on_the_same_scale() {
        let svg = money_per_month(
            "c",
            "t",
            "EUR",
            &[month("2025-01", 30.0, 15.0), month("2025-02", 0.0, 0.0)],
        );
        let spent = bars(&svg, "bar-spent");
        let refunds = bars(&svg, "bar-refund");
        assert_eq!((spent.len(), refunds.len()), (1, 1), "{svg}");
        assert!((spent[0].1 / refunds[0].1 - 2.0).abs() < 0.01);
        assert!(svg.contains(&format!(r#"fill="{REFUNDED}""#)));
        assert!(svg.contains("refunded (below)"));
        // Everything stays inside the drawing.
        let refund_rect = &svg[svg.find("bar-refund").unwrap()..];
        let y_at = refund_rect.find(" y=\"").unwrap() + 4;
        let y: f64 = refund_rect[y_at..y_at + refund_rect[y_at..].find('"').unwrap()]
            .parse()
            .unwrap();
        assert!(
            y + refunds[0].1 <= HEIGHT - BOTTOM + 0.01,
            "{y} {refunds:?}"
        );
    }

    #[test]
    fn no_data_gives_an_empty_state_picture() {
        for svg in [
            money_per_month("chart-bills", "Money", "EUR", &[]),
            money_per_month("chart-bills", "Money", "EUR", &[month("2025-01", 0.0, 0.0)]),
        ] {
            assert!(svg.contains("No bills to draw yet."), "{svg}");
            assert!(svg.contains(r#"role="img""#));
            assert!(svg.contains("<title id=\"chart-bills-title\">Money</title>"));
            assert!(!svg.contains("<rect class="));
        }
        let svg = line("chart-energy", "Energy", "kWh", &[]);
        assert!(svg.contains("No measurements to draw yet."), "{svg}");
        assert!(!svg.contains("<path"));
    }

    #[test]
    fn labels_titles_and_units_are_escaped() {
        let evil = r#"<script>alert("x")</script>&'"#;
        let svg = money_per_month("c", evil, evil, &[month(evil, 5.0, 1.0)]);
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"));
        let svg = line(
            evil,
            evil,
            evil,
            &[Point {
                label: evil.into(),
                value: 1.0,
            }],
        );
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(!svg.contains(r#"id="<"#));
        assert_eq!(escape("a\u{1b}b"), "a b");
    }

    #[test]
    fn line_points_are_proportional_and_span_the_plot() {
        let points: Vec<Point> = [5.0, 10.0, 0.0, 20.0]
            .iter()
            .enumerate()
            .map(|(i, v)| Point {
                label: format!("2025-01-0{}", i + 1),
                value: *v,
            })
            .collect();
        let svg = line("chart-energy", "Energy per day", "kWh", &points);
        let cy: Vec<f64> = svg
            .match_indices(" cy=\"")
            .map(|(at, _)| {
                let rest = &svg[at + 5..];
                rest[..rest.find('"').unwrap()].parse().unwrap()
            })
            .collect();
        assert_eq!(cy.len(), 4);
        let zero = HEIGHT - BOTTOM;
        // Heights above the axis: 5, 10, 0, 20 in proportion.
        let h: Vec<f64> = cy.iter().map(|y| zero - y).collect();
        assert!((h[1] / h[0] - 2.0).abs() < 0.01, "{h:?}");
        assert!(h[2].abs() < 0.01, "{h:?}");
        assert!((h[3] / h[0] - 4.0).abs() < 0.01, "{h:?}");
        assert!(svg.contains("<path class=\"line\""));
        assert!(svg.contains("2025-01-04"));
    }

    #[test]
    fn axis_tops_are_round_and_few_time_labels_are_drawn() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(19.99), 20.0);
        assert_eq!(nice_ceiling(230.0), 250.0);
        assert_eq!(nice_ceiling(4100.0), 5000.0);
        assert_eq!(nice_ceiling(f64::NAN), 1.0);
        assert_eq!(number(19.989), "19.99");
        assert_eq!(number(20.0), "20");
        let months: Vec<MonthBar> = (0..240)
            .map(|i| month(&format!("m{i}"), 1.0 + f64::from(i), 0.0))
            .collect();
        let svg = money_per_month("c", "t", "EUR", &months);
        let labels = svg.matches("<text class=\"time\"").count();
        assert!((4..=MAX_TIME_LABELS).contains(&labels), "{labels}");
        assert!(svg.contains(">m239</text>"), "the last month is labelled");
        assert_eq!(bars(&svg, "bar-spent").len(), 240);
        for n in 1..400 {
            let shown: Vec<usize> = (0..n).filter(|i| shown_label(*i, n, 8)).collect();
            assert!(shown.len() <= 8, "{n}: {shown:?}");
            assert_eq!(shown.last(), Some(&(n - 1)), "{n}");
            assert!(n < 2 || shown.contains(&0), "{n}: {shown:?}");
            // No two labels closer than half the spacing.
            let every = n.div_ceil(7).max(1);
            for w in shown.windows(2) {
                assert!(w[1] - w[0] >= every.div_ceil(2), "{n}: {shown:?}");
            }
        }
    }
}
