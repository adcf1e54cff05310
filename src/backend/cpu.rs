//! The CPU backend: the browsers' fallback when there is no WebGPU, the native default, and the
//! reference the GPU kernels are tested against. Natively the Linear matmuls go through the `gemm`
//! crate (AVX2/AVX-512, weights transposed at load); on wasm through [`super::dot`], our kernel on
//! the weights as loaded (fused multiply-add in the relaxed SIMD build). Attention's small
//! per-head products use gemm everywhere; the rest is plain, numerically careful loops (two-pass
//! LayerNorm, max-subtracted softmax, exact erf GELU). Matmuls (natively gemm's own split; on wasm
//! chunks of outputs, each with its bias and activation in one pass), attention by sequence,
//! activations and LayerNorm rows are spread over the threads where the build has them. A batch's
//! padding rows are never computed ([`Packed`]).

mod cls_attention;
mod relative_attention;

use relative_attention::{Distances, Head, Terms};

#[cfg(target_arch = "wasm32")]
use super::dot;
use super::{Backend, Batch, Positions, Queries};
use crate::config::Activation;
use crate::error::{Error, Result};
use crate::weights::{Embeddings, LayerNorm, Linear, Tensor, Values};
use std::borrow::Cow;
use std::ops::Range;

/// Fewest rows of a step worth a thread of their own (fewer are not worth waking it for).
const MIN_ROWS: usize = 8;
/// Fewest outputs per chunk when a wasm matmul's outputs are split over threads (low enough that
/// the test models' 16-wide layers are split too).
#[cfg(target_arch = "wasm32")]
const MIN_COLUMNS: usize = 8;
/// Output chunks per thread of a wasm matmul. At 2 threads with no other load, 8 took 0.96x the
/// time of 4, and one chunk per thread 1.07x the time of the rows split in two.
#[cfg(target_arch = "wasm32")]
const CHUNKS_PER_THREAD: usize = 8;

/// Runs the encoder on the CPU.
pub struct CpuBackend {
    /// Threads the matmuls are split across.
    threads: usize,
    /// Natively, a pool of exactly `threads` (the CLI's --threads); the wasm threads build uses
    /// the page's global pool (`initThreadPool`).
    #[cfg(not(target_arch = "wasm32"))]
    pool: Option<rayon::ThreadPool>,
}

