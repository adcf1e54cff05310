//! The CPU backend's Linear weights, packed once at load, and the register-blocked micro-kernel
//! the browser build multiplies them with.
//!
//! A Linear weight ([out, in] in the checkpoint) is stored as column panels of its transpose:
//! [panels, in, width], element (k, n) of `x @ w.T`'s right operand at
//! `(n / width) * in * width + k * width + n % width`, zero-padded to whole panels. Natively one
//! panel holds every column (`width = out`: the plain [in, out] transpose, which `gemm` streams
//! with AVX2/AVX-512); on wasm panels are [`NR`] wide, the micro-kernel's width, so each k step
//! of a panel is two contiguous 128-bit loads.
//!
//! Why our own kernel on wasm: `gemm`'s simd128 kernels compute a multiply-add as an add of a
//! multiply and cannot use relaxed SIMD's fused `f32x4.relaxed_madd`. The kernel below keeps an
//! `MR x NR` block of the output in 2*MR vector registers; per k it loads two vectors of the
//! panel and broadcasts MR values of `x`. Built with `+relaxed-simd` it uses one FMA per vector
//! multiply-add, else `f32x4.mul` + `f32x4.add` (browsers without relaxed SIMD). Natively the
//! same loops run on a portable 4-lane type, so the packing, blocking and edge handling are
//! unit-tested by `cargo test` as well as in the browser.

use crate::error::{Error, Result};

/// Columns per panel on wasm: two 4-lane vectors.
pub const NR: usize = 8;
/// Output rows per micro-kernel call: 2*MR accumulators + 2 panel vectors + 1 broadcast must
/// stay in registers. Measured in Chromium (interleaved, full-size model): MR = 5 and 6 are
/// 1.37x and 1.23x slower than 4, as V8 keeps fewer vector registers than x86-64's 16.
const MR: usize = 4;
/// k per block: an `KC x NR` panel slice (8 KiB) stays in L1 while all rows of `x` pass over it.
const KC: usize = 256;

/// Packs a checkpoint Linear weight `w` ([out, in], row-major) into panels `width` columns wide
/// (see the module doc). Walks 32x32 tiles so both sides stay in cache.
pub fn pack(w: &[f32], out: usize, inp: usize, width: usize) -> Result<Vec<f32>> {
    const TILE: usize = 32;
    if w.len() != out * inp || width == 0 {
        return Err(Error::Backend(format!("pack: {} values for a {out}x{inp} weight", w.len())));
    }
    let panels = out.div_ceil(width);
    let mut dst = vec![0.0; panels * inp * width];
    for n0 in (0..out).step_by(TILE) {
        for k0 in (0..inp).step_by(TILE) {
            for n in n0..(n0 + TILE).min(out) {
                let at = (n / width) * inp * width + n % width;
                for k in k0..(k0 + TILE).min(inp) {
                    dst[at + k * width] = w[n * inp + k];
                }
            }
        }
    }
    Ok(dst)
}

/// `c[m x n] += a[m x k] @ b`, with `a` row-major (rows `lda` apart), `b` packed in [`NR`]-wide
/// panels (`pack(.., NR)` of an [n, k] weight) and `c` row-major, `n` wide.
pub fn matmul_packed(m: usize, n: usize, k: usize, a: &[f32], lda: usize, b: &[f32], c: &mut [f32]) -> Result<()> {
    let panels = n.div_ceil(NR);
    let a_fits = m == 0 || k == 0 || (lda >= k && (m - 1) * lda + k <= a.len());
    if !a_fits || b.len() < panels * k * NR || c.len() < m * n {
        return Err(Error::Backend(format!("matmul_packed {m}x{k} @ {k}x{n}: operand out of bounds")));
    }
    for k0 in (0..k).step_by(KC) {
        let kc = KC.min(k - k0);
        for p in 0..panels {
            let panel = &b[(p * k + k0) * NR..][..kc * NR];
            let cols = NR.min(n - p * NR);
            let mut i = 0;
            while i + MR <= m {
                block::<MR>(kc, &a[i * lda + k0..], lda, panel, &mut c[i * n + p * NR..], n, cols);
                i += MR;
            }
            for i in i..m {
                block::<1>(kc, &a[i * lda + k0..], lda, panel, &mut c[i * n + p * NR..], n, cols);
            }
        }
    }
    Ok(())
}

