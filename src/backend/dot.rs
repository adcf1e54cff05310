//! The browser build's matmul kernel, `x @ w^T` straight from the checkpoint's [out, in] Linear
//! weights (borrowed from the model file's bytes: no packed copy, so the wasm memory holds the
//! model about once).
//!
//! Why our own kernel on wasm: `gemm`'s simd128 kernels compute a multiply-add as an add of a
//! multiply and cannot use relaxed SIMD's fused `f32x4.relaxed_madd`, and gemm wants the weight
//! transposed or repacked. Each output is a dot product of two contiguous rows; a block of
//! [`DR`] x [`DC`] outputs keeps DR * DC 4-lane accumulators in registers and shares every load
//! (DR + DC loads per DR * DC multiply-adds). Built with `+relaxed-simd` each multiply-add is one
//! FMA, else `f32x4.mul` + `f32x4.add`. Natively the same loops run on a portable 4-lane type,
//! so `cargo test` checks the blocking and edge handling that the browser tests check end to end.
//!
//! The loop order is the classic GEMM blocking without a packed copy: `w`'s rows in panels of about
//! [`PANEL_BYTES`] (L2), each passed by every block of DR rows of `a` (L1), rather than all rows of
//! `a` streamed (from L2) past each few `w` rows. typeform's two inner sizes, 768 and 3072, get
//! loops compiled for them, where every row of a block is one address plus a constant offset (wasm
//! loads take the offset as an immediate): of a 3 x 3 block's 6 address additions per step, 4 go.
//! Measured in Chromium 156 on a 2-core Xeon, full-size model, one text x 5 labels, the variants
//! interleaved in one page, identical scores: the panels alone take 0.94-0.99x the time of 4 x 2
//! blocks streaming all of `a`, with the compiled sizes 0.89x (relaxed, 1 and 2 threads). In a
//! kernel-only harness on typeform's four Linear shapes, unrolling k by 2 is slower and the panel
//! size (144-576 KB) makes no difference. The blocks are 3 x 3 on simd128; with FMA, 6 x 2 when
//! LLVM keeps the source's order (see `BLOCK`): 55-59 GFLOP/s against 3 x 3's 53-56 in the
//! harness, and 0.95-0.96x the time end to end at 1 thread (full-size model, Chromium 156, 2-core
//! AMD EPYC, the two interleaved in one page, identical scores); at 2 threads the same time. 4 x 3
//! spills (36 GFLOP/s). A register-blocked kernel over weight panels packed at load is no faster
//! and needs a 170 MB copy of the weights.

use crate::error::{Error, Result};
use crate::weights::{Tensor, Values, dequantize_into};

/// `c[m x n] += a[m x k] @ w^T` with `w` a checkpoint Linear weight as stored ([n, k],
/// row-major; f32, int8 with a scale per row, or parts stacked along rows, such as q | k | v),
/// `c`'s rows `ldc` apart, in [`DR`] x [`DC`] blocks over column panels (see the module doc).
/// Each output's 4-lane accumulator is summed across lanes once at the end, so the blocking never
/// changes a result. int8 rows are dequantised a panel at a time into a scratch buffer, once per
/// call, so their cost is spread over all `m` rows.
#[allow(clippy::too_many_arguments)]
pub fn matmul_nt(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    w: Values,
    c: &mut [f32],
    ldc: usize,
) -> Result<()> {
    matmul_nt_then(m, n, k, (a, lda), w, (c, ldc), &|_| {})
}