impl CpuBackend {
    /// A backend splitting matmuls over `threads` threads: natively its own pool (one thread if
    /// the OS refuses more); in the wasm threads build the page's pool, which must have been
    /// started with that many (`initThreadPool`, see src/wasm.rs); the simd128 wasm build has one.
    pub fn new(threads: usize) -> Self {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let pool = (threads > 1).then(|| rayon::ThreadPoolBuilder::new().num_threads(threads).build().ok());
            let pool = pool.flatten();
            CpuBackend { threads: if pool.is_some() { threads } else { 1 }, pool }
        }
        #[cfg(all(target_arch = "wasm32", feature = "threads"))]
        return CpuBackend { threads: threads.max(1) };
        #[cfg(all(target_arch = "wasm32", not(feature = "threads")))]
        return {
            let _ = threads; // no threads in this build
            CpuBackend { threads: 1 }
        };
    }

    /// Threads the matmuls are split across.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// `c [rows, n] = act(x [rows, in] @ w + bias)` for the output columns `cols` of the Linear `w`
    /// (n = their count; all of them for [`Backend::linear`]; `w` as [`CpuBackend::load_linear`]
    /// keeps it) on this backend's threads. Natively gemm parallelises itself inside our pool (at
    /// 2 threads, splitting rows measured 78 vs 70 ms per text, splitting columns 63 vs 58), then the
    /// activation runs over the threads. On wasm, with several threads, the outputs are split
    /// ([`CpuBackend::affine_by_columns`]); with one, or too few outputs to split, it is one call.
    #[allow(clippy::too_many_arguments)]
    fn affine(
        &self,
        x: &[f32],
        rows: usize,
        inp: usize,
        w: &Linear,
        cols: Range<usize>,
        act: Option<Activation>,
        c: &mut [f32],
    ) -> Result<()> {
        let (all, out) = (w.bias.data()?, cols.len());
        let bias =
            all.get(cols.clone()).ok_or_else(|| Error::Backend(format!("Linear outputs {cols:?} of {}", all.len())))?;
        #[cfg(not(target_arch = "wasm32"))]
        {
            fill_rows(c, bias);
            let par = if self.threads > 1 { gemm::Parallelism::Rayon(self.threads) } else { gemm::Parallelism::None };
            self.in_pool(|| match w.weight.values() {
                Values::F32(w) => matmul_rows(x, (rows, inp), w, (all.len(), cols), c, par),
                Values::Int8ByColumn { q, scales } => {
                    matmul_rows_int8(x, (rows, inp), (q, scales), (all.len(), cols), c, self.threads)
                }
                Values::Int8 { .. } | Values::Stacked(_) | Values::F16(_) => {
                    Err(Error::Backend("a Linear weight reached gemm without load_linear's layout".into()))
                }
            })?;
            if act.is_none() {
                return Ok(()); // no pass over the threads for nothing
            }
            self.for_chunks(c, self.rows_per_thread(rows) * out, |_, c| {
                activate(act, c);
                Ok(())
            })
        }
        #[cfg(target_arch = "wasm32")]
        {
            let w = dot::output_rows(w.weight.values(), inp, cols)?; // [out, in], no copy
            if self.threads > 1 && out >= 2 * MIN_COLUMNS {
                return self.affine_by_columns((x, rows, inp), (w, bias), act, c);
            }
            matmul_nt_rows((x, rows, inp), (w, bias), act, c)
        }
    }

    /// [`CpuBackend::affine`] on several threads, wasm: the outputs in chunks of whole dot blocks,
    /// [`CHUNKS_PER_THREAD`] per thread, each taken by whichever thread is free and finished in a
    /// buffer of its own (bias, matmul, activation, while in cache), then copied into `c` (a range
    /// of `c`'s columns is not a slice). Each chunk streams its own rows of `w` once, so many
    /// chunks cost no more than one per thread, and a thread slowed by other work (the browser's,
    /// another tab's) takes fewer instead of holding up every step: at 2 threads with a process
    /// taking a third of a core, 0.93-0.98x the time of splitting the rows in two (four runs),
    /// the same without one (0.99-1.01x). Rows are never split, so the last layer's few [CLS]
    /// rows spread too.
    #[cfg(target_arch = "wasm32")]
    fn affine_by_columns(
        &self,
        (x, rows, inp): (&[f32], usize, usize),
        (w, bias): (Values, &[f32]),
        act: Option<Activation>,
        c: &mut [f32],
    ) -> Result<()> {
        let out = bias.len();
        let ranges = column_ranges(w, out, self.threads);
        let mut parts: Vec<Vec<f32>> = ranges.iter().map(|r| vec![0.0; rows * r.len()]).collect();
        self.for_parts(parts.iter_mut().map(|p| &mut p[..]).collect(), |i, part| {
            let cols = ranges[i].clone();
            let w = dot::output_rows(w, inp, cols.clone())?;
            matmul_nt_rows((x, rows, inp), (w, &bias[cols]), act, part)
        })?;
        for (cols, part) in ranges.iter().zip(&parts) {
            for (c_row, p_row) in c.chunks_exact_mut(out).zip(part.chunks_exact(cols.len().max(1))) {
                c_row[cols.clone()].copy_from_slice(p_row);
            }
        }
        Ok(())
    }

    /// `f(i, chunk)` for the `len`-long chunks of `data` (the last may be shorter), spread over
    /// this backend's threads where the build has them (natively; the wasm threads build).
    fn for_chunks<F>(&self, data: &mut [f32], len: usize, f: F) -> Result<()>
    where
        F: Fn(usize, &mut [f32]) -> Result<()> + Sync + Send,
    {
        self.for_parts(data.chunks_mut(len.max(1)).collect(), f)
    }

    /// `f(i, part)` for every part, spread over this backend's threads where the build has them.
    fn for_parts<F>(&self, parts: Vec<&mut [f32]>, f: F) -> Result<()>
    where
        F: Fn(usize, &mut [f32]) -> Result<()> + Sync + Send,
    {
        #[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
        if self.threads > 1 && parts.len() > 1 {
            use rayon::prelude::*;
            let run = || parts.into_par_iter().enumerate().try_for_each(|(i, p)| f(i, p));
            #[cfg(not(target_arch = "wasm32"))]
            return self.in_pool(run);
            #[cfg(target_arch = "wasm32")]
            return run();
        }
        parts.into_iter().enumerate().try_for_each(|(i, p)| f(i, p))
    }

    /// Rows per chunk so that `rows` split into one chunk per thread, of [`MIN_ROWS`] at least.
    fn rows_per_thread(&self, rows: usize) -> usize {
        rows.div_ceil(self.threads).max(MIN_ROWS)
    }

    /// Runs `f` inside this backend's pool, so rayon (gemm's) uses exactly its threads.
    #[cfg(not(target_arch = "wasm32"))]
    fn in_pool<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }
}

impl Default for CpuBackend {
    /// One thread per available core natively, one on wasm (the binding passes the pool's size).
    fn default() -> Self {
        #[cfg(not(target_arch = "wasm32"))]
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        #[cfg(target_arch = "wasm32")]
        let threads = 1;
        CpuBackend::new(threads)
    }
}

/// A strided view of a matrix (row-major, transposed, or a head's columns), for [`matmul`].
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    /// Elements between consecutive rows.
    pub row_stride: usize,
    /// Elements between consecutive columns.
    pub col_stride: usize,
}

/// The output of [`matmul`], strided like [`MatRef`].
pub struct MatMut<'a> {
    pub data: &'a mut [f32],
    pub row_stride: usize,
    pub col_stride: usize,
}

