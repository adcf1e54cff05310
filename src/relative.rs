//! DeBERTa-v2's relative positions ("disentangled attention"), as data the shared forward reads.
//!
//! A DeBERTa attention score adds, to the content term `q_a . k_b`, a content-to-position term
//! `q_a . pos_key[d]` (c2p) and a position-to-content term `k_b . pos_query[d]` (p2c), where `d`
//! is the row of the relative-position embeddings for the distance `a - b`; the sum is scaled by
//! `1 / sqrt(head_dim * (1 + terms))`. `pos_key` and `pos_query` are each layer's projections of
//! those embeddings (its own key and query projections under `share_att_key`), which depend on the
//! weights only, so the forward computes them once. Distances go through transformers'
//! `make_log_bucket_position` (exact up to half the buckets, logarithmic beyond) and are clamped
//! to the table's `2 * span` rows; [`RelativeAttention::rows`] holds that map for every distance.

/// What a DeBERTa-v2 config says about its relative positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelativeAttention {
    /// `position_buckets`: distances past half of these are bucketed logarithmically; 0 for none.
    pub position_buckets: usize,
    /// `max_relative_positions` (or `max_position_embeddings` where that is below 1).
    pub max_relative_positions: usize,
    /// Whether the content-to-position (c2p) and position-to-content (p2c) terms are added.
    pub c2p: bool,
    pub p2c: bool,
    /// Whether the position projections are the layer's own query and key projections.
    pub share_att_key: bool,
    /// Whether the relative embeddings are LayerNorm'ed (`norm_rel_ebd` has `layer_norm`).
    pub norm_embeddings: bool,
}

impl RelativeAttention {
    /// transformers' `att_span`: the buckets, or the clamped distances, on each side of 0. The
    /// relative embeddings have twice as many rows.
    pub fn span(&self) -> usize {
        if self.position_buckets > 0 { self.position_buckets } else { self.max_relative_positions }
    }

    /// The terms added to the content scores (c2p, p2c): 0 to 2.
    pub fn terms(&self) -> usize {
        usize::from(self.c2p) + usize::from(self.p2c)
    }

    /// The multiplier of every score: `1 / sqrt(head_dim * (1 + terms))`.
    pub fn score_scale(&self, head_dim: usize) -> f32 {
        1.0 / ((head_dim * (1 + self.terms())) as f32).sqrt()
    }

    /// transformers' `make_log_bucket_position` for one distance (query minus key), in f32 as
    /// torch computes it, so that its `ceil` lands where torch's does.
    pub fn bucket(&self, distance: i64) -> i64 {
        let (buckets, max_position) = (self.position_buckets as i64, self.max_relative_positions as i64);
        if buckets <= 0 || max_position <= 0 {
            return distance;
        }
        let mid = buckets / 2;
        let abs = if distance < mid && distance > -mid { mid - 1 } else { distance.abs() };
        if abs <= mid {
            return distance;
        }
        // torch: abs / mid as f32, log((max_position - 1) / mid) from a Python float, both f32. The
        // config check keeps the ratio above 1; a saturating cast and sums keep any value finite.
        let ratio = ((max_position - 1) as f64 / mid as f64) as f32;
        let log = ((abs as f32 / mid as f32).ln() / ratio.ln() * (mid - 1) as f32).ceil();
        (log as i64).saturating_add(mid).saturating_mul(distance.signum())
    }

    /// The row of the relative embeddings for each distance from `-(max_tokens - 1)` to
    /// `max_tokens - 1` (index `distance + max_tokens - 1`): `clamp(bucket + span, 0, 2 span - 1)`,
    /// as f32 values (exact below 2^24) so that every backend holds it as a tensor.
    pub fn rows(&self, max_tokens: usize) -> Vec<f32> {
        let (span, last) = (self.span() as i64, 2 * self.span() as i64 - 1);
        let reach = max_tokens.saturating_sub(1) as i64;
        (-reach..=reach).map(|d| self.bucket(d).saturating_add(span).clamp(0, last) as f32).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v3() -> RelativeAttention {
        RelativeAttention {
            position_buckets: 256,
            max_relative_positions: 512,
            c2p: true,
            p2c: true,
            share_att_key: true,
            norm_embeddings: true,
        }
    }

    /// DeBERTa-v3's buckets: exact within 128, then logarithmic up to 255, odd in the distance.
    #[test]
    fn buckets_are_exact_near_zero_and_logarithmic_far_away() {
        let r = v3();
        assert_eq!((r.bucket(0), r.bucket(127), r.bucket(128), r.bucket(-128)), (0, 127, 128, -128));
        assert_eq!((r.bucket(511), r.bucket(-511)), (255, -255));
        assert!(r.bucket(5000) > 255, "past max_relative_positions the buckets go on (the rows clamp)");
        for d in 1..2000 {
            assert_eq!(r.bucket(-d), -r.bucket(d), "odd at {d}");
            assert!(r.bucket(d) >= r.bucket(d - 1), "monotonic at {d}");
        }
        let rows = r.rows(600);
        assert_eq!(rows.len(), 1199);
        assert_eq!((rows[599], rows[0], rows[1198]), (256.0, 0.0, 511.0), "0 -> span; the ends clamped");
    }
}
