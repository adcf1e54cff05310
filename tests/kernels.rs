//! Every kernel on small, odd and large shapes: the CPU backend against naive loops written here,
//! and the GPU backend (lavapipe in CI) against the CPU backend. Failures print index, actual,
//! expected.

mod common;

use common::{assert_close, gpu_backend};
use zeroshot::Activation;
use zeroshot::backend::gpu::GpuOptions;
use zeroshot::backend::{Backend, Batch, Queries};
use zeroshot::synthetic::random_values as random;
use zeroshot::weights::{Embeddings, LayerNorm, Linear, Tensor};

/// Relative tolerance, GPU vs CPU and CPU vs naive: f32 sums in another order.
const TOL: f32 = 1e-4;

fn tensor(shape: &[usize], seed: u64, scale: f32) -> Tensor {
    Tensor::from_vec(shape.to_vec(), random(shape.iter().product(), seed, scale))
}

fn linear(out: usize, inp: usize, seed: u64) -> Linear {
    Linear { weight: tensor(&[out, inp], seed, 1.0 / (inp as f32).sqrt()), bias: tensor(&[out], seed + 1, 0.5) }
}

/// LayerNorm epsilon of the tests: not BERT's 1e-12, so a backend that ignores it fails.
const EPS: f32 = 1e-3;

fn layer_norm(dim: usize, seed: u64) -> LayerNorm {
    let gamma = random(dim, seed, 0.3).iter().map(|g| 1.0 + g).collect();
    LayerNorm { weight: Tensor::from_vec(vec![dim], gamma), bias: tensor(&[dim], seed + 1, 0.3), eps: EPS }
}

/// Position id of the first token in [`batch`] (RoBERTa's, with pad_token_id 1).
const FIRST_POSITION: usize = 2;

/// Sequences of the given lengths with random ids, padded into one batch; each sequence's second
/// half has token type 1, and positions start at [`FIRST_POSITION`].
fn batch(lengths: &[usize], vocab: u32, seed: u64) -> Batch {
    let ids = random(lengths.iter().sum(), seed, 1.0);
    let mut at = 0;
    let seqs: Vec<Vec<u32>> = lengths
        .iter()
        .map(|&n| {
            at += n;
            ids[at - n..at].iter().map(|x| ((x + 1.0) * 0.5 * vocab as f32) as u32 % vocab).collect()
        })
        .collect();
    let types: Vec<Vec<u32>> = lengths.iter().map(|&n| (0..n).map(|t| u32::from(t >= n / 2)).collect()).collect();
    Batch::pad_typed(&seqs, &types, FIRST_POSITION)
}

/// LayerNorm((word + token type) + position) per real token, in f64: [tokens, dim], the padding
/// left out.
fn naive_embed(batch: &Batch, emb: &Embeddings, lengths: &[usize]) -> Vec<f32> {
    let dim = emb.layer_norm.weight.shape[0];
    let row = |t: &Tensor, i: usize| t.data().unwrap()[i * dim..][..dim].to_vec();
    let mut out = Vec::new();
    for (b, &len) in lengths.iter().enumerate() {
        for t in 0..len {
            let at = b * batch.seq + t;
            let (w, k) = (
                row(&emb.word_embeddings, batch.ids[at] as usize),
                row(&emb.token_type_embeddings, batch.type_ids[at] as usize),
            );
            let p = row(emb.position_embeddings.as_ref().unwrap(), FIRST_POSITION + t);
            let x: Vec<f64> = (0..dim).map(|i| w[i] as f64 + k[i] as f64 + p[i] as f64).collect();
            out.extend(naive_layer_norm(&x, &emb.layer_norm));
        }
    }
    out
}

/// LayerNorm of one row in f64 (with the tests' epsilon).
fn naive_layer_norm(x: &[f64], ln: &LayerNorm) -> Vec<f32> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let (g, beta) = (ln.weight.data().unwrap(), ln.bias.data().unwrap());
    let inv = 1.0 / (var + EPS as f64).sqrt();
    x.iter().enumerate().map(|(i, v)| ((v - mean) * inv * g[i] as f64 + beta[i] as f64) as f32).collect()
}

fn run_linear<B: Backend>(b: &mut B, x: &Tensor, w: Linear, act: Option<Activation>) -> Vec<f32> {
    let x = b.load_tensor(Tensor::from_vec(x.shape.clone(), x.data().unwrap().to_vec())).unwrap();
    let w = b.load_linear(w).unwrap();
    let _ = b.upload_batch(&Batch::pad(&[vec![0]])).unwrap(); // opens the forward's encoder
    let y = b.linear(&x, &w, act).unwrap();
    pollster::block_on(b.read(&y)).unwrap()
}