/// Whether a `rows x cols` matrix with these strides stays inside `len` elements.
fn fits(len: usize, rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> bool {
    rows == 0 || cols == 0 || (rows - 1) * row_stride + (cols - 1) * col_stride < len
}

/// `c[m x n] = (accumulate ? c : 0) + scale * a[m x k] @ b[k x n]`, any strides.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef,
    b: MatRef,
    c: MatMut,
    accumulate: bool,
    scale: f32,
    parallelism: gemm::Parallelism,
) -> Result<()> {
    let in_bounds = fits(a.data.len(), m, k, a.row_stride, a.col_stride)
        && fits(b.data.len(), k, n, b.row_stride, b.col_stride)
        && fits(c.data.len(), m, n, c.row_stride, c.col_stride);
    if !in_bounds {
        return Err(Error::Backend(format!("matmul {m}x{k} @ {k}x{n}: operand out of bounds")));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    // SAFETY: every index the kernel touches, (i, j) -> i * row_stride + j * col_stride within
    // each operand's shape, was checked against the slices' lengths above; `c` is borrowed mutably.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.data.as_mut_ptr(),
            c.col_stride as isize,
            c.row_stride as isize,
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

/// GELU in its erf form, `x * Phi(x)`, as torch's default `gelu` (not the tanh approximation).
#[inline]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// GELU's tanh approximation, as transformers' `gelu_new` and torch's `gelu(approximate="tanh")`.
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
}

/// erf for f32: a rational approximation (odd degree-13 over even degree-8 polynomial, the one
/// Eigen and XLA use), within 5e-7 of the true erf everywhere. No exp and no branch, so loops
/// over it vectorise; `shaders/erf.wgsl` evaluates the same polynomials, since WGSL has no erf.
#[inline]
pub fn erf(x: f32) -> f32 {
    const ALPHA: [f32; 7] = [
        -2.726_142_3e-10,
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906_3e-4,
        -2.9546e-3,
        -1.609_603_3e-2,
    ];
    const BETA: [f32; 5] = [-1.456_607_2e-5, -2.133_740_6e-4, -1.682_827e-3, -7.373_329e-3, -1.426_474e-2];
    // Beyond +-4, erf is +-1 in f32.
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = ALPHA[1..].iter().fold(ALPHA[0], |acc, &c| acc * x2 + c) * x;
    let q = BETA[1..].iter().fold(BETA[0], |acc, &c| acc * x2 + c);
    p / q
}

/// LayerNorm of one row in place: two passes (mean, then variance) for stability.
pub fn layer_norm_row(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = lane_sum(row, |x| x) / n;
    let var = lane_sum(row, |x| (x - mean) * (x - mean)) / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((x, g), b) in row.iter_mut().zip(gamma).zip(beta) {
        *x = (*x - mean) * inv * g + b;
    }
}

/// `sum(f(x))` over `values` in 8 interleaved partial sums. One running sum waits on each add
/// before the next (4 cycles apiece); 8 independent ones vectorise (f32x4 on wasm) and overlap.
fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = values.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().map(|&x| f(x)).sum();
    for chunk in chunks {
        lanes.iter_mut().zip(chunk).for_each(|(lane, &x)| *lane += f(x));
    }
    lanes.iter().sum::<f32>() + rest
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

/// The output chunks [`CpuBackend::affine_by_columns`] spreads over `threads`: about
/// [`CHUNKS_PER_THREAD`] each, of whole dot blocks, none across a stacked weight's parts (q | k |
/// v), as [`dot::output_rows`] takes them.
#[cfg(target_arch = "wasm32")]
fn column_ranges(w: Values, out: usize, threads: usize) -> Vec<Range<usize>> {
    let parts: Vec<Range<usize>> = match w {
        Values::Stacked(parts) => dot::part_starts(parts).windows(2).map(|s| s[0]..s[1]).collect(),
        _ => std::iter::once(0..out).collect(),
    };
    let per_chunk = out.div_ceil(threads.max(1) * CHUNKS_PER_THREAD).next_multiple_of(dot::DC).max(MIN_COLUMNS);
    let chunks = |part: Range<usize>| part.clone().step_by(per_chunk).map(move |j| j..(j + per_chunk).min(part.end));
    parts.into_iter().flat_map(chunks).collect()
}

/// `c [rows, n] = act(x [rows, inp] @ w^T + bias)` by the wasm dot kernel, `w` [n, inp] as loaded
/// (n = bias.len()): one thread's share of a Linear, finished while its rows are in cache.
#[cfg(target_arch = "wasm32")]
fn matmul_nt_rows(
    (x, rows, inp): (&[f32], usize, usize),
    (w, bias): (Values, &[f32]),
    act: Option<Activation>,
    c: &mut [f32],
) -> Result<()> {
    fill_rows(c, bias);
    dot::matmul_nt_then(rows, bias.len(), inp, (x, inp), w, (c, bias.len()), &|c| activate(act, c))
}

/// Every row of `c` set to `bias` (a Linear's output before its matmul accumulates).
fn fill_rows(c: &mut [f32], bias: &[f32]) {
    c.chunks_exact_mut(bias.len().max(1)).for_each(|row| row.copy_from_slice(bias));
}

/// A Linear's activation, in place.
fn activate(act: Option<Activation>, c: &mut [f32]) {
    match act {
        Some(Activation::Gelu) => c.iter_mut().for_each(|v| *v = gelu(*v)),
        Some(Activation::GeluTanh) => c.iter_mut().for_each(|v| *v = gelu_tanh(*v)),
        Some(Activation::Relu) => c.iter_mut().for_each(|v| *v = v.max(0.0)),
        Some(Activation::Tanh) => c.iter_mut().for_each(|v| *v = v.tanh()),
        None => {}
    }
}

/// An f32 [rows, cols] tensor as [cols, rows] (native Linear weights, for gemm).
#[cfg(not(target_arch = "wasm32"))]
fn transpose(t: &Tensor) -> Result<Tensor> {
    let (rows, cols) = dims(t)?;
    Ok(Tensor::from_vec(vec![cols, rows], transposed(t.data()?, rows, cols)))
}

/// `src` [rows, cols] -> [cols, rows], in cache-sized tiles: f32 and int8 weights alike.
#[cfg(not(target_arch = "wasm32"))]
fn transposed<T: Copy + Default>(src: &[T], rows: usize, cols: usize) -> Vec<T> {
    const TILE: usize = 32;
    let mut dst = vec![T::default(); rows * cols];
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            let c1 = (c0 + TILE).min(cols);
            for r in r0..(r0 + TILE).min(rows) {
                let src_row = &src[r * cols + c0..r * cols + c1];
                for (v, out) in src_row.iter().zip(dst[c0 * rows + r..].iter_mut().step_by(rows)) {
                    *out = *v;
                }
            }
        }
    }
    dst
}

