// erf for f32 (WGSL has none): the rational approximation the CPU backend uses
// (src/backend/cpu.rs `erf`), within 5e-7 of the true erf. Included into kernels that need GELU.

fn erf_f32(x_in: f32) -> f32 {
    // Beyond +-4, erf is +-1 in f32.
    let x = clamp(x_in, -4.0, 4.0);
    let x2 = x * x;
    var p = -2.7261423e-10;
    p = p * x2 + 2.7706814e-8;
    p = p * x2 - 2.101024e-6;
    p = p * x2 - 5.6925064e-5;
    p = p * x2 - 7.3499063e-4;
    p = p * x2 - 2.9546e-3;
    p = p * x2 - 1.6096033e-2;
    var q = -1.4566072e-5;
    q = q * x2 - 2.1337406e-4;
    q = q * x2 - 1.682827e-3;
    q = q * x2 - 7.373329e-3;
    q = q * x2 - 1.426474e-2;
    return x * p / q;
}

// GELU, erf form: x * Phi(x).
fn gelu(x: f32) -> f32 {
    return 0.5 * x * (1.0 + erf_f32(x * 0.70710678118654752));
}

// tanh from exp(-2|x|), which cannot overflow (WGSL's tanh may return NaN for large |x| on some
// drivers, as sinh/cosh overflow).
fn tanh_f32(x: f32) -> f32 {
    let e = exp(-2.0 * abs(x));
    let t = (1.0 - e) / (1.0 + e);
    return select(-t, t, x >= 0.0);
}

// GELU, tanh approximation (transformers' gelu_new).
fn gelu_tanh(x: f32) -> f32 {
    return 0.5 * x * (1.0 + tanh_f32(0.7978845608 * (x + 0.044715 * x * x * x)));
}