fn naive_linear(x: &Tensor, w: &Linear, act: Option<Activation>) -> Vec<f32> {
    let (rows, inp, out) = (x.shape[0], x.shape[1], w.weight.shape[0]);
    let mut y = vec![0.0; rows * out];
    for r in 0..rows {
        for o in 0..out {
            let dot: f64 = (0..inp)
                .map(|i| x.data().unwrap()[r * inp + i] as f64 * w.weight.data().unwrap()[o * inp + i] as f64)
                .sum();
            let v = dot as f32 + w.bias.data().unwrap()[o];
            y[r * out + o] = match act {
                Some(Activation::Gelu) => zeroshot::backend::cpu::gelu(v),
                Some(Activation::Relu) => v.max(0.0),
                Some(Activation::GeluTanh) => {
                    let v = v as f64;
                    (0.5 * v * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v)).tanh())) as f32
                }
                Some(Activation::Tanh) => (v as f64).tanh() as f32,
                None => v,
            };
        }
    }
    y
}

fn clone_linear(l: &Linear) -> Linear {
    let c = |t: &Tensor| Tensor::from_vec(t.shape.clone(), t.data().unwrap().to_vec());
    Linear { weight: c(&l.weight), bias: c(&l.bias) }
}

#[test]
fn linear_on_small_odd_and_large_shapes() {
    let mut gpu = gpu_backend(GpuOptions::default());
    let shapes = [(1, 3, 5), (37, 61, 129), (64, 64, 64), (65, 17, 3), (256, 768, 3072)];
    for (i, &(rows, inp, out)) in shapes.iter().enumerate() {
        let acts = [Activation::Gelu, Activation::Relu, Activation::GeluTanh, Activation::Tanh];
        for act in [None].into_iter().chain(acts.map(Some)) {
            let what = format!("linear {rows}x{inp} @ {inp}x{out} {act:?}");
            let x = tensor(&[rows, inp], 10 + i as u64, 2.0);
            let w = linear(out, inp, 20 + i as u64);
            let cpu = run_linear(&mut zeroshot::CpuBackend::new(1), &x, clone_linear(&w), act);
            if rows * inp * out < 10_000_000 {
                assert_close(&format!("cpu {what}"), &cpu, &naive_linear(&x, &w, act), TOL);
            }
            if let Some(gpu) = gpu.as_mut() {
                assert_close(&format!("gpu {what}"), &run_linear(gpu, &x, w, act), &cpu, TOL);
            }
        }
    }
}

/// An int8 copy of `l`'s weight (symmetric per row, as `zeroshot convert` makes it) and the f32
/// weight it stands for, so that both backends' int8 paths can be checked against plain f32.
fn int8_linear(l: &Linear) -> (Linear, Linear) {
    let (rows, cols) = (l.weight.shape[0], l.weight.shape[1]);
    let w = l.weight.data().unwrap();
    let scales: Vec<f32> = w.chunks(cols).map(|r| r.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0).collect();
    let q: Vec<i8> = w.iter().enumerate().map(|(i, v)| (v / scales[i / cols]).round() as i8).collect();
    let bias = || Tensor::from_vec(vec![rows], l.bias.data().unwrap().to_vec());
    let dequantized = Tensor::from_vec(vec![rows, cols], zeroshot::weights::dequantize(&q, &scales));
    (
        Linear { weight: Tensor::from_int8(vec![rows, cols], q, scales), bias: bias() },
        Linear { weight: dequantized, bias: bias() },
    )
}

/// int8 weights (CPU: kept transposed, panels dequantised for gemm, on 1 and 2 threads; GPU:
/// packed u32 words, unpacked in the matmul's tile load) against the same weights dequantised to
/// f32, on shapes whose inputs are not a multiple of the 4 values per word.
#[test]
fn int8_linear_matches_its_dequantised_weights() {
    let mut gpu = gpu_backend(GpuOptions::default());
    let shapes = [(1, 3, 5), (37, 61, 129), (65, 17, 3), (200, 130, 300), (110, 768, 3072)];
    for (i, &(rows, inp, out)) in shapes.iter().enumerate() {
        let what = format!("int8 linear {rows}x{inp} @ {inp}x{out}");
        let x = tensor(&[rows, inp], 30 + i as u64, 2.0);
        let (int8, f32_copy) = int8_linear(&linear(out, inp, 40 + i as u64));
        let cpu_f32 = run_linear(&mut zeroshot::CpuBackend::new(1), &x, clone_linear(&f32_copy), None);
        let (q, s) = (clone_int8(&int8), clone_int8(&int8));
        for threads in [1, 2] {
            let q = if threads == 1 { clone_int8(&q) } else { clone_int8(&int8) };
            let got = run_linear(&mut zeroshot::CpuBackend::new(threads), &x, q, None);
            assert_close(&format!("cpu, {threads} thread(s), {what}"), &got, &cpu_f32, TOL);
        }
        if let Some(gpu) = gpu.as_mut() {
            assert_close(
                &format!("gpu {what}"),
                &run_linear(gpu, &x, s, Some(Activation::Gelu)),
                &gelu_all(&cpu_f32),
                TOL,
            );
        }
    }
}