/// An int8 [out, in] weight as [in, out] int8, its per-output scales one per column.
#[cfg(not(target_arch = "wasm32"))]
fn transpose_int8(t: &Tensor) -> Result<Tensor> {
    let (rows, cols) = dims(t)?;
    let Values::Int8 { q, scales } = t.values() else {
        return Err(Error::Backend("transpose_int8: not an int8 tensor".into()));
    };
    Ok(Tensor::from_int8_by_column(vec![cols, rows], transposed(q, rows, cols), scales.to_vec()))
}

/// `c [rows, n] += x [rows, in] @ w[:, cols]` through gemm, `w` the [in, out] transpose of a
/// Linear weight and `cols` n of its `out` columns (a strided view: no copy).
#[cfg(not(target_arch = "wasm32"))]
fn matmul_rows(
    x: &[f32],
    (rows, inp): (usize, usize),
    w: &[f32],
    (out, cols): (usize, Range<usize>),
    c: &mut [f32],
    par: gemm::Parallelism,
) -> Result<()> {
    let w = w.get(cols.start..).filter(|_| cols.end <= out);
    let w = w.ok_or_else(|| Error::Backend(format!("matmul: columns {cols:?} of {out}")))?;
    let a = MatRef { data: x, row_stride: inp, col_stride: 1 };
    let b = MatRef { data: w, row_stride: out, col_stride: 1 };
    let c = MatMut { data: c, row_stride: cols.len(), col_stride: 1 };
    matmul(rows, cols.len(), inp, a, b, c, true, 1.0, par)
}

/// Most output columns dequantised per gemm call in [`matmul_rows_int8`]: a [3072, 64] f32
/// panel is 768 KB for typeform's FFN, within L2. Measured per forward against fp32 (one text x
/// 5 labels, 1 thread): 32 columns 1.34-1.37x, 64 1.03-1.10x, 256 1.13-1.22x.
#[cfg(not(target_arch = "wasm32"))]
const INT8_PANEL: usize = 64;

/// `c [rows, n] += x [rows, in] @ w[:, cols]` for an int8 `w` kept transposed, [in, out], with a
/// scale per output column, and n of its columns: panels of those columns are dequantised into
/// f32 scratch laid out as the fp32 path's weights ([in, cols], rows contiguous) and multiplied
/// by gemm; the panels, as many per thread, are spread over the pool, each with its own output.
/// gemm takes no int8, so the weights stay int8 in memory (a quarter of f32) at one conversion
/// per call. Each thread reuses one scratch panel (a fresh zeroed one per panel costs as much as
/// the conversion).
#[cfg(not(target_arch = "wasm32"))]
fn matmul_rows_int8(
    x: &[f32],
    (rows, inp): (usize, usize),
    (q, scales): (&[i8], &[f32]),
    (out, wanted): (usize, Range<usize>),
    c: &mut [f32],
    threads: usize,
) -> Result<()> {
    use rayon::prelude::*;
    let n = wanted.len();
    if q.len() != out * inp || scales.len() != out || wanted.end > out || x.len() < rows * inp || c.len() < rows * n {
        return Err(Error::Backend(format!("int8 matmul {rows}x{inp} @ ({inp}x{out})[{wanted:?}]: out of bounds")));
    }
    let per_thread = n.div_ceil(threads * INT8_PANEL);
    let panel = n.div_ceil(threads * per_thread).next_multiple_of(16).max(1);
    let product = |w: &mut Vec<f32>, j: usize| -> Result<Vec<f32>> {
        let cols = panel.min(wanted.end - j);
        w.resize(inp * cols, 0.0); // once per thread: every element is overwritten below
        dequantize_columns(q, out, j, &scales[j..j + cols], w);
        let mut part = vec![0.0; rows * cols];
        let a = MatRef { data: x, row_stride: inp, col_stride: 1 };
        let b = MatRef { data: w, row_stride: cols, col_stride: 1 };
        let p = MatMut { data: &mut part, row_stride: cols, col_stride: 1 };
        matmul(rows, cols, inp, a, b, p, false, 1.0, gemm::Parallelism::None)?;
        Ok(part)
    };
    let starts: Vec<usize> = wanted.clone().step_by(panel).collect();
    let parts: Vec<Vec<f32>> = if threads > 1 {
        starts.par_iter().map_init(Vec::new, |w, &j| product(w, j)).collect::<Result<_>>()?
    } else {
        let mut w = Vec::new();
        starts.iter().map(|&j| product(&mut w, j)).collect::<Result<_>>()?
    };
    for (&j, part) in starts.iter().zip(&parts) {
        let (cols, at) = (panel.min(wanted.end - j), j - wanted.start);
        for (c_row, p_row) in c.chunks_exact_mut(n.max(1)).zip(part.chunks_exact(cols)) {
            c_row[at..at + cols].iter_mut().zip(p_row).for_each(|(c, p)| *c += p);
        }
    }
    Ok(())
}

/// `dst` [in, cols] = the int8 `q` [in, out]'s columns `j..j + cols` times their `scales`. With
/// AVX2 where the CPU has it: the crate is built for baseline x86-64 (SSE2), whose i8 -> f32
/// conversion takes several instructions per 4 values (AVX2: `vpmovsxbd` + `vcvtdq2ps`, 8 at once).
#[cfg(not(target_arch = "wasm32"))]
fn dequantize_columns(q: &[i8], out: usize, j: usize, scales: &[f32], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { dequantize_columns_avx2(q, out, j, scales, dst) };
    }
    dequantize_columns_portable(q, out, j, scales, dst)
}

