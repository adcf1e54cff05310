//! The last layer's self-attention on the CPU, for the [CLS] queries alone, with its products
//! reassociated so that no token's key or value is ever computed. Per sequence b and head h, with
//! q = W_q x_cls + b_q and the sequence's inputs x_j (rows of the layer's input, [len, D]):
//!
//! - scores: q_h . (W_k,h x_j + b_k,h) / sqrt(hd) = u_h . x_j + q_h . b_k,h / sqrt(hd), with
//!   u_h = W_k,h^T q_h / sqrt(hd) ([D]); the second term is the same for every key and cancels in
//!   the softmax;
//! - context: sum_j p_j (W_v,h x_j + b_v,h) = W_v,h y_h + b_v,h, with y_h = sum_j p_j x_j ([D]),
//!   since the probabilities p sum to 1.
//!
//! So the keys' and values' projections of every token (2 T D^2 multiply-adds for T tokens)
//! become products with one vector per (sequence, head): 2 B D^2 for u and ctx, 2 H T D for the
//! scores and y. For one text x 5 labels (T = 107, B = 5) at typeform's size that is 7.9 M
//! multiply-adds instead of 126 M, 3% of the forward's. The sums run in another order than the
//! keys-then-scores path, so results differ from it by rounding only (tests/kernels.rs).

use super::{CpuBackend, MatMut, MatRef, Packed, dims, gather, linear_inputs, matmul, softmax_row};
use crate::backend::dot;
use crate::error::{Error, Result};
use crate::weights::{Linear, Tensor, Values, dequantize_into};
use std::ops::Range;

/// Whether Linear weights are held [in, out] (natively, for gemm) rather than [out, in] (wasm):
/// see `CpuBackend::load_linear`.
const TRANSPOSED: bool = cfg!(not(target_arch = "wasm32"));

/// Sizes of one [CLS] attention: sequences, dim, heads, head size.
#[derive(Clone, Copy)]
struct Sizes {
    seqs: usize,
    dim: usize,
    heads: usize,
    hd: usize,
}

impl CpuBackend {
    /// `x` [T, D] the layer's input (the batch's real tokens), `w` the fused q | k | v Linear:
    /// the attention context of each sequence's [CLS] row, [B, D] (module doc).
    pub(super) fn cls_attention(&self, x: &Tensor, w: &Linear, input: &Packed, n_heads: usize) -> Result<Tensor> {
        let (rows, dim) = dims(x)?;
        let (w_rows, w_cols) = dims(&w.weight)?;
        let out = if TRANSPOSED { w_cols } else { w_rows };
        let shapes_agree = rows == input.rows() && out == 3 * dim && linear_inputs(&w.weight)? == dim;
        if !shapes_agree || dim == 0 || n_heads == 0 || dim % n_heads != 0 || w.bias.data()?.len() != out {
            return Err(Error::Backend("attention: x, q | k | v weight and batch shapes disagree".into()));
        }
        let s = Sizes { seqs: input.starts.len(), dim, heads: n_heads, hd: dim / n_heads };
        let x = x.data()?;
        let mut q = vec![0.0; s.seqs * dim]; // [B, D]
        self.affine(&gather(x, dim, &input.starts), s.seqs, dim, w, 0..dim, None, &mut q)?;
        let u = self.score_vectors(&q, w.weight.values(), s)?; // [H, B, D]
        let y = self.weighted_inputs(x, &u, input, s)?; // [B, H, D]
        let bias = &w.bias.data()?[2 * dim..];
        Ok(Tensor::from_vec(vec![s.seqs, dim], self.contexts(&y, (w.weight.values(), bias), s)?))
    }

    /// u[h][b] = W_k,h^T q[b]_h / sqrt(hd), per head over the threads: [H, B, D].
    fn score_vectors(&self, q: &[f32], w: Values, s: Sizes) -> Result<Vec<f32>> {
        let mut u = vec![0.0; s.heads * s.seqs * s.dim];
        let scale = 1.0 / (s.hd as f32).sqrt();
        self.for_parts(u.chunks_mut(s.seqs * s.dim).collect(), |h, u_h| {
            let mut scratch = Vec::new();
            let keys = s.dim + h * s.hd..s.dim + (h + 1) * s.hd;
            let w_k = output_weights(w, (s.dim, 3 * s.dim), keys, &mut scratch)?; // [hd, D]
            let q_h = MatRef { data: &q[h * s.hd..], row_stride: s.dim, col_stride: 1 }; // [B, hd]
            let u_h = MatMut { data: u_h, row_stride: s.dim, col_stride: 1 }; // [B, D]
            matmul(s.seqs, s.dim, s.hd, q_h, w_k, u_h, false, scale, gemm::Parallelism::None)
        })?;
        Ok(u)
    }

