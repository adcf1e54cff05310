//! The CPU backend: the browsers' fallback when there is no WebGPU, the native default, and the
//! reference the GPU kernels are tested against. Matmuls go through the `gemm` crate (blocked and
//! vectorised: AVX2/AVX-512 natively, simd128 on wasm); the rest is plain, numerically careful
//! loops (two-pass LayerNorm, max-subtracted softmax, exact erf GELU).

use super::{Backend, Batch, LAYER_NORM_EPS};
use crate::config::Activation;
use crate::error::{Error, Result};
use crate::weights::{Embeddings, LayerNorm, Linear, Tensor, Weights};

/// Runs DistilBERT on the CPU.
pub struct CpuBackend {
    /// Threads for matmuls (native only; the web has one).
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    threads: usize,
}

impl CpuBackend {
    /// A backend using `threads` threads for matmuls (1 on wasm, whatever is asked).
    pub fn new(threads: usize) -> Self {
        CpuBackend {
            threads: threads.max(1),
        }
    }

    fn parallelism(&self) -> gemm::Parallelism {
        #[cfg(not(target_arch = "wasm32"))]
        if self.threads > 1 {
            return gemm::Parallelism::Rayon(self.threads);
        }
        gemm::Parallelism::None
    }
}

impl Default for CpuBackend {
    /// One thread per available core natively, one on wasm.
    fn default() -> Self {
        #[cfg(not(target_arch = "wasm32"))]
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        #[cfg(target_arch = "wasm32")]
        let threads = 1;
        CpuBackend::new(threads)
    }
}

/// A strided view of a row-major or transposed matrix, for [`matmul`].
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    /// Elements between consecutive rows.
    pub row_stride: usize,
    /// Elements between consecutive columns.
    pub col_stride: usize,
}

impl MatRef<'_> {
    /// Whether a `rows x cols` matrix with these strides stays inside `data`.
    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.row_stride + (cols - 1) * self.col_stride < self.data.len()
    }
}

/// `c[m x n] = (accumulate ? c : 0) + scale * a[m x k] @ b[k x n]`; `c` has row stride `c_rs`.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef,
    b: MatRef,
    c: &mut [f32],
    c_rs: usize,
    accumulate: bool,
    scale: f32,
    parallelism: gemm::Parallelism,
) -> Result<()> {
    let c_fits = MatRef {
        data: c,
        row_stride: c_rs,
        col_stride: 1,
    }
    .fits(m, n);
    if !(a.fits(m, k) && b.fits(k, n) && c_fits) {
        return Err(Error::Backend(format!(
            "matmul {m}x{k} @ {k}x{n}: operand out of bounds"
        )));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    // SAFETY: every index the kernel touches, (i, j) -> i * rs + j * cs for i < rows and
    // j < cols, was checked against the slices' lengths above; `c` is borrowed mutably.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            c_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

/// Exact GELU, `x * Phi(x)`, as torch's default `gelu` (not the tanh approximation).
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// LayerNorm of one row in place: two passes (mean, then variance) for stability.
pub fn layer_norm_row(row: &mut [f32], gamma: &[f32], beta: &[f32]) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n;
    let inv = 1.0 / (var + LAYER_NORM_EPS).sqrt();
    for ((x, g), b) in row.iter_mut().zip(gamma).zip(beta) {
        *x = (*x - mean) * inv * g + b;
    }
}

/// Softmax of one row in place, max-subtracted so large scores cannot overflow.
pub fn softmax_row(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|x| *x *= inv);
}

/// The two dimensions of a 2-D tensor.
fn dims(t: &Tensor) -> Result<(usize, usize)> {
    match t.shape[..] {
        [rows, cols] => Ok((rows, cols)),
        _ => Err(Error::Backend(format!(
            "expected a 2-D tensor, got shape {:?}",
            t.shape
        ))),
    }
}

impl Backend for CpuBackend {
    type Tensor = Tensor;
    type Input = Batch;