/// [`dequantize_columns`]' loop, compiled for AVX2 (the caller checked the CPU has it).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dequantize_columns_avx2(q: &[i8], out: usize, j: usize, scales: &[f32], dst: &mut [f32]) {
    dequantize_columns_portable(q, out, j, scales, dst)
}

/// `dst[t][c] = q[t][j + c] * scales[c]`, row by row (inlined, so each caller's features apply).
/// The caller checked `q` is [in, out] and `j + cols <= out`.
#[cfg(not(target_arch = "wasm32"))]
#[inline(always)]
fn dequantize_columns_portable(q: &[i8], out: usize, j: usize, scales: &[f32], dst: &mut [f32]) {
    let cols = scales.len();
    for (dst, src) in dst.chunks_exact_mut(cols.max(1)).zip(q.chunks_exact(out.max(1))) {
        let src = &src[j..j + cols];
        dst.iter_mut().zip(src.iter().zip(scales)).for_each(|(d, (&v, &s))| *d = f32::from(v) * s);
    }
}

/// Rows `rows` of `data` ([.., dim]), in that order: borrowed when they are all of them.
fn gather<'a>(data: &'a [f32], dim: usize, rows: &[usize]) -> Cow<'a, [f32]> {
    if rows.iter().enumerate().all(|(i, &r)| i == r) && rows.len() * dim == data.len() {
        return Cow::Borrowed(data);
    }
    Cow::Owned(rows.iter().flat_map(|&r| &data[r * dim..][..dim]).copied().collect())
}

/// Inputs of a Linear weight as [`CpuBackend::load_linear`] keeps it: natively [in, out], on
/// wasm [out, in].
fn linear_inputs(w: &Tensor) -> Result<usize> {
    let (rows, cols) = dims(w)?;
    Ok(if cfg!(target_arch = "wasm32") { cols } else { rows })
}

/// The two dimensions of a 2-D tensor.
fn dims(t: &Tensor) -> Result<(usize, usize)> {
    match t.shape[..] {
        [rows, cols] => Ok((rows, cols)),
        _ => Err(Error::Backend(format!("expected a 2-D tensor, got shape {:?}", t.shape))),
    }
}

/// Word embedding `id` ([dim], f32 or an int8 row times its scale) into `row`.
fn word_row(words: Values, id: usize, row: &mut [f32]) -> Result<()> {
    let dim = row.len();
    match words {
        Values::F32(words) => row.copy_from_slice(&words[id * dim..][..dim]),
        Values::Int8 { q, scales } => {
            let (w, s) = (&q[id * dim..][..dim], scales[id]);
            row.iter_mut().zip(w).for_each(|(o, &w)| *o = f32::from(w) * s);
        }
        Values::F16(halves) => {
            let halves = &halves[id * dim * 2..][..dim * 2];
            row.iter_mut()
                .zip(halves.chunks_exact(2))
                .for_each(|(o, h)| *o = half::f16::from_le_bytes([h[0], h[1]]).to_f32());
        }
        Values::Stacked(_) | Values::Int8ByColumn { .. } => {
            return Err(Error::Backend("word embeddings held as a Linear weight".into()));
        }
    }
    Ok(())
}

/// Query rows whose attention scores are held at once, per thread and head.
const QUERY_BLOCK: usize = 256;

/// One sequence's attention, head by head, into `ctx` ([nq, dim]: every token's or its [CLS]
/// row's context): `len` tokens from `head(h)`'s place in the fused q | k | v, with DeBERTa's
/// relative terms where `positions` has them.
fn attend(
    qkv: &[f32],
    (len, n_heads): (usize, usize),
    head: impl Fn(usize) -> Head,
    positions: Option<&Positions<Tensor>>,
    ctx: &mut [f32],
) -> Result<()> {
    let Head { width, dim, hd, .. } = head(0);
    let nq = ctx.len() / dim;
    let scale = positions.map_or(1.0 / (hd as f32).sqrt(), |p| p.scale);
    let distances = positions.map(|p| Distances::new(p, len, nq)).transpose()?;
    // Scores for one head and a block of queries at a time: [QUERY_BLOCK, len] at most, 8 MB for
    // an 8192-token text where [len, len] would be 256 MB.
    let mut scores = vec![0.0; nq.min(QUERY_BLOCK) * len];
    for h in 0..n_heads {
        let at = head(h).first + head(h).column; // this head's q; its k at +dim, v at +2*dim
        let terms = match (positions, &distances) {
            (Some(p), Some(d)) => Some(Terms::new(qkv, head(h), p, d)?),
            _ => None,
        };
        for q0 in (0..nq).step_by(QUERY_BLOCK) {
            let rows = (nq - q0).min(QUERY_BLOCK);
            let q_bh = MatRef { data: &qkv[at + q0 * width..], row_stride: width, col_stride: 1 };
            let k_t = MatRef { data: &qkv[at + dim..], row_stride: 1, col_stride: width }; // [hd, len]
            let block = &mut scores[..rows * len];
            let s = MatMut { data: block, row_stride: len, col_stride: 1 };
            matmul(rows, len, hd, q_bh, k_t, s, false, scale, gemm::Parallelism::None)?;
            if let Some(terms) = &terms {
                terms.add(&mut scores[..rows * len], q0)?;
            }
            // Every key is a real token (the padding rows were left out): no mask to add.
            scores[..rows * len].chunks_exact_mut(len).for_each(softmax_row);
            let p = MatRef { data: &scores, row_stride: len, col_stride: 1 };
            let v_bh = MatRef { data: &qkv[at + 2 * dim..], row_stride: width, col_stride: 1 };
            let c = MatMut { data: &mut ctx[q0 * dim + head(h).column..], row_stride: dim, col_stride: 1 };
            matmul(rows, hd, len, p, v_bh, c, false, 1.0, gemm::Parallelism::None)?;
        }
    }
    Ok(())
}

