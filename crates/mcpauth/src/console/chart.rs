//! The overview's chart: security events per hour (last 24 hours) or per day (last 7 days), one
//! line per series, drawn as inline SVG from numbers only — no text from the log goes into it,
//! so it needs no escaping, and no script or external asset draws it (the pages' CSP holds).
//! Colours come from the stylesheet (`.chart .s0` …), so dark mode applies.

use std::fmt::Write;

use mcpauth_core::model::AuditCount;
use serde::Serialize;

/// One line of the chart: what it counts and its count per bucket, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Series {
    pub name: &'static str,
    pub total: u64,
    pub counts: Vec<u64>,
}

/// The series and the audit kinds each counts. Rate-limited requests are not in the audit log
/// (a flood would fill it): that series comes from this process's limiter.
const SERIES: &[(&str, &[&str])] = &[
    ("Sign-ins", &["sign_in.success"]),
    (
        "Failed sign-ins",
        &[
            "sign_in.failure",
            "sign_in.refused",
            "upstream_sign_in.refused",
        ],
    ),
    ("Tokens issued", &["token.issue", "token.refresh"]),
    (
        "Reuse detected",
        &["refresh.reuse_detected", "code.replay_detected"],
    ),
];

/// The name of the series the limiter's counts make.
pub(crate) const RATE_LIMITED: &str = "Rate-limited";

/// The audit-log series from a histogram of `buckets` buckets.
pub(crate) fn series(counts: &[AuditCount], buckets: usize) -> Vec<Series> {
    SERIES
        .iter()
        .map(|(name, kinds)| {
            let mut per_bucket = vec![0; buckets];
            for count in counts.iter().filter(|c| kinds.contains(&c.kind.as_str())) {
                if let Some(slot) = usize::try_from(count.bucket)
                    .ok()
                    .and_then(|i| per_bucket.get_mut(i))
                {
                    *slot += count.count;
                }
            }
            Series {
                name,
                total: per_bucket.iter().sum(),
                counts: per_bucket,
            }
        })
        .collect()
}

/// A series of the limiter's refusals.
pub(crate) fn rate_limited(counts: Vec<u64>) -> Series {
    Series {
        name: RATE_LIMITED,
        total: counts.iter().sum(),
        counts,
    }
}

const WIDTH: u64 = 600;
const HEIGHT: u64 = 160;
const PAD: u64 = 8;

/// The SVG of `series` (all of the same length), scaled to the largest count; `label` is its
/// accessible name. Only digits and fixed text are written.
pub(crate) fn svg(series: &[Series], label: &'static str) -> String {
    let buckets = series.first().map_or(0, |s| s.counts.len());
    let max = series
        .iter()
        .flat_map(|s| s.counts.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut out = format!(
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{label}" preserveAspectRatio="none">"#
    );
    let plot_h = HEIGHT - 2 * PAD;
    for step in 0..=4u64 {
        let y = PAD + plot_h * step / 4;
        let _ = write!(
            out,
            r#"<line class="grid" x1="0" y1="{y}" x2="{WIDTH}" y2="{y}"/>"#
        );
    }
    for (index, one) in series.iter().enumerate() {
        let mut points = String::new();
        for (i, count) in one.counts.iter().enumerate() {
            let x = if buckets > 1 {
                PAD + (WIDTH - 2 * PAD) * i as u64 / (buckets as u64 - 1)
            } else {
                WIDTH / 2
            };
            let y = PAD + plot_h - plot_h * count.min(&max) / max;
            let _ = write!(points, "{x},{y} ");
        }
        let _ = write!(
            out,
            r#"<polyline class="s{index}" fill="none" stroke-width="2" vector-effect="non-scaling-stroke" points="{}"/>"#,
            points.trim_end()
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn count(bucket: i64, kind: &str, n: u64) -> AuditCount {
        AuditCount {
            bucket,
            kind: kind.to_owned(),
            count: n,
        }
    }

    #[test]
    fn kinds_fold_into_their_series_per_bucket() {
        let counts = [
            count(0, "sign_in.success", 2),
            count(2, "sign_in.failure", 1),
            count(2, "sign_in.refused", 3),
            count(1, "token.refresh", 5),
            count(1, "token.issue", 1),
            count(9, "token.issue", 7),
            count(0, "consent.granted", 4),
        ];
        let series = series(&counts, 3);
        assert_eq!(series[0].counts, [2, 0, 0]);
        assert_eq!(series[1].counts, [0, 0, 4]);
        assert_eq!(
            series[2].counts,
            [0, 6, 0],
            "a bucket out of range is dropped"
        );
        assert_eq!(series[3].total, 0);
    }

    #[test]
    fn the_svg_holds_only_numbers_and_fixed_text() {
        let drawn = svg(
            &[rate_limited(vec![0, 5, 10]), rate_limited(vec![1, 1, 1])],
            "Security events",
        );
        assert!(drawn.starts_with("<svg ") && drawn.ends_with("</svg>"));
        assert_eq!(drawn.matches("<polyline").count(), 2);
        // The largest count reaches the top of the plot, zero its bottom.
        assert!(drawn.contains(r#"points="8,152 300,80 592,8""#), "{drawn}");
    }
}