    fn name(&self) -> &'static str {
        "cpu"
    }

    /// The CPU reads the loaded tensors as they are (F32 straight from the file bytes).
    fn load_weights(&mut self, weights: Weights) -> Result<Weights<Tensor>> {
        Ok(weights)
    }

    fn upload_batch(&mut self, batch: &Batch) -> Result<Batch> {
        Ok(batch.clone())
    }

    fn embed(&mut self, input: &Batch, emb: &Embeddings) -> Result<Tensor> {
        let (vocab, dim) = dims(&emb.word_embeddings)?;
        let max_pos = dims(&emb.position_embeddings)?.0;
        let (words, positions) = (emb.word_embeddings.data(), emb.position_embeddings.data());
        let mut out = vec![0.0; input.rows() * dim];
        for (t, (row, &id)) in out.chunks_exact_mut(dim).zip(&input.ids).enumerate() {
            let (id, pos) = (id as usize, t % input.seq.max(1));
            if id >= vocab || pos >= max_pos {
                return Err(Error::Backend(format!(
                    "token id {id} at position {pos} outside the embeddings"
                )));
            }
            let (w, p) = (&words[id * dim..(id + 1) * dim], &positions[pos * dim..(pos + 1) * dim]);
            row.iter_mut().zip(w.iter().zip(p)).for_each(|(o, (w, p))| *o = w + p);
            layer_norm_row(row, emb.layer_norm.weight.data(), emb.layer_norm.bias.data());
        }
        Ok(Tensor::from_vec(vec![input.rows(), dim], out))
    }

    fn linear(&mut self, x: &Tensor, w: &Linear, act: Option<Activation>) -> Result<Tensor> {
        let ((rows, inp), (out_dim, w_in)) = (dims(x)?, dims(&w.weight)?);
        if inp != w_in {
            return Err(Error::Backend(format!(
                "linear: input width {inp}, weight expects {w_in}"
            )));
        }
        // Start from the bias broadcast over rows, then accumulate x @ w^T into it.
        let mut out: Vec<f32> = w.bias.data().iter().copied().cycle().take(rows * out_dim).collect();
        let a = MatRef {
            data: x.data(),
            row_stride: inp,
            col_stride: 1,
        };
        let b = MatRef {
            data: w.weight.data(),
            row_stride: 1,
            col_stride: inp,
        }; // w^T: [in, out]
        matmul(
            rows,
            out_dim,
            inp,
            a,
            b,
            &mut out,
            out_dim,
            true,
            1.0,
            self.parallelism(),
        )?;
        match act {
            Some(Activation::Gelu) => out.iter_mut().for_each(|v| *v = gelu(*v)),
            Some(Activation::Relu) => out.iter_mut().for_each(|v| *v = v.max(0.0)),
            None => {}
        }
        Ok(Tensor::from_vec(vec![rows, out_dim], out))
    }

    fn attention(&mut self, q: &Tensor, k: &Tensor, v: &Tensor, input: &Batch, n_heads: usize) -> Result<Tensor> {
        let (rows, dim) = dims(q)?;
        if dims(k)? != (rows, dim) || dims(v)? != (rows, dim) || rows != input.rows() || dim % n_heads != 0 {
            return Err(Error::Backend("attention: q, k, v and batch shapes disagree".into()));
        }
        let (seq, hd) = (input.seq, dim / n_heads);
        let scale = 1.0 / (hd as f32).sqrt();
        let mut ctx = vec![0.0; rows * dim];
        let mut scores = vec![0.0; seq * seq]; // one (sequence, head) at a time: [seq, seq]
        for b in 0..input.batch {
            let bias = &input.key_bias[b * seq..(b + 1) * seq];
            for h in 0..n_heads {
                let at = b * seq * dim + h * hd; // this head's [seq, hd] slice, row stride dim
                let q_bh = MatRef {
                    data: &q.data()[at..],
                    row_stride: dim,
                    col_stride: 1,
                };
                let k_t = MatRef {
                    data: &k.data()[at..],
                    row_stride: 1,
                    col_stride: dim,
                }; // [hd, seq]
                matmul(
                    seq,
                    seq,
                    hd,
                    q_bh,
                    k_t,
                    &mut scores,
                    seq,
                    false,
                    scale,
                    gemm::Parallelism::None,
                )?;
                for row in scores.chunks_exact_mut(seq) {
                    row.iter_mut().zip(bias).for_each(|(s, m)| *s += m);
                    softmax_row(row);
                }
                let p = MatRef {
                    data: &scores,
                    row_stride: seq,
                    col_stride: 1,
                };
                let v_bh = MatRef {
                    data: &v.data()[at..],
                    row_stride: dim,
                    col_stride: 1,
                };
                matmul(
                    seq,
                    hd,
                    seq,
                    p,
                    v_bh,
                    &mut ctx[at..],
                    dim,
                    false,
                    1.0,
                    gemm::Parallelism::None,
                )?;
            }
        }
        Ok(Tensor::from_vec(vec![rows, dim], ctx))
    }

    fn add_layer_norm(&mut self, x: &Tensor, residual: &Tensor, ln: &LayerNorm) -> Result<Tensor> {
        let (rows, dim) = dims(x)?;
        if dims(residual)? != (rows, dim) {
            return Err(Error::Backend("add_layer_norm: x and residual shapes differ".into()));
        }
        let mut out: Vec<f32> = x.data().iter().zip(residual.data()).map(|(a, b)| a + b).collect();
        for row in out.chunks_exact_mut(dim) {
            layer_norm_row(row, ln.weight.data(), ln.bias.data());
        }
        Ok(Tensor::from_vec(vec![rows, dim], out))
    }

    fn cls_rows(&mut self, x: &Tensor, input: &Batch) -> Result<Tensor> {
        let (rows, dim) = dims(x)?;
        if rows != input.rows() {
            return Err(Error::Backend("cls_rows: tensor rows differ from the batch".into()));
        }
        let data = x.data();
        let out = (0..input.batch)
            .flat_map(|b| &data[b * input.seq * dim..][..dim])
            .copied()
            .collect();
        Ok(Tensor::from_vec(vec![input.batch, dim], out))
    }

    async fn read(&mut self, t: &Tensor) -> Result<Vec<f32>> {
        Ok(t.data().to_vec())
    }
}