/// A weight whose values are all exactly f16 (as an f16 checkpoint's are after loading) is held as
/// f16 on a device with `shader-f16` (lavapipe has it; SwiftShader in Chromium does not), half the
/// bytes, and multiplies to what the CPU gets from the same values.
#[test]
fn f16_exact_weights_are_held_as_f16_where_the_gpu_can() {
    let Some(mut gpu) = gpu_backend(GpuOptions::default()) else { return };
    for (i, &(rows, inp, out)) in [(1, 3, 5), (37, 61, 129), (110, 768, 3072)].iter().enumerate() {
        let what = format!("f16 linear {rows}x{inp} @ {inp}x{out}");
        let x = tensor(&[rows, inp], 50 + i as u64, 2.0);
        let l = linear(out, inp, 60 + i as u64);
        let halves = l.weight.data().unwrap().iter().map(|&v| half::f16::from_f32(v).to_f32()).collect();
        let l = Linear { weight: Tensor::from_vec(vec![out, inp], halves), bias: l.bias };
        let cpu = run_linear(&mut zeroshot::CpuBackend::new(1), &x, clone_linear(&l), None);
        let before = gpu.weight_bytes();
        assert_close(&format!("gpu {what}"), &run_linear(&mut gpu, &x, l, None), &cpu, TOL);
        let per_value = if gpu.holds_f16() { 2 } else { 4 };
        let (x_bytes, bias_bytes) = (rows * inp * 4, out * 4);
        assert_eq!(gpu.weight_bytes() - before, (out * inp * per_value + bias_bytes + x_bytes) as u64, "{what}");
    }
    println!("shader-f16: {}", gpu.holds_f16());
}

fn clone_int8(l: &Linear) -> Linear {
    let zeroshot::weights::Values::Int8 { q, scales } = l.weight.values() else { panic!("int8 weight expected") };
    let bias = Tensor::from_vec(l.bias.shape.clone(), l.bias.data().unwrap().to_vec());
    Linear { weight: Tensor::from_int8(l.weight.shape.clone(), q.to_vec(), scales.to_vec()), bias }
}

fn gelu_all(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| zeroshot::backend::cpu::gelu(x)).collect()
}

/// embed; attention on a random fused qkv, for every query and for the [CLS] rows only;
/// add_layer_norm with a full and with a [CLS]-rows residual; the [CLS] rows through a linear:
/// every non-matmul kernel, on one backend. `packed`: the backend leaves the padding rows out
/// (the CPU, see `cpu::Packed`), so its qkv has only the real tokens' rows. Returns [x, ctx, y,
/// logits, ctx_cls, y_cls].
fn run_rest<B: Backend>(b: &mut B, lengths: &[usize], (dim, heads, max_pos): Dims, packed: bool) -> Vec<Vec<f32>> {
    let vocab = 97;
    let emb = embeddings(vocab, dim, max_pos).try_map(&mut |t| b.load_tensor(t)).unwrap();
    let ln = layer_norm(dim, 5).try_map(&mut |t| b.load_tensor(t)).unwrap();
    let head = b.load_linear(linear(3, dim, 7)).unwrap();
    let batch = batch(lengths, vocab as u32, 9);
    let qkv = held(qkv_values(&batch, dim).data().unwrap(), lengths, 3 * dim, packed);
    let qkv = b.load_tensor(Tensor::from_vec(vec![qkv.len() / (3 * dim), 3 * dim], qkv)).unwrap();
    let input = b.upload_batch(&batch).unwrap();
    let x = b.embed(&input, &emb).unwrap();
    let ctx = b.attention(&qkv, None, &input, heads, Queries::All).unwrap();
    let ctx_cls = b.attention(&qkv, None, &input, heads, Queries::Cls).unwrap();
    let y = b.add_layer_norm(&ctx, &x, &ln).unwrap();
    let x_cls = b.cls_rows(&x, &input).unwrap();
    let y_cls = b.add_layer_norm(&ctx_cls, &x_cls, &ln).unwrap();
    let cls = b.cls_rows(&y, &input).unwrap();
    let logits = b.linear(&cls, &head, None).unwrap();
    [&x, &ctx, &y, &logits, &ctx_cls, &y_cls].map(|t| pollster::block_on(b.read(t)).unwrap()).to_vec()
}