/// A batch as the CPU backend runs it: without its padding rows, which no real token reads
/// (attention masks them) and the classifier never sees, so no kernel computes them. Sequence
/// `b`'s tokens are rows `starts[b]..starts[b] + lens[b]` of every activation, its [CLS] row
/// `starts[b]`: [T, D] with T = the sum of `lens`, where the padded batch has [B*L, D].
pub struct Packed {
    batch: Batch,
    lens: Vec<usize>,
    starts: Vec<usize>,
}

impl Packed {
    fn new(batch: &Batch) -> Result<Packed> {
        let lens = batch.lengths();
        if lens.contains(&0) {
            return Err(Error::Backend("a sequence of the batch attends to no token".into()));
        }
        let starts = lens.iter().scan(0, |at, len| Some(std::mem::replace(at, *at + len))).collect();
        Ok(Packed { batch: batch.clone(), lens, starts })
    }

    /// Token rows held: T.
    fn rows(&self) -> usize {
        self.lens.iter().sum()
    }

    /// For every row of `x` ([T, dim]), the first row holding the same values at the same
    /// position of the sequence before (itself where none does). Where a batch's sequences share
    /// their first tokens (one text paired with every label), their embeddings are equal bit for
    /// bit, so those rows' projections need computing once. After the first attention no row
    /// repeats, and the comparison stops at its first value.
    fn repeats(&self, x: &[f32], dim: usize) -> Vec<usize> {
        let mut source: Vec<usize> = (0..self.rows()).collect();
        let same = |a: usize, b: usize| {
            let (a, b) = (&x[a * dim..][..dim], &x[b * dim..][..dim]);
            a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits())
        };
        for b in 1..self.lens.len() {
            let (prev, here) = (self.starts[b - 1], self.starts[b]);
            for t in 0..self.lens[b].min(self.lens[b - 1]) {
                if !same(prev + t, here + t) {
                    break; // the shared first tokens end here
                }
                source[here + t] = source[prev + t];
            }
        }
        source
    }

    /// `data` ([T, width]) split into one part per sequence.
    fn parts<'a>(&self, mut data: &'a mut [f32], width: usize) -> Vec<&'a mut [f32]> {
        let mut parts = Vec::with_capacity(self.lens.len());
        for len in &self.lens {
            let n = (len * width).min(data.len());
            let (part, rest) = std::mem::take(&mut data).split_at_mut(n);
            parts.push(part);
            data = rest;
        }
        parts
    }
}

impl Backend for CpuBackend {
    type Tensor = Tensor;
    type Input = Packed;