/// [`matmul_nt`], then `then` on each row's outputs of each column panel as soon as the panel is
/// done, while they are in cache (an activation: at 1 thread the FFN's [107, 3072] outputs are
/// 1.3 MB, more than L2, and a pass over them afterwards would read them back from L3).
pub fn matmul_nt_then(
    m: usize,
    n: usize,
    k: usize,
    (a, lda): (&[f32], usize),
    w: Values,
    (c, ldc): (&mut [f32], usize),
    then: &dyn Fn(&mut [f32]),
) -> Result<()> {
    let fits = |len: usize, rows: usize, ld: usize, width: usize| {
        rows == 0 || width == 0 || (ld >= width && (rows - 1) * ld + width <= len)
    };
    // The weight's rows as this kernel reads them: f32, or int8 with a scale per row.
    let rows = match w {
        Values::F32(w) => Rows::F32(w),
        Values::Int8 { q, scales } if scales.len() >= n => Rows::Int8(q, scales),
        Values::Int8 { .. } => return Err(Error::Backend(format!("matmul_nt: fewer than {n} int8 row scales"))),
        Values::Stacked(parts) => return stacked(m, n, k, (a, lda), parts, (c, ldc), then),
        Values::Int8ByColumn { .. } => {
            return Err(Error::Backend("matmul_nt: an int8 weight in the native CPU's transposed layout".into()));
        }
        Values::F16(_) => return Err(Error::Backend("matmul_nt: an f16 table is not a Linear weight".into())),
    };
    let w_len = match rows {
        Rows::F32(w) => w.len(),
        Rows::Int8(q, _) => q.len(),
    };
    if !fits(a.len(), m, lda, k) || !fits(w_len, n, k, k) || !fits(c.len(), m, ldc, n) {
        return Err(Error::Backend(format!("matmul_nt {m}x{k} @ ({n}x{k})^T: operand out of bounds")));
    }
    let panel = panel_columns(k);
    let mut scratch = Vec::new();
    for j in (0..n).step_by(panel) {
        let cols = panel.min(n - j);
        let w_rows = match rows {
            Rows::F32(w) => &w[j * k..],
            Rows::Int8(q, scales) => {
                scratch.resize(cols * k, 0.0);
                dequantize_into(&q[j * k..][..cols * k], &scales[j..j + cols], &mut scratch);
                &scratch[..]
            }
        };
        let c = &mut c[j..];
        // typeform's inner sizes (its Linear layers' inputs, 768 and 3072) get loops compiled for
        // them: with k and lda constants, each block's rows are one address plus constant offsets.
        match (k, lda) {
            (768, 768) => column_panel::<768, DR, DC>(m, cols, k, a, lda, w_rows, c, ldc),
            (3072, 3072) => column_panel::<3072, DR, DC>(m, cols, k, a, lda, w_rows, c, ldc),
            _ => column_panel::<0, DR, DC>(m, cols, k, a, lda, w_rows, c, ldc),
        }
        (0..m).for_each(|r| then(&mut c[r * ldc..][..cols]));
    }
    Ok(())
}

/// Multiplies small zero operands of typeform's inner sizes (768 and 3072), enough times for the
/// browser to compile [`matmul_nt`] with its optimising compiler. Browsers run a wasm function
/// first as baseline code and recompile it in the background once it has run a while, so without
/// this the first text after a load would run partly on baseline code; the page's worker calls
/// this right after instantiating the wasm, and the recompilation overlaps the model's download
/// or cache read.
pub fn warm_up() {
    const CALLS: usize = 200;
    for k in [768, 3072] {
        let (a, w, mut c) = (vec![0.0; DR * k], vec![0.0; 4 * DC * k], vec![0.0; DR * 4 * DC]);
        for _ in 0..CALLS {
            // Cannot fail: the operands have exactly these sizes.
            let _ = matmul_nt(DR, 4 * DC, k, &a, k, Values::F32(&w), &mut c, 4 * DC);
        }
    }
}