/// Random embeddings with a two-row token-type table.
fn embeddings(vocab: usize, dim: usize, max_pos: usize) -> Embeddings {
    Embeddings {
        word_embeddings: tensor(&[vocab, dim], 1, 1.0),
        position_embeddings: Some(tensor(&[max_pos, dim], 2, 1.0)),
        token_type_embeddings: tensor(&[2, dim], 4, 1.0),
        projection: None,
        layer_norm: layer_norm(dim, 3),
    }
}

/// A random [rows, 3*dim] q | k | v for `batch`, the same on every backend.
fn qkv_values(batch: &Batch, dim: usize) -> Tensor {
    tensor(&[batch.rows(), 3 * dim], 11, 1.0)
}

/// (dim, heads, max positions) of a case.
type Dims = (usize, usize, usize);

/// The rows of a padded [batch*seq, width] tensor that a backend holds: all of them, or if
/// `packed`, each sequence's real tokens, one sequence after another.
fn held(t: &[f32], lengths: &[usize], width: usize, packed: bool) -> Vec<f32> {
    if !packed {
        return t.to_vec();
    }
    let seq = *lengths.iter().max().unwrap();
    lengths.iter().enumerate().flat_map(|(b, &len)| &t[b * seq * width..][..len * width]).copied().collect()
}

/// Each sequence's first row of a packed [tokens, dim] tensor.
fn cls_of(t: &[f32], lengths: &[usize], dim: usize) -> Vec<f32> {
    let starts = lengths.iter().scan(0, |at, len| Some(std::mem::replace(at, *at + len)));
    starts.flat_map(|s| &t[s * dim..][..dim]).copied().collect()
}

#[test]
fn embed_attention_layer_norm_and_cls_rows() {
    let mut gpu = gpu_backend(GpuOptions::default());
    // (sequence lengths, dim, heads): one token; odd sizes with padding; typeform's head size; a
    // text longer than the CPU's block of queries (256).
    let cases: [(&[usize], usize, usize); 5] =
        [(&[1], 4, 1), (&[37, 5, 36], 61, 1), (&[7, 3], 24, 3), (&[128, 100, 128], 768, 12), (&[300, 40], 8, 2)];
    let max_pos = 300 + FIRST_POSITION;
    let names =
        ["embed", "attention", "add_layer_norm", "cls_rows + linear", "attention [CLS]", "add_layer_norm [CLS]"];
    for (lengths, dim, heads) in cases {
        let what = format!("{lengths:?} dim {dim} heads {heads}");
        let cpu = run_rest(&mut zeroshot::CpuBackend::new(1), lengths, (dim, heads, max_pos), true);
        let want = naive_embed(&batch(lengths, 97, 9), &embeddings(97, dim, max_pos), lengths);
        assert_close(&format!("cpu embed {what}"), &cpu[0], &want, TOL);
        let qkv = qkv_values(&batch(lengths, 97, 9), dim);
        check_against_naive(&cpu[1], qkv.data().unwrap(), lengths, dim, heads);
        assert_close(&format!("cpu attention [CLS] {what}"), &cpu[4], &cls_of(&cpu[1], lengths, dim), TOL);
        assert_close(&format!("cpu add_layer_norm [CLS] {what}"), &cpu[5], &cls_of(&cpu[2], lengths, dim), TOL);
        let Some(gpu) = gpu.as_mut() else { continue };
        let got = run_rest(gpu, lengths, (dim, heads, max_pos), false);
        for (i, (name, (g, c))) in names.iter().zip(got.iter().zip(&cpu)).enumerate() {
            // x, ctx and y have a row per token, the GPU's padding rows included: compare the real ones.
            let g = if i < 3 { held(g, lengths, dim, true) } else { g.clone() };
            assert_close(&format!("gpu {name} {what}"), &g, c, TOL);
        }
    }
}

/// softmax(scores) @ values in f64, the values of key k given by `value(k)`: one query's [hd].
fn naive_context<'a>(scores: &[f64], value: impl Fn(usize) -> &'a [f32], hd: usize) -> Vec<f32> {
    let max = scores.iter().copied().fold(f64::MIN, f64::max);
    let exp: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    (0..hd).map(|d| exp.iter().enumerate().map(|(k, e)| e / sum * value(k)[d] as f64).sum::<f64>() as f32).collect()
}