/// One `R x NR` output block over `kc` steps: `c[r][0..cols] += sum_kk a[r][kk] * panel[kk][..]`.
/// Indexes through raw pointers: per-element slice checks in this loop cost as much as the
/// arithmetic on wasm. The bounds are checked once, here.
#[inline(always)]
fn block<const R: usize>(kc: usize, a: &[f32], lda: usize, panel: &[f32], c: &mut [f32], ldc: usize, cols: usize) {
    assert!(a.len() >= (R - 1) * lda + kc && panel.len() >= kc * NR && cols <= NR && c.len() >= (R - 1) * ldc + cols);
    let (a, panel) = (a.as_ptr(), panel.as_ptr());
    let mut acc = [[simd::zero(); 2]; R];
    // Plain loop: unrolling it by 4 measured 1.2x slower in Chromium (V8 spills).
    for kk in 0..kc {
        // SAFETY: kk < kc, so panel[kk * NR .. kk * NR + 8] and a[r * lda + kk] (r < R) are in
        // bounds by the assert above.
        unsafe {
            let b = panel.add(kk * NR);
            let (b0, b1) = (simd::load(b), simd::load(b.add(4)));
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = simd::splat(*a.add(r * lda + kk));
                acc[0] = simd::madd(x, b0, acc[0]);
                acc[1] = simd::madd(x, b1, acc[1]);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        let row = &mut c[r * ldc..];
        let mut lanes = [0.0; NR];
        // SAFETY: `lanes` holds 8 values.
        unsafe {
            simd::store(lanes.as_mut_ptr(), acc[0]);
            simd::store(lanes.as_mut_ptr().add(4), acc[1]);
        }
        row[..cols].iter_mut().zip(lanes).for_each(|(c, v)| *c += v);
    }
}

/// wasm simd128 (and relaxed SIMD's FMA where the build enables it). `load`/`store` take
/// pointers to 4 valid f32 (the caller's SAFETY); v128.load has no alignment requirement.
#[cfg(target_arch = "wasm32")]
mod simd {
    use core::arch::wasm32::*;

    pub type V = v128;

    #[inline(always)]
    pub fn zero() -> V {
        f32x4_splat(0.0)
    }

    #[inline(always)]
    pub fn splat(x: f32) -> V {
        f32x4_splat(x)
    }

    #[inline(always)]
    pub unsafe fn load(p: *const f32) -> V {
        unsafe { v128_load(p.cast()) }
    }

    #[inline(always)]
    pub unsafe fn store(p: *mut f32, v: V) {
        unsafe { v128_store(p.cast(), v) }
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

    pub fn splat(x: f32) -> V {
        [x; 4]
    }

    pub unsafe fn load(p: *const f32) -> V {
        // SAFETY: the caller's: p points to 4 valid f32.
        unsafe { std::array::from_fn(|i| *p.add(i)) }
    }

    pub unsafe fn store(p: *mut f32, v: V) {
        // SAFETY: as in `load`, writable.
        v.iter().enumerate().for_each(|(i, x)| unsafe { *p.add(i) = *x });
    }

    pub fn madd(a: V, b: V, c: V) -> V {
        std::array::from_fn(|i| a[i] * b[i] + c[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::random_values;

    /// Packing then multiplying against a naive f64 loop, on shapes around every block edge:
    /// m around MR, n around NR (partial panels), k around KC, and typeform's FFN.
    #[test]
    fn packed_matmul_matches_naive_on_odd_and_large_shapes() {
        let shapes = [(1, 1, 1), (1, 3, 5), (5, 7, 9), (6, 8, 256), (7, 9, 257), (13, 17, 300), (37, 61, 129)];
        for (m, n, k) in shapes.into_iter().chain([(110, 768, 3072), (22, 3, 768)]) {
            let a = random_values(m * k, 1, 1.0);
            let w = random_values(n * k, 2, 1.0); // [n, k], a checkpoint weight
            let bias = random_values(n, 3, 1.0);
            let mut c: Vec<f32> = bias.iter().copied().cycle().take(m * n).collect();
            matmul_packed(m, n, k, &a, k, &pack(&w, n, k, NR).unwrap(), &mut c).unwrap();
            for (i, got) in c.iter().enumerate() {
                let (r, j) = (i / n, i % n);
                let dot: f64 = (0..k).map(|t| a[r * k + t] as f64 * w[j * k + t] as f64).sum::<f64>();
                let want = dot + bias[j] as f64;
                let tol = 1e-5 * (k as f64).sqrt() * want.abs().max(1.0);
                assert!((*got as f64 - want).abs() <= tol, "{m}x{n}x{k} index {i}: actual {got}, expected {want}");
            }
        }
    }

    #[test]
    fn pack_places_every_element_and_zero_pads() {
        let (out, inp) = (11, 37); // a partial last panel, k not a multiple of the tile
        let w: Vec<f32> = (0..out * inp).map(|i| i as f32 + 1.0).collect();
        for width in [NR, out] {
            let p = pack(&w, out, inp, width).unwrap();
            assert_eq!(p.len(), out.div_ceil(width) * inp * width);
            for n in 0..out {
                for k in 0..inp {
                    let at = (n / width) * inp * width + k * width + n % width;
                    assert_eq!(p[at], w[n * inp + k], "width {width} ({k}, {n})");
                }
            }
            let nonzero = p.iter().filter(|v| **v != 0.0).count();
            assert_eq!(nonzero, out * inp, "width {width}: padding must be zero");
        }
    }

    #[test]
    fn operands_out_of_bounds_are_refused() {
        let err = matmul_packed(2, 8, 4, &[0.0; 7], 4, &[0.0; 32], &mut [0.0; 16]).unwrap_err();
        assert!(err.to_string().contains("out of bounds"), "{err}");
        assert!(pack(&[0.0; 5], 2, 3, NR).is_err());
    }
}