    /// y[b][h] = sum_j p_j x_j over sequence b's tokens, p = softmax_j(u[h][b] . x_j), per
    /// sequence over the threads: [B, H, D].
    fn weighted_inputs(&self, x: &[f32], u: &[f32], input: &Packed, s: Sizes) -> Result<Vec<f32>> {
        let mut y = vec![0.0; s.seqs * s.heads * s.dim];
        self.for_parts(y.chunks_mut(s.heads * s.dim).collect(), |b, y_b| {
            let (start, len) = (input.starts[b], input.lens[b]);
            let x_b = &x[start * s.dim..][..len * s.dim]; // [len, D]
            let mut p = vec![0.0; s.heads * len]; // [H, len]
            let u_b = MatRef { data: &u[b * s.dim..], row_stride: s.seqs * s.dim, col_stride: 1 }; // [H, D]
            let x_t = MatRef { data: x_b, row_stride: 1, col_stride: s.dim }; // [D, len]
            let scores = MatMut { data: &mut p, row_stride: len, col_stride: 1 };
            matmul(s.heads, len, s.dim, u_b, x_t, scores, false, 1.0, gemm::Parallelism::None)?;
            // Every key is a real token (the padding rows were left out): no mask to add.
            p.chunks_exact_mut(len).for_each(softmax_row);
            let p = MatRef { data: &p, row_stride: len, col_stride: 1 };
            let x_b = MatRef { data: x_b, row_stride: s.dim, col_stride: 1 };
            let y_b = MatMut { data: y_b, row_stride: s.dim, col_stride: 1 }; // [H, D]
            matmul(s.heads, s.dim, len, p, x_b, y_b, false, 1.0, gemm::Parallelism::None)
        })?;
        Ok(y)
    }

    /// ctx[b]_h = W_v,h y[b][h] + b_v,h, per head over the threads, then as rows: [B, D].
    fn contexts(&self, y: &[f32], (w, bias): (Values, &[f32]), s: Sizes) -> Result<Vec<f32>> {
        let mut c = vec![0.0; s.heads * s.seqs * s.hd]; // [H, B, hd]
        self.for_parts(c.chunks_mut(s.seqs * s.hd).collect(), |h, c_h| {
            let mut scratch = Vec::new();
            let values = 2 * s.dim + h * s.hd..2 * s.dim + (h + 1) * s.hd;
            let w_v = output_weights(w, (s.dim, 3 * s.dim), values, &mut scratch)?; // [hd, D]
            let w_v = MatRef { data: w_v.data, row_stride: w_v.col_stride, col_stride: w_v.row_stride }; // [D, hd]
            let y_h = MatRef { data: &y[h * s.dim..], row_stride: s.heads * s.dim, col_stride: 1 }; // [B, D]
            let c_h = MatMut { data: c_h, row_stride: s.hd, col_stride: 1 }; // [B, hd]
            matmul(s.seqs, s.hd, s.dim, y_h, w_v, c_h, false, 1.0, gemm::Parallelism::None)
        })?;
        let mut ctx = vec![0.0; s.seqs * s.dim];
        for (b, row) in ctx.chunks_exact_mut(s.dim).enumerate() {
            for (h, (row, bias)) in row.chunks_exact_mut(s.hd).zip(bias.chunks_exact(s.hd)).enumerate() {
                let c = &c[(h * s.seqs + b) * s.hd..][..s.hd];
                row.iter_mut().zip(c.iter().zip(bias)).for_each(|(o, (c, b))| *o = c + b);
            }
        }
        Ok(ctx)
    }
}

/// Outputs `outs` of a Linear weight (`inp` inputs, `out` outputs, held as `load_linear` keeps
/// it) as an f32 [outs.len(), inp] view: borrowed where f32 (natively a strided view of the
/// [in, out] transpose), dequantised into `scratch` where int8.
fn output_weights<'a>(
    w: Values<'a>,
    (inp, out): (usize, usize),
    outs: Range<usize>,
    scratch: &'a mut Vec<f32>,
) -> Result<MatRef<'a>> {
    let n = outs.len();
    let bad = || Error::Backend(format!("weight outputs {outs:?} of {out}: out of bounds or of another layout"));
    match (TRANSPOSED, w) {
        (true, Values::F32(w)) => {
            Ok(MatRef { data: w.get(outs.start..).ok_or_else(bad)?, row_stride: 1, col_stride: out })
        }
        // Only the native build holds int8 weights by column (`load_linear`).
        #[cfg(not(target_arch = "wasm32"))]
        (true, Values::Int8ByColumn { q, scales }) => {
            if outs.end > out || q.len() < inp * out || scales.len() < out {
                return Err(bad());
            }
            scratch.resize(inp * n, 0.0);
            super::dequantize_columns(q, out, outs.start, &scales[outs.clone()], scratch); // [in, n]
            Ok(MatRef { data: scratch, row_stride: 1, col_stride: n })
        }
        (false, w) => match dot::output_rows(w, inp, outs.clone())? {
            Values::F32(rows) => Ok(MatRef { data: rows, row_stride: inp, col_stride: 1 }),
            Values::Int8 { q, scales } => {
                scratch.resize(n * inp, 0.0);
                dequantize_into(q, scales, scratch);
                Ok(MatRef { data: scratch, row_stride: inp, col_stride: 1 })
            }
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}