/// The CPU's attention (real tokens' rows only) against a naive per-(sequence, head, query) loop
/// in f64 over the fused, padded [rows, 3*dim] qkv; padding keys must get no weight.
fn check_against_naive(ctx: &[f32], qkv: &[f32], lengths: &[usize], dim: usize, heads: usize) {
    let seq = *lengths.iter().max().unwrap();
    let hd = dim / heads;
    let mut want = vec![0.0f32; lengths.len() * seq * dim]; // padded, as qkv
    for (b, &len) in lengths.iter().enumerate() {
        for h in 0..heads {
            // part 0, 1, 2 = q, k, v of token t, head h
            let at = |part: usize, t: usize| &qkv[(b * seq + t) * 3 * dim + part * dim + h * hd..][..hd];
            for q in 0..seq {
                let scores: Vec<f64> = (0..len)
                    .map(|k| {
                        let dot = at(0, q).iter().zip(at(1, k)).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>();
                        dot / (hd as f64).sqrt()
                    })
                    .collect();
                let ctx = naive_context(&scores, |k| at(2, k), hd);
                want[(b * seq + q) * dim + h * hd..][..hd].copy_from_slice(&ctx);
            }
        }
    }
    let want = held(&want, lengths, dim, true);
    assert_close(&format!("cpu attention {lengths:?} dim {dim} heads {heads}"), ctx, &want, TOL);
}

/// The CPU's fused q | k | v (`Backend::qkv`) against its plain `linear`, on embeddings of a
/// batch where sequences repeat their neighbours' first tokens (one text paired with several
/// labels: those rows are computed once and copied), with every query and with the [CLS] queries
/// only (then only their q columns are read, and compared): q | k | v stacked as the loader stacks
/// them, f32 and int8, 1 and 2 threads. The GPU's `qkv` is the trait's default, its `linear`.
#[test]
fn qkv_computes_every_value_attention_reads() {
    let (dim, vocab) = (24, 97);
    let text = [1, 5, 6, 7, 2, 9, 8];
    let pair = |label: &[u32]| [&text[..], label, &[2]].concat();
    // Two texts x labels of several lengths, and a lone sequence; a label that is a prefix of another.
    let seqs = [pair(&[10]), pair(&[11, 12]), pair(&[10, 13]), pair(&[10]), vec![3, 4], vec![3, 4, 5, 2]];
    let lengths: Vec<usize> = seqs.iter().map(Vec::len).collect();
    let batch = Batch::pad(&seqs);
    for int8 in [false, true] {
        for threads in [1, 2] {
            let what = format!("qkv, int8 {int8}, {threads} thread(s)");
            let mut b = zeroshot::CpuBackend::new(threads);
            let emb = embeddings(vocab, dim, 16);
            let parts: Vec<Linear> = (0..3).map(|i| linear(dim, dim, 50 + 2 * i)).collect();
            let parts = if int8 { parts.iter().map(|l| int8_linear(l).0).collect() } else { parts };
            let copy = |l: &Linear| if int8 { clone_int8(l) } else { clone_linear(l) };
            let w = b.load_linear(Linear::stack(parts.iter().map(copy).collect())).unwrap();
            let input = b.upload_batch(&batch).unwrap();
            let x = b.embed(&input, &emb).unwrap();
            let plain = b.linear(&x, &w, None).unwrap().data().unwrap().to_vec();
            let all = b.qkv(&x, &w, &input, Queries::All).unwrap();
            assert_close(&format!("{what}, every query"), all.data().unwrap(), &plain, TOL);
            let cls = b.qkv(&x, &w, &input, Queries::Cls).unwrap();
            let kv = |t: &[f32]| t.chunks(3 * dim).flat_map(|r| &r[dim..]).copied().collect::<Vec<f32>>();
            assert_close(&format!("{what}, [CLS] queries: k | v"), &kv(cls.data().unwrap()), &kv(&plain), TOL);
            let q_cls = |t: &[f32]| {
                cls_of(t, &lengths, 3 * dim).chunks(3 * dim).flat_map(|r| &r[..dim]).copied().collect::<Vec<f32>>()
            };
            assert_close(&format!("{what}, [CLS] queries: q"), &q_cls(cls.data().unwrap()), &q_cls(&plain), TOL);
        }
    }
}