/// Rows `range` of an [out, in] weight (`k` inputs per row) as [`matmul_nt`] reads it: the
/// outputs `range` of that Linear, without a copy. On a stacked weight `range` must start and end
/// on its parts' boundaries (q | k | v: the keys and values alone, say) or fall within one part.
pub fn output_rows<'a>(w: Values<'a>, k: usize, range: std::ops::Range<usize>) -> Result<Values<'a>> {
    let out_of_bounds = || Error::Backend(format!("weight rows {range:?} of {k} inputs: out of bounds"));
    match w {
        Values::F32(w) => Ok(Values::F32(w.get(range.start * k..range.end * k).ok_or_else(out_of_bounds)?)),
        Values::Int8 { q, scales } => Ok(Values::Int8 {
            q: q.get(range.start * k..range.end * k).ok_or_else(out_of_bounds)?,
            scales: scales.get(range.clone()).ok_or_else(out_of_bounds)?,
        }),
        Values::Stacked(parts) => {
            let starts = part_starts(parts);
            let at = |row: usize| starts.iter().position(|&s| s == row);
            // The part holding the range's first row, if it holds the whole range: its own rows.
            let within = starts.windows(2).position(|s| s[0] <= range.start && range.end <= s[1]);
            match (at(range.start), at(range.end), within) {
                (Some(a), Some(b), _) if a <= b => Ok(Values::Stacked(&parts[a..b])),
                (_, _, Some(p)) => output_rows(parts[p].values(), k, range.start - starts[p]..range.end - starts[p]),
                _ => Err(Error::Backend(format!(
                    "weight rows {range:?} split a stacked part (parts start at {starts:?})"
                ))),
            }
        }
        Values::Int8ByColumn { .. } => {
            Err(Error::Backend("output_rows: an int8 weight in the transposed layout".into()))
        }
        Values::F16(_) => Err(Error::Backend("output_rows: an f16 table is not a Linear weight".into())),
    }
}

/// The row at which each part of a stacked weight starts, and one past the last: the boundaries
/// [`output_rows`] keeps whole.
pub fn part_starts(parts: &[Tensor]) -> Vec<usize> {
    let mut starts = vec![0];
    parts.iter().for_each(|p| starts.push(starts[starts.len() - 1] + p.shape.first().copied().unwrap_or(0)));
    starts
}

/// A weight's rows as [`matmul_nt`] reads them: f32, or int8 with a scale per row.
#[derive(Clone, Copy)]
enum Rows<'a> {
    F32(&'a [f32]),
    Int8(&'a [i8], &'a [f32]),
}

/// Bytes of `w` rows per column panel: the panel stays in L2 while every row block passes it.
const PANEL_BYTES: usize = 288 * 1024;

/// Columns per panel for rows of `k` weights: whole dot blocks, at least one.
fn panel_columns(k: usize) -> usize {
    let cols = PANEL_BYTES / (4 * k.max(1));
    (cols - cols % DC).max(DC)
}

/// [`matmul_nt_then`] for a weight stacked from parts: each part's outputs are the next columns
/// of `c`, so q | k | v come out side by side as from one matrix.
fn stacked(
    m: usize,
    n: usize,
    k: usize,
    a: (&[f32], usize),
    parts: &[Tensor],
    (c, ldc): (&mut [f32], usize),
    then: &dyn Fn(&mut [f32]),
) -> Result<()> {
    let mut col = 0;
    for part in parts {
        let rows = part.shape.first().copied().unwrap_or(0);
        let c_part = c.get_mut(col..).filter(|_| col + rows <= n);
        let c_part = c_part.ok_or_else(|| Error::Backend(format!("stacked weight: parts wider than {n} outputs")))?;
        matmul_nt_then(m, rows, k, a, part.values(), (c_part, ldc), then)?;
        col += rows;
    }
    if col != n {
        return Err(Error::Backend(format!("stacked weight: parts give {col} outputs, not {n}")));
    }
    Ok(())
}