    fn name(&self) -> &'static str {
        "cpu"
    }

    fn load_tensor(&mut self, t: Tensor) -> Result<Tensor> {
        Ok(t) // read as loaded: F32 straight from the file bytes
    }

    /// Natively Linear weights are stored transposed, [in, out] (int8 ones as int8, with a scale
    /// per column), so that gemm streams them without the per-call repacking an [out, in] layout
    /// costs it (~30% of a short forward), and q | k | v is joined into one matrix;
    /// [`matmul_rows_int8`] dequantises panels of int8 ones. On wasm they stay as loaded,
    /// [out, in] and borrowed from the file: [`dot`] reads them so (q | k | v part by part).
    fn load_linear(&mut self, l: Linear) -> Result<Linear> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let weight = l.weight.joined();
            if weight.is_int8() {
                return Ok(Linear { weight: transpose_int8(&weight)?, bias: l.bias });
            }
            Ok(Linear { weight: transpose(&weight)?, bias: l.bias })
        }
        #[cfg(target_arch = "wasm32")]
        Ok(l)
    }

    /// Padding rows are never computed here (see [`Packed`]): a forward may carry any number.
    fn padding_allowance(&self) -> usize {
        usize::MAX
    }

    fn upload_batch(&mut self, batch: &Batch) -> Result<Packed> {
        Packed::new(batch)
    }

    /// `LayerNorm((word[id] + token_type[type]) + position[first_position + t])`, summed in BERT's
    /// order (DeBERTa's is (word + position) + type: the same sum but for rounding, where a model
    /// has both), no position where the model has none, DeBERTa's `embed_proj` on the sum before
    /// the LayerNorm where its embeddings are narrower.
    fn embed(&mut self, input: &Packed, emb: &Embeddings) -> Result<Tensor> {
        let (vocab, width) = dims(&emb.word_embeddings)?;
        let (n_types, types) = (dims(&emb.token_type_embeddings)?.0, emb.token_type_embeddings.data()?);
        let positions =
            emb.position_embeddings.as_ref().map(|p| Ok::<_, Error>((dims(p)?.0, p.data()?))).transpose()?;
        let mut out = vec![0.0; input.rows() * width];
        // (sequence, token) of every row held: the padding left out.
        let tokens = input.lens.iter().enumerate().flat_map(|(b, &len)| (0..len).map(move |t| (b, t)));
        let batch = &input.batch;
        for (row, (b, t)) in out.chunks_exact_mut(width).zip(tokens) {
            let (id, kind) = (batch.ids[b * batch.seq + t] as usize, batch.type_ids[b * batch.seq + t] as usize);
            let pos = batch.first_position + t;
            if id >= vocab || kind >= n_types || positions.is_some_and(|(max_pos, _)| pos >= max_pos) {
                return Err(Error::Backend(format!(
                    "token id {id} of type {kind} at position {pos} outside the embeddings"
                )));
            }
            word_row(emb.word_embeddings.values(), id, row)?;
            let k = &types[kind * width..][..width];
            match positions {
                Some((_, p)) => {
                    let p = &p[pos * width..][..width];
                    row.iter_mut().zip(k.iter().zip(p)).for_each(|(o, (k, p))| *o = (*o + k) + p);
                }
                None => row.iter_mut().zip(k).for_each(|(o, k)| *o += k),
            }
        }
        let sums = Tensor::from_vec(vec![input.rows(), width], out); // [T, E]
        match &emb.projection {
            Some(projection) => {
                let projected = self.linear(&sums, projection, None)?; // [T, D]
                self.layer_norm(&projected, &emb.layer_norm)
            }
            None => self.layer_norm(&sums, &emb.layer_norm),
        }
    }

    fn linear(&mut self, x: &Tensor, w: &Linear, act: Option<Activation>) -> Result<Tensor> {
        let (rows, inp) = dims(x)?;
        let (bias, w_in) = (w.bias.data()?, linear_inputs(&w.weight)?);
        let out_dim = bias.len();
        if inp != w_in {
            return Err(Error::Backend(format!("linear: input width {inp}, weight expects {w_in}")));
        }
        let mut out = vec![0.0; rows * out_dim];
        self.affine(x.data()?, rows, inp, w, 0..out_dim, act, &mut out)?;
        Ok(Tensor::from_vec(vec![rows, out_dim], out))
    }

    /// The rows that repeat an earlier sequence's (layer 0, one text paired with several labels:
    /// the text's tokens) are computed once and copied. For one text x 5 labels (107 rows, 35 of
    /// them unique in layer 0) that is 3.3% of the forward's FLOPs. Every row's q is computed:
    /// with [`Queries::Cls`] the forward runs [`CpuBackend::cls_attention`] instead.
    fn qkv(&mut self, x: &Tensor, w: &Linear, input: &Packed, _queries: Queries) -> Result<Tensor> {
        let (rows, dim) = dims(x)?;
        let (data, width) = (x.data()?, w.bias.data()?.len());
        if rows != input.rows() || width != 3 * dim || linear_inputs(&w.weight)? != dim {
            return Err(Error::Backend("qkv: x, weight and batch shapes disagree".into()));
        }
        let source = input.repeats(data, dim);
        let unique: Vec<usize> = (0..rows).filter(|&r| source[r] == r).collect();
        if unique.len() == rows {
            return self.linear(x, w, None); // nothing to leave out
        }
        let mut y = vec![0.0; unique.len() * width]; // [U, 3D]
        self.affine(&gather(data, dim, &unique), unique.len(), dim, w, 0..width, None, &mut y)?;
        let mut out = vec![0.0; rows * width];
        let mut at = vec![0; rows]; // row -> its row in y
        unique.iter().enumerate().for_each(|(i, &r)| at[r] = i);
        for (r, row) in out.chunks_exact_mut(width).enumerate() {
            row.copy_from_slice(&y[at[source[r]] * width..][..width]);
        }
        Ok(Tensor::from_vec(vec![rows, width], out))
    }

    /// With [`Queries::Cls`] (the last layer) [`CpuBackend::cls_attention`], which computes no
    /// key or value. Measured on the full-size model, one text x 5 labels, against the keys and
    /// values of every token then attention (Chromium 156, relaxed build, the two interleaved in
    /// one page): 0.975x the time at 1 thread, 0.99x at 2.
    /// DeBERTa's relative terms need every key: its last layer takes the q | k | v path.
    fn self_attention(
        &mut self,
        x: &Tensor,
        w: &Linear,
        positions: Option<Positions<Tensor>>,
        input: &Packed,
        n_heads: usize,
        queries: Queries,
    ) -> Result<Tensor> {
        if queries == Queries::Cls && positions.is_none() {
            return self.cls_attention(x, w, input, n_heads);
        }
        let qkv = self.qkv(x, w, input, queries)?;
        self.attention(&qkv, positions, input, n_heads, queries)
    }

    fn attention(
        &mut self,
        qkv: &Tensor,
        positions: Option<Positions<Tensor>>,
        input: &Packed,
        n_heads: usize,
        queries: Queries,
    ) -> Result<Tensor> {
        let (rows, width) = dims(qkv)?;
        let dim = width / 3;
        if rows != input.rows() || !width.is_multiple_of(3) || n_heads == 0 || dim % n_heads != 0 {
            return Err(Error::Backend("attention: qkv and batch shapes disagree".into()));
        }
        let qkv = qkv.data()?;
        let ctx_rows = if queries == Queries::All { rows } else { input.lens.len() };
        let mut ctx = vec![0.0; ctx_rows * dim];
        let parts = match queries {
            Queries::All => input.parts(&mut ctx, dim),
            Queries::Cls => ctx.chunks_mut(dim).collect(),
        };
        // One sequence per part of ctx ([nq, dim]: its tokens, or its [CLS] row), over the threads.
        self.for_parts(parts, |b, ctx| {
            let head = |h: usize| Head {
                first: input.starts[b] * width,
                column: h * (dim / n_heads),
                width,
                dim,
                hd: dim / n_heads,
            };
            attend(qkv, (input.lens[b], n_heads), head, positions.as_ref(), ctx)
        })?;
        Ok(Tensor::from_vec(vec![ctx_rows, dim], ctx))
    }

    fn layer_norm(&mut self, x: &Tensor, ln: &LayerNorm) -> Result<Tensor> {
        let (rows, dim) = dims(x)?;
        let (gamma, beta) = (ln.weight.data()?, ln.bias.data()?);
        if gamma.len() != dim || beta.len() != dim {
            return Err(Error::Backend(format!("layer_norm: rows of {dim}, LayerNorm of {}", gamma.len())));
        }
        let mut out = x.data()?.to_vec();
        self.for_chunks(&mut out, self.rows_per_thread(rows) * dim, |_, chunk| {
            chunk.chunks_exact_mut(dim.max(1)).for_each(|row| layer_norm_row(row, gamma, beta, ln.eps));
            Ok(())
        })?;
        Ok(Tensor::from_vec(vec![rows, dim], out))
    }

    fn add_layer_norm(&mut self, x: &Tensor, residual: &Tensor, ln: &LayerNorm) -> Result<Tensor> {
        let (rows, dim) = dims(x)?;
        if dims(residual)? != (rows, dim) {
            return Err(Error::Backend("add_layer_norm: x and residual shapes differ".into()));
        }
        let (residual, gamma, beta) = (residual.data()?, ln.weight.data()?, ln.bias.data()?);
        let mut out = x.data()?.to_vec();
        let per_chunk = self.rows_per_thread(rows) * dim;
        self.for_chunks(&mut out, per_chunk, |i, chunk| {
            let residual = &residual[i * per_chunk..][..chunk.len()];
            for (row, res) in chunk.chunks_exact_mut(dim).zip(residual.chunks_exact(dim)) {
                row.iter_mut().zip(res).for_each(|(x, r)| *x += r);
                layer_norm_row(row, gamma, beta, ln.eps);
            }
            Ok(())
        })?;
        Ok(Tensor::from_vec(vec![rows, dim], out))
    }

    fn cls_rows(&mut self, x: &Tensor, input: &Packed) -> Result<Tensor> {
        let (rows, dim) = dims(x)?;
        if rows != input.rows() {
            return Err(Error::Backend("cls_rows: tensor rows differ from the batch".into()));
        }
        let out = gather(x.data()?, dim, &input.starts).into_owned();
        Ok(Tensor::from_vec(vec![input.starts.len(), dim], out))
    }

    async fn read(&mut self, t: &Tensor) -> Result<Vec<f32>> {
        Ok(t.data()?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf against values computed to double precision (scipy.special.erf).
    #[test]
    fn erf_is_within_5e7_of_the_true_value() {
        let cases = [
            (0.0, 0.0),
            (0.1, 0.112_462_916_018_284_9),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (-1.5, -0.966_105_146_475_310_7),
            (2.0, 0.995_322_265_018_952_7),
            (3.5, 0.999_999_256_901_627_7),
            (-6.0, -1.0),
            (30.0, 1.0),
        ];
        for (x, want) in cases {
            let got = erf(x as f32) as f64;
            assert!((got - want).abs() < 5e-7, "erf({x}): actual {got}, expected {want}");
        }
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-6, "gelu(1) = {}", gelu(1.0));
    }

    /// A batch's padding rows are left out: sequence b's tokens follow sequence b-1's.
    #[test]
    fn padding_rows_are_left_out_and_empty_sequences_refused() {
        let p = Packed::new(&Batch::pad(&[vec![1, 2, 3], vec![4], vec![5, 6]])).unwrap();
        assert_eq!((&p.lens[..], &p.starts[..], p.rows()), (&[3, 1, 2][..], &[0, 3, 4][..], 6));
        let mut data: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let parts: Vec<Vec<f32>> = p.parts(&mut data, 2).into_iter().map(|part| part.to_vec()).collect();
        assert_eq!(parts, [vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0], vec![6.0, 7.0], vec![8.0, 9.0, 10.0, 11.0]]);
        let err = Packed::new(&Batch::pad(&[vec![1], vec![]])).err().expect("an empty sequence is refused");
        assert!(err.to_string().contains("no token"), "{err}");
    }

    /// Rows equal to the previous sequence's row at the same position, from the first token on,
    /// point to the first such row; the run ends at the first difference (even if later rows match).
    #[test]
    fn repeated_first_rows_are_found() {
        let p = Packed::new(&Batch::pad(&[vec![1, 2, 3], vec![1, 2, 4, 5], vec![1, 2, 4], vec![9, 2]])).unwrap();
        // One value per row: the token id, except row 6 (sequence 1's 3rd token), which differs.
        let x = [1.0, 2.0, 3.0, 1.0, 2.0, 4.0, 5.0, 1.0, 2.0, 4.0, 9.0, 2.0];
        assert_eq!(p.repeats(&x, 1), [0, 1, 2, 0, 1, 5, 6, 0, 1, 5, 10, 11]);
        assert_eq!(p.repeats(&[-0.0; 12], 1)[..4], [0, 1, 2, 0], "equal bits, not equal values");
        let mut signed = [0.0; 12];
        signed[3] = -0.0;
        assert_eq!(p.repeats(&signed, 1)[3..5], [3, 4], "-0 is not +0: the run ends at once");
    }

    #[test]
    fn transpose_moves_every_element() {
        let (rows, cols) = (37, 70); // odd, and not multiples of the tile
        let t = Tensor::from_vec(vec![rows, cols], (0..rows * cols).map(|i| i as f32).collect());
        let tt = transpose(&t).unwrap();
        assert_eq!(tt.shape, vec![cols, rows]);
        for r in 0..rows {
            for c in 0..cols {
                assert_eq!(tt.data().unwrap()[c * rows + r], t.data().unwrap()[r * cols + c], "({r}, {c})");
            }
        }
    }
}