/// The CPU's [CLS]-only self-attention (reassociated: no key or value computed, see
/// `cpu/cls_attention.rs`) against its q | k | v projection then attention, which the tests above
/// check against naive loops: f32 and int8 weights as `load_linear` keeps them, 1 and 2 threads,
/// one-token sequences, odd sizes and typeform's; and the GPU's (the trait's default) against it.
#[test]
fn cls_self_attention_matches_the_projection_then_attention() {
    let mut gpu = gpu_backend(GpuOptions::default());
    // (sequence lengths, dim, heads)
    let cases: [(&[usize], usize, usize); 4] =
        [(&[1], 4, 1), (&[37, 5, 1, 36], 61, 1), (&[7, 3], 24, 3), (&[22, 21, 23, 22, 19], 768, 12)];
    for (case, (lengths, dim, heads)) in cases.into_iter().enumerate() {
        let batch = batch(lengths, 97, 9);
        let x = tensor(&[lengths.iter().sum(), dim], 60 + case as u64, 1.0); // [T, D]: real tokens only
        // q | k | v stacked as the loader stacks them, each part f32 or int8.
        let qkv_weight = |int8: bool| {
            let parts = (0..3).map(|i| linear(dim, dim, 70 + 2 * i));
            Linear::stack(parts.map(|l| if int8 { int8_linear(&l).0 } else { l }).collect())
        };
        for (int8, threads) in [(false, 1), (false, 2), (true, 1), (true, 2)] {
            let what = format!("{lengths:?} dim {dim} heads {heads}, int8 {int8}, {threads} thread(s)");
            let mut b = zeroshot::CpuBackend::new(threads);
            let w = b.load_linear(qkv_weight(int8)).unwrap();
            let input = b.upload_batch(&batch).unwrap();
            let qkv = b.qkv(&x, &w, &input, Queries::All).unwrap();
            let want = b.attention(&qkv, None, &input, heads, Queries::Cls).unwrap();
            let got = b.self_attention(&x, &w, None, &input, heads, Queries::Cls).unwrap();
            assert_eq!(got.shape, [lengths.len(), dim], "{what}");
            assert_close(&format!("cpu [CLS] self-attention {what}"), got.data().unwrap(), want.data().unwrap(), TOL);
            let Some(gpu) = gpu.as_mut().filter(|_| !int8 && threads == 1 && dim < 768) else { continue };
            let padded = Tensor::from_vec(vec![batch.rows(), dim], padded(x.data().unwrap(), lengths, dim));
            let (x, w) = (gpu.load_tensor(padded).unwrap(), gpu.load_linear(qkv_weight(false)).unwrap());
            let input = gpu.upload_batch(&batch).unwrap();
            let ctx = gpu.self_attention(&x, &w, None, &input, heads, Queries::Cls).unwrap();
            let ctx = pollster::block_on(gpu.read(&ctx)).unwrap();
            assert_close(&format!("gpu [CLS] self-attention {what}"), &ctx, got.data().unwrap(), TOL);
        }
    }
}

/// A packed [tokens, dim] tensor padded back to [batch*seq, dim] (zeros in the padding rows), as
/// the GPU holds activations.
fn padded(t: &[f32], lengths: &[usize], dim: usize) -> Vec<f32> {
    let seq = *lengths.iter().max().unwrap();
    let mut out = vec![0.0; lengths.len() * seq * dim];
    let mut at = 0;
    for (b, &len) in lengths.iter().enumerate() {
        out[b * seq * dim..][..len * dim].copy_from_slice(&t[at..at + len * dim]);
        at += len * dim;
    }
    out
}