/// One panel of `cols` outputs for all `m` rows: `c[i][cc] += a[i] . w[cc]`, `c` at the panel's
/// first column with `ldc` between rows. Each block of `R` rows of `a` (in L1) passes the whole
/// panel (in L2) before the next: the order measured fastest in Chromium (module doc). `K`, when
/// not 0, is `k` and `lda` as a constant (the caller checked), so the loops are compiled for it.
/// Blocks are `R` x `C` ([`DR`] x [`DC`] in [`matmul_nt`]); the last rows and columns get smaller
/// ones.
#[allow(clippy::too_many_arguments)]
fn column_panel<const K: usize, const R: usize, const C: usize>(
    m: usize,
    cols: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    w: &[f32],
    c: &mut [f32],
    ldc: usize,
) {
    let (k, lda) = if K == 0 { (k, lda) } else { (K, K) };
    for i in (0..m).step_by(R) {
        let rows = R.min(m - i);
        let (a_rows, c_rows) = (&a[i * lda..], &mut c[i * ldc..]);
        for j in (0..cols).step_by(C) {
            let (w_cols, c_cols) = (&w[j * k..], &mut c_rows[j..]);
            match C.min(cols - j) {
                n if n == C => row_blocks::<R, C>(rows, k, (a_rows, lda), w_cols, (c_cols, ldc)),
                n => (0..n).for_each(|cc| {
                    row_blocks::<R, 1>(rows, k, (a_rows, lda), &w_cols[cc * k..], (&mut c_cols[cc..], ldc))
                }),
            }
        }
    }
}

/// `rows` (at most `R`) rows of `a` against `C` rows of `w` in one block: the last rows of a
/// matmul in a smaller one (typeform's 107 rows for one text x 5 labels, 35 in layer 0's q | k |
/// v and 5 in the last layer leave 5 at 6 rows a block: 5 x 2 keeps 10 FMA chains going, where
/// 3 x 2 and 2 x 2 blocks would keep 6 and 4, fewer than the 8 this core needs).
#[inline(always)]
fn row_blocks<const R: usize, const C: usize>(
    rows: usize,
    k: usize,
    (a, lda): (&[f32], usize),
    w: &[f32],
    (c, ldc): (&mut [f32], usize),
) {
    match rows {
        r if r >= R => dot_block::<R, C>(k, a, lda, w, c, ldc),
        5 => dot_block::<5, C>(k, a, lda, w, c, ldc),
        4 => dot_block::<4, C>(k, a, lda, w, c, ldc),
        3 => dot_block::<3, C>(k, a, lda, w, c, ldc),
        2 => dot_block::<2, C>(k, a, lda, w, c, ldc),
        _ => dot_block::<1, C>(k, a, lda, w, c, ldc),
    }
}

/// Rows of `a` x rows of `w` per dot block: as many accumulators as V8's 15 allocatable SIMD
/// registers on x86-64 hold beside the block's loads. With FMA (relaxed SIMD) 6 x 2: 12
/// accumulators, 2 weight vectors and 1 for `a`, 8 loads per 12 FMAs; with multiply + add, which
/// needs a temporary, 3 x 3. The 6 x 2 blocks need LLVM to keep the source's order (`-C
/// llvm-args=-pre-RA-sched=source`, in `scripts/wasm-threads.sh`): its default schedule hoists the
/// six loads of `a` above the FMAs, and V8 spills (26 GFLOP/s against 3 x 3's 53 in a kernel-only
/// harness; 55-59 in source order). Natively (`cargo test`) the relaxed build's blocks.
#[cfg(any(target_feature = "relaxed-simd", not(target_arch = "wasm32")))]
const BLOCK: (usize, usize) = (6, 2);
#[cfg(all(target_arch = "wasm32", not(target_feature = "relaxed-simd")))]
const BLOCK: (usize, usize) = (3, 3);
/// Rows of `a` per dot block (see `BLOCK`).
pub const DR: usize = BLOCK.0;
/// Rows of `w` per dot block (see `BLOCK`): a split of a matmul's outputs keeps whole ones.
pub const DC: usize = BLOCK.1;