/// A DeBERTa relative-attention case: (sequence lengths, dim, heads, position_buckets (0: none),
/// max_relative_positions, c2p, p2c).
type RelativeCase = (&'static [usize], usize, usize, usize, usize, bool, bool);

/// The relative terms of a case: its config, a random [2 span, terms * dim] projection and the
/// row of each distance up to the longest sequence.
fn relative_inputs(case: RelativeCase) -> (zeroshot::relative::RelativeAttention, Tensor, Tensor) {
    let (lengths, dim, _, position_buckets, max_relative_positions, c2p, p2c) = case;
    let relative = zeroshot::relative::RelativeAttention {
        position_buckets,
        max_relative_positions,
        c2p,
        p2c,
        share_att_key: false,
        norm_embeddings: false,
    };
    let width = dim * relative.terms();
    let projected = tensor(&[2 * relative.span(), width], 13, 1.0);
    let rows = relative.rows(*lengths.iter().max().unwrap());
    (relative, projected, Tensor::from_vec(vec![rows.len()], rows))
}

/// Disentangled attention in f64 over the padded [rows, 3*dim] qkv (every query row): per
/// sequence, head, query a and key b, softmax over b of (q_a . k_b + q_a . pos_key[r] + k_b .
/// pos_query[r]) * scale, r the row of distance a - b.
fn naive_disentangled(qkv: &[f32], case: RelativeCase, projected: &Tensor, rows: &Tensor) -> Vec<f32> {
    let (lengths, dim, heads, ..) = case;
    let (relative, seq, hd) = (relative_inputs(case).0, *lengths.iter().max().unwrap(), dim / heads);
    let (p, pw, table) = (projected.data().unwrap(), projected.shape[1], rows.data().unwrap());
    let scale = relative.score_scale(hd) as f64;
    let key_column = if relative.p2c { dim } else { 0 };
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum::<f64>();
    let mut want = vec![0.0f32; lengths.len() * seq * dim];
    for (b, &len) in lengths.iter().enumerate() {
        for h in 0..heads {
            let at = |part: usize, t: usize| &qkv[(b * seq + t) * 3 * dim + part * dim + h * hd..][..hd];
            let pos = |r: usize, column: usize| &p[r * pw + column + h * hd..][..hd];
            for a in 0..len {
                let scores: Vec<f64> = (0..len)
                    .map(|k| {
                        let r = table[a + table.len() / 2 - k] as usize;
                        let c2p = if relative.c2p { dot(at(0, a), pos(r, key_column)) } else { 0.0 };
                        let p2c = if relative.p2c { dot(at(1, k), pos(r, 0)) } else { 0.0 };
                        (dot(at(0, a), at(1, k)) + c2p + p2c) * scale
                    })
                    .collect();
                let ctx = naive_context(&scores, |k| at(2, k), hd);
                want[(b * seq + a) * dim + h * hd..][..hd].copy_from_slice(&ctx);
            }
        }
    }
    want
}

/// Disentangled attention of a case on one backend, every query and [CLS] only: [ctx, ctx_cls].
fn run_disentangled<B: Backend>(b: &mut B, case: RelativeCase, packed: bool) -> [Vec<f32>; 2] {
    let (lengths, dim, heads, ..) = case;
    let (relative, projected, rows) = relative_inputs(case);
    let batch = batch(lengths, 97, 9);
    let qkv = held(qkv_values(&batch, dim).data().unwrap(), lengths, 3 * dim, packed);
    let qkv = b.load_tensor(Tensor::from_vec(vec![qkv.len() / (3 * dim), 3 * dim], qkv)).unwrap();
    let (projected, rows) = (b.load_tensor(projected).unwrap(), b.load_tensor(rows).unwrap());
    let hd = dim / heads;
    let positions = zeroshot::backend::Positions {
        projected: &projected,
        rows: &rows,
        c2p: relative.c2p,
        p2c: relative.p2c,
        scale: relative.score_scale(hd),
    };
    let input = b.upload_batch(&batch).unwrap();
    let ctx = b.attention(&qkv, Some(positions), &input, heads, Queries::All).unwrap();
    let ctx_cls = b.attention(&qkv, Some(positions), &input, heads, Queries::Cls).unwrap();
    [&ctx, &ctx_cls].map(|t| pollster::block_on(b.read(t)).unwrap())
}

/// DeBERTa's attention with its relative terms: the CPU against naive f64 loops, every query and
/// the [CLS] rows only, at 1 and 2 threads; the GPU against the CPU. Cases: one token; odd sizes
/// with padding and c2p alone; distances clamped without buckets and p2c alone; DeBERTa-v3's
/// buckets (256 of 512) at typeform's head size; a text past the CPU's block of queries (256)
/// and one past the GPU kernel's chunk of keys (1024), both far past their buckets.
#[test]
fn disentangled_attention_on_small_odd_and_large_shapes() {
    let mut gpu = gpu_backend(GpuOptions::default());
    let cases: [RelativeCase; 6] = [
        (&[1], 4, 1, 8, 32, true, true),
        (&[37, 5, 36], 61, 1, 8, 32, true, false),
        (&[7, 3], 24, 3, 0, 4, false, true),
        (&[100, 128, 90], 768, 12, 256, 512, true, true),
        (&[300, 40], 8, 2, 16, 64, true, true),
        (&[1100, 7], 16, 2, 8, 32, true, true),
    ];
    for case in cases {
        let (lengths, dim, heads, buckets, max_rel, c2p, p2c) = case;
        let what = format!("{lengths:?} dim {dim} heads {heads} buckets {buckets}/{max_rel} c2p {c2p} p2c {p2c}");
        let (_, projected, rows) = relative_inputs(case);
        let qkv = qkv_values(&batch(lengths, 97, 9), dim);
        let want = held(&naive_disentangled(qkv.data().unwrap(), case, &projected, &rows), lengths, dim, true);
        let mut cpu = Vec::new();
        for threads in [1, 2] {
            cpu = run_disentangled(&mut zeroshot::CpuBackend::new(threads), case, true).to_vec();
            assert_close(&format!("cpu disentangled attention {what}, {threads} thread(s)"), &cpu[0], &want, TOL);
            let cls = cls_of(&want, lengths, dim);
            assert_close(&format!("cpu disentangled attention [CLS] {what}, {threads} thread(s)"), &cpu[1], &cls, TOL);
        }
        let Some(gpu) = gpu.as_mut() else { continue };
        let got = run_disentangled(gpu, case, false);
        assert_close(&format!("gpu disentangled attention {what}"), &held(&got[0], lengths, dim, true), &cpu[0], TOL);
        assert_close(&format!("gpu disentangled attention [CLS] {what}"), &got[1], &cpu[1], TOL);
    }
}

/// DeBERTa's embeddings: an f16 word table (gathered as stored), no position table, token types,
/// the sum projected from E to dim (`embed_proj`, no bias), then LayerNorm; against f64 loops on
/// the CPU, the GPU against the CPU; and `layer_norm` alone.
#[test]
fn projected_embeddings_without_positions_and_layer_norm() {
    let mut gpu = gpu_backend(GpuOptions::default());
    let (vocab, lengths) = (97, [5usize, 1, 9]);
    for (e, dim) in [(12, 16), (24, 24), (33, 61)] {
        let words = random(vocab * e, 1, 1.0);
        let halves: Vec<u8> = words.iter().flat_map(|&w| half::f16::from_f32(w).to_le_bytes()).collect();
        let emb = |projected: bool| Embeddings {
            word_embeddings: Tensor::from_f16_bytes(vec![vocab, e], halves.clone()),
            position_embeddings: None,
            token_type_embeddings: tensor(&[2, e], 4, 1.0),
            projection: projected.then(|| Linear {
                weight: tensor(&[dim, e], 6, 0.5),
                bias: Tensor::from_vec(vec![dim], vec![0.0; dim]),
            }),
            layer_norm: layer_norm(dim, 3),
        };
        let projected = e != dim;
        let batch = batch(&lengths, vocab as u32, 9);
        let (cpu, cpu_ln) = run_embed(&mut zeroshot::CpuBackend::new(2), &batch, emb(projected), dim);
        let want = naive_projected_embed(&batch, &emb(projected), &lengths, dim);
        let what = format!("E {e} dim {dim}");
        assert_close(&format!("cpu embed, f16 words, no positions, {what}"), &cpu, &want, TOL);
        let Some(gpu) = gpu.as_mut() else { continue };
        let (got, got_ln) = run_embed(gpu, &batch, emb(projected), dim);
        assert_close(
            &format!("gpu embed, f16 words, no positions, {what}"),
            &held(&got, &lengths, dim, true),
            &cpu,
            TOL,
        );
        assert_close(&format!("gpu layer_norm {what}"), &held(&got_ln, &lengths, dim, true), &cpu_ln, TOL);
    }
}

/// embed, then layer_norm of its output with another LayerNorm, on one backend.
fn run_embed<B: Backend>(b: &mut B, batch: &Batch, emb: Embeddings, dim: usize) -> (Vec<f32>, Vec<f32>) {
    let projection = emb.projection.map(|l| b.load_linear(l).unwrap());
    let emb = Embeddings { projection: None, ..emb };
    let emb = Embeddings { projection, ..emb.try_map(&mut |t| b.load_tensor(t)).unwrap() };
    let ln = layer_norm(dim, 21).try_map(&mut |t| b.load_tensor(t)).unwrap();
    let input = b.upload_batch(batch).unwrap();
    let x = b.embed(&input, &emb).unwrap();
    let y = b.layer_norm(&x, &ln).unwrap();
    (pollster::block_on(b.read(&x)).unwrap(), pollster::block_on(b.read(&y)).unwrap())
}

/// LayerNorm(projection(word + token type)) per real token in f64, words widened from f16.
fn naive_projected_embed(batch: &Batch, emb: &Embeddings, lengths: &[usize], dim: usize) -> Vec<f32> {
    let e = emb.word_embeddings.shape[1];
    let words = emb.word_embeddings.dequantized();
    let types = emb.token_type_embeddings.data().unwrap();
    let mut out = Vec::new();
    for (b, &len) in lengths.iter().enumerate() {
        for t in 0..len {
            let at = b * batch.seq + t;
            let (id, kind) = (batch.ids[at] as usize, batch.type_ids[at] as usize);
            let sum: Vec<f64> = (0..e).map(|i| words[id * e + i] as f64 + types[kind * e + i] as f64).collect();
            let x: Vec<f64> = match &emb.projection {
                Some(p) => {
                    let w = p.weight.data().unwrap();
                    (0..dim).map(|o| (0..e).map(|i| w[o * e + i] as f64 * sum[i]).sum()).collect()
                }
                None => sum,
            };
            out.extend(naive_layer_norm(&x, &emb.layer_norm));
        }
    }
    out
}