/// `c[r][cc] += a[r] . w[cc]` over `k` for R rows of `a` (`lda` apart) and C rows of `w` (`k` apart).
#[inline(always)]
fn dot_block<const R: usize, const C: usize>(k: usize, a: &[f32], lda: usize, w: &[f32], c: &mut [f32], ldc: usize) {
    assert!(a.len() >= (R - 1) * lda + k && w.len() >= C * k && c.len() >= (R - 1) * ldc + C);
    let (a, w) = (a.as_ptr(), w.as_ptr());
    let mut acc = [[simd::zero(); C]; R];
    let k4 = k - k % 4;
    for kk in (0..k4).step_by(4) {
        // SAFETY: kk + 4 <= k, so a[r * lda + kk..+4] (r < R) and w[cc * k + kk..+4] (cc < C) are
        // in bounds by the assert above.
        unsafe {
            let ws: [simd::V; C] = std::array::from_fn(|cc| simd::load(w.add(cc * k + kk)));
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = simd::load(a.add(r * lda + kk));
                for (acc, wv) in acc.iter_mut().zip(ws) {
                    *acc = simd::madd(x, wv, *acc);
                }
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (cc, acc) in acc.iter().enumerate() {
            // SAFETY: indices below k, as above.
            let tail: f32 = (k4..k).map(|kk| unsafe { *a.add(r * lda + kk) * *w.add(cc * k + kk) }).sum();
            c[r * ldc + cc] += simd::sum(*acc) + tail;
        }
    }
}

/// wasm simd128 (and relaxed SIMD's FMA where the build enables it). `load` takes a
/// pointer to 4 valid f32 (the caller's SAFETY); v128.load has no alignment requirement.
#[cfg(target_arch = "wasm32")]
mod simd {
    use core::arch::wasm32::*;

    pub type V = v128;

    #[inline(always)]
    pub fn zero() -> V {
        f32x4_splat(0.0)
    }

    #[inline(always)]
    pub unsafe fn load(p: *const f32) -> V {
        unsafe { v128_load(p.cast()) }
    }

    /// The four lanes added up.
    #[inline(always)]
    pub fn sum(v: V) -> f32 {
        let pairs = f32x4_add(v, i32x4_shuffle::<2, 3, 0, 1>(v, v));
        f32x4_extract_lane::<0>(pairs) + f32x4_extract_lane::<1>(pairs)
    }

    /// `a * b + c`: one fused multiply-add with relaxed SIMD, else multiply then add.
    #[inline(always)]
    pub fn madd(a: V, b: V, c: V) -> V {
        #[cfg(target_feature = "relaxed-simd")]
        return f32x4_relaxed_madd(a, b, c);
        #[cfg(not(target_feature = "relaxed-simd"))]
        return f32x4_add(f32x4_mul(a, b), c);
    }
}

/// The same four-lane operations on plain arrays, so native tests run the kernel's loops.
#[cfg(not(target_arch = "wasm32"))]
mod simd {
    pub type V = [f32; 4];

    pub fn zero() -> V {
        [0.0; 4]
    }

    pub unsafe fn load(p: *const f32) -> V {
        // SAFETY: the caller's: p points to 4 valid f32.
        unsafe { std::array::from_fn(|i| *p.add(i)) }
    }

    pub fn madd(a: V, b: V, c: V) -> V {
        std::array::from_fn(|i| a[i] * b[i] + c[i])
    }

    pub fn sum(v: V) -> f32 {
        (v[0] + v[2]) + (v[1] + v[3])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::random_values;

    /// The dot kernel on the checkpoint's own [n, k] layout, around every block edge: m around
    /// DR, n around DC and the column panels (96 columns at k = 768, 72 at 1000: tails of 4 and
    /// 56), k around the 4-lane step, and typeform's FFN.
    #[test]
    fn dot_matmul_matches_naive_on_odd_and_large_shapes() {
        let shapes = [(1, 1, 1), (1, 3, 5), (5, 7, 9), (4, 2, 8), (7, 9, 257), (13, 17, 300), (37, 61, 129)];
        let panels = [(7, 100, 768), (5, 200, 1000)];
        for (m, n, k) in shapes.into_iter().chain(panels).chain([(110, 768, 3072), (22, 3, 768)]) {
            let a = random_values(m * k, 1, 1.0);
            let w = random_values(n * k, 2, 1.0);
            let bias = random_values(n, 3, 1.0);
            let mut c: Vec<f32> = bias.iter().copied().cycle().take(m * n).collect();
            matmul_nt(m, n, k, &a, k, Values::F32(&w), &mut c, n).unwrap();
            for (i, got) in c.iter().enumerate() {
                let (r, j) = (i / n, i % n);
                let want = (0..k).map(|t| a[r * k + t] as f64 * w[j * k + t] as f64).sum::<f64>() + bias[j] as f64;
                let tol = 1e-5 * (k as f64).sqrt() * want.abs().max(1.0);
                assert!((*got as f64 - want).abs() <= tol, "{m}x{n}x{k} index {i}: actual {got}, expected {want}");
            }
        }
        let err = matmul_nt(2, 2, 4, &[0.0; 7], 4, Values::F32(&[0.0; 8]), &mut [0.0; 4], 2).unwrap_err();
        assert!(err.to_string().contains("out of bounds"), "{err}");
    }

    /// Both builds' blockings (3 x 3 for simd128, 6 x 2 with FMA; `cargo test` runs the latter
    /// through `matmul_nt`) give what 1 x 1 blocks give, bit for bit (each output is summed the
    /// same way whatever its block), on rows and columns around both block sizes, with `k` a
    /// variable and compiled in; and 1 x 1 blocks match a naive f64 sum.
    #[test]
    fn every_blocking_gives_the_bits_of_one_output_at_a_time() {
        type Panel = fn(usize, usize, usize, &[f32], usize, &[f32], &mut [f32], usize);
        // (name, the k its loops are compiled for (0: any), the panel)
        let blockings: [(&str, usize, Panel); 4] = [
            ("3 x 3", 0, column_panel::<0, 3, 3>),
            ("6 x 2", 0, column_panel::<0, 6, 2>),
            ("3 x 3, k = 768 compiled", 768, column_panel::<768, 3, 3>),
            ("6 x 2, k = 768 compiled", 768, column_panel::<768, 6, 2>),
        ];
        let shapes = [(1, 1, 5), (2, 3, 9), (3, 5, 13), (4, 7, 13), (5, 7, 13), (7, 5, 257), (9, 3, 768), (10, 9, 768)];
        for (m, n, k) in shapes.into_iter().chain([(12, 4, 768), (17, 11, 768)]) {
            let (a, w) = (random_values(m * k, 19, 1.0), random_values(n * k, 20, 1.0));
            let mut one = vec![0.5; m * n];
            column_panel::<0, 1, 1>(m, n, k, &a, k, &w, &mut one, n);
            for (i, got) in one.iter().enumerate() {
                let (r, j) = (i / n, i % n);
                let want = 0.5 + (0..k).map(|t| a[r * k + t] as f64 * w[j * k + t] as f64).sum::<f64>();
                let tol = 1e-5 * (k as f64).sqrt() * want.abs().max(1.0);
                assert!(
                    (*got as f64 - want).abs() <= tol,
                    "1 x 1, {m}x{n}x{k} index {i}: actual {got}, expected {want}"
                );
            }
            for (name, _, panel) in blockings.iter().filter(|(_, compiled, _)| *compiled == 0 || *compiled == k) {
                let mut c = vec![0.5; m * n];
                panel(m, n, k, &a, k, &w, &mut c, n);
                for (i, (got, want)) in c.iter().zip(&one).enumerate() {
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{name}, {m}x{n}x{k} index {i}: actual {got}, expected {want}"
                    );
                }
            }
        }
    }

    /// int8 weights give what their dequantised f32 copy gives, on the same odd shapes (the
    /// scratch panel's edges), bit for bit: the same f32 weights enter the same loops.
    #[test]
    fn int8_weights_match_their_dequantised_copy() {
        for (m, n, k) in [(1, 1, 1), (5, 7, 9), (7, 9, 257), (37, 61, 129), (7, 100, 768)] {
            let a = random_values(m * k, 4, 1.0);
            let q: Vec<i8> = random_values(n * k, 5, 127.0).iter().map(|v| *v as i8).collect();
            let scales: Vec<f32> = random_values(n, 6, 0.01).iter().map(|s| s.abs()).collect();
            let dequantized = crate::weights::dequantize(&q, &scales);
            let (mut c8, mut c32) = (vec![0.5; m * n], vec![0.5; m * n]);
            matmul_nt(m, n, k, &a, k, Values::Int8 { q: &q, scales: &scales }, &mut c8, n).unwrap();
            matmul_nt(m, n, k, &a, k, Values::F32(&dequantized), &mut c32, n).unwrap();
            for (i, (got, want)) in c8.iter().zip(&c32).enumerate() {
                assert_eq!(got.to_bits(), want.to_bits(), "{m}x{n}x{k} index {i}: actual {got}, expected {want}");
            }
        }
        let short = Values::Int8 { q: &[0; 8], scales: &[1.0] };
        let err = matmul_nt(1, 2, 4, &[0.0; 4], 4, short, &mut [0.0; 2], 2).unwrap_err();
        assert!(err.to_string().contains("row scales"), "one scale for two rows: {err}");
        let transposed = Values::Int8ByColumn { q: &[0; 8], scales: &[1.0; 2] };
        let err = matmul_nt(1, 2, 4, &[0.0; 4], 4, transposed, &mut [0.0; 2], 2).unwrap_err();
        assert!(err.to_string().contains("transposed layout"), "the native CPU's int8 layout: {err}");
    }

    /// A range of output rows gives the same products as the whole weight's rows in that range,
    /// for f32, int8 and stacked weights; a range splitting a stacked part is refused.
    #[test]
    fn output_rows_match_the_whole_weights_rows() {
        let (m, k, rows) = (5, 9, [3, 5, 7]);
        let a = random_values(m * k, 12, 1.0);
        let q: Vec<i8> = random_values(15 * k, 13, 127.0).iter().map(|v| *v as i8).collect();
        let scales: Vec<f32> = random_values(15, 14, 0.01).iter().map(|s| s.abs()).collect();
        let parts: Vec<Tensor> = rows
            .iter()
            .zip(15u64..)
            .map(|(&r, seed)| Tensor::from_vec(vec![r, k], random_values(r * k, seed, 1.0)))
            .collect();
        let stacked = Tensor::stack(parts);
        let f32_w = random_values(15 * k, 18, 1.0);
        let weights = [Values::F32(&f32_w), Values::Int8 { q: &q, scales: &scales }, stacked.values()];
        for (w, range) in weights.into_iter().zip([2..11, 4..15, 3..15]) {
            let n = range.len();
            let (mut got, mut whole) = (vec![0.0; m * n], vec![0.0; m * 15]);
            matmul_nt(m, n, k, &a, k, output_rows(w, k, range.clone()).unwrap(), &mut got, n).unwrap();
            matmul_nt(m, 15, k, &a, k, w, &mut whole, 15).unwrap();
            for (i, g) in got.iter().enumerate() {
                let want = whole[(i / n) * 15 + range.start + i % n];
                assert_eq!(g.to_bits(), want.to_bits(), "rows {range:?} index {i}: actual {g}, expected {want}");
            }
        }
        let (mut got, mut whole) = (vec![0.0; m * 2], vec![0.0; m * 15]);
        matmul_nt(m, 2, k, &a, k, output_rows(stacked.values(), k, 4..6).unwrap(), &mut got, 2).unwrap();
        matmul_nt(m, 15, k, &a, k, stacked.values(), &mut whole, 15).unwrap();
        for (i, g) in got.iter().enumerate() {
            let want = whole[(i / 2) * 15 + 4 + i % 2];
            assert_eq!(
                g.to_bits(),
                want.to_bits(),
                "rows 4..6, within the second part, index {i}: actual {g}, expected {want}"
            );
        }
        let err = output_rows(stacked.values(), k, 0..5).err().expect("0..5 splits the second part");
        assert!(err.to_string().contains("split a stacked part"), "{err}");
        assert!(output_rows(Values::F32(&f32_w), k, 10..16).is_err(), "past the last row");
    }

    /// A weight stacked from parts (q | k | v, one of them int8, of odd row counts) gives what
    /// the parts copied into one matrix give, bit for bit; parts that do not add up are an error.
    #[test]
    fn stacked_weights_match_their_joined_copy() {
        for (m, k, rows) in [(1, 1, [1, 2, 1]), (5, 9, [3, 5, 7]), (13, 257, [16, 16, 16]), (22, 768, [768, 768, 768])]
        {
            let a = random_values(m * k, 7, 1.0);
            let q: Vec<i8> = random_values(rows[1] * k, 8, 127.0).iter().map(|v| *v as i8).collect();
            let scales: Vec<f32> = random_values(rows[1], 9, 0.01).iter().map(|s| s.abs()).collect();
            let parts = vec![
                Tensor::from_vec(vec![rows[0], k], random_values(rows[0] * k, 10, 1.0)),
                Tensor::from_int8(vec![rows[1], k], q, scales),
                Tensor::from_vec(vec![rows[2], k], random_values(rows[2] * k, 11, 1.0)),
            ];
            let stacked = Tensor::stack(parts);
            let (n, joined) = (stacked.shape[0], stacked.dequantized());
            let (mut got, mut want) = (vec![0.25; m * n], vec![0.25; m * n]);
            matmul_nt(m, n, k, &a, k, stacked.values(), &mut got, n).unwrap();
            matmul_nt(m, n, k, &a, k, Values::F32(&joined), &mut want, n).unwrap();
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.to_bits(), w.to_bits(), "{m}x{n}x{k} index {i}: actual {g}, expected {w}");
            }
            let err = matmul_nt(m, n + 1, k, &a, k, stacked.values(), &mut vec![0.0; m * (n + 1)], n + 1);
            assert!(err.unwrap_err().to_string().contains("not"), "parts short of n outputs");
        }
    }

    /// `then` sees every output exactly once, after its sum is complete: over several column
    /// panels (k = 768 gives 96 columns a panel), a stacked weight's parts, and rows of `c` wider
    /// than the outputs, whose other columns it never touches.
    #[test]
    fn then_runs_once_on_every_finished_output() {
        for (m, n, k, stacked) in [(1, 1, 1, false), (7, 200, 768, false), (13, 9, 257, true), (5, 300, 768, true)] {
            let a = random_values(m * k, 21, 1.0);
            let (w, ldc) = (random_values(n * k, 22, 1.0), n + 3);
            let parts =
                [0..n / 3, n / 3..n].map(|r| Tensor::from_vec(vec![r.len(), k], w[r.start * k..r.end * k].to_vec()));
            let stacked_w = Tensor::stack(Vec::from(parts));
            let weight = if stacked { stacked_w.values() } else { Values::F32(&w) };
            let (mut want, mut got) = (vec![0.5; m * ldc], vec![0.5; m * ldc]);
            matmul_nt(m, n, k, &a, k, Values::F32(&w), &mut want, ldc).unwrap();
            let then = |c: &mut [f32]| c.iter_mut().for_each(|v| *v = *v * 2.0 + 1.0);
            matmul_nt_then(m, n, k, (&a, k), weight, (&mut got, ldc), &then).unwrap();
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                let w = if i % ldc < n { w * 2.0 + 1.0 } else { *w };
                assert_eq!(
                    g.to_bits(),
                    w.to_bits(),
                    "{m}x{n}x{k} stacked {stacked} index {i}: actual {g}, expected {w}"
                );
            }
        }
    }
}
