//! A model with typeform's exact shapes and random weights, made in-process, so a benchmark
//! needs no 268 MB download (and a GPU machine no file carried over).

use crate::config::Config;
use crate::error::Result;
use crate::weights::{Attention, Block, Embeddings, Ffn, LayerNorm, Linear, Tensor, Weights};

/// `config.json` of typeform/distilbert-base-uncased-mnli, as the Hub has it (the fields we read).
pub const TYPEFORM_CONFIG: &str = r#"{
  "model_type": "distilbert", "vocab_size": 30522, "dim": 768, "n_layers": 6, "n_heads": 12,
  "hidden_dim": 3072, "max_position_embeddings": 512, "activation": "gelu",
  "id2label": {"0": "ENTAILMENT", "1": "NEUTRAL", "2": "CONTRADICTION"},
  "label2id": {"ENTAILMENT": 0, "NEUTRAL": 1, "CONTRADICTION": 2}
}"#;

/// typeform's config.
pub fn typeform_config() -> Result<Config> {
    Config::from_json(TYPEFORM_CONFIG.as_bytes())
}

/// Uniform random values in [-scale, scale) from a xorshift stream.
struct Random(u64);

impl Random {
    fn new(seed: u64) -> Self {
        Random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn values(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                ((self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    fn tensor(&mut self, shape: &[usize], scale: f32) -> Tensor {
        Tensor::from_vec(shape.to_vec(), self.values(shape.iter().product(), scale))
    }

    fn linear(&mut self, out: usize, inp: usize) -> Linear {
        Linear { weight: self.tensor(&[out, inp], (3.0 / inp as f32).sqrt()), bias: self.tensor(&[out], 0.1) }
    }

    fn layer_norm(&mut self, dim: usize, eps: f32) -> LayerNorm {
        let gamma = self.values(dim, 0.1).iter().map(|g| 1.0 + g).collect();
        LayerNorm { weight: Tensor::from_vec(vec![dim], gamma), bias: self.tensor(&[dim], 0.1), eps }
    }
}

/// `n` deterministic pseudo-random values in [-scale, scale) (xorshift; tests use it too).
pub fn random_values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    Random::new(seed).values(n, scale)
}

/// Random weights of `config`'s shapes.
pub fn random_weights(config: &Config, seed: u64) -> Weights {
    let mut r = Random::new(seed);
    let (d, h, eps) = (config.dim, config.hidden_dim, config.layer_norm_eps);
    let embeddings = Embeddings {
        word_embeddings: r.tensor(&[config.vocab_size, d], 1.0),
        position_embeddings: Some(r.tensor(&[config.max_position_embeddings, d], 1.0)),
        token_type_embeddings: match config.type_vocab_size {
            0 => Tensor::from_vec(vec![1, d], vec![0.0; d]), // a family without types (see weights.rs)
            n => r.tensor(&[n, d], 1.0),
        },
        projection: None,
        layer_norm: r.layer_norm(d, eps),
    };
    let layers = (0..config.n_layers)
        .map(|_| Block {
            attention: Attention { qkv: r.linear(3 * d, d), output: r.linear(d, d) },
            attention_norm: r.layer_norm(d, eps),
            ffn: Ffn { up: r.linear(h, d), down: r.linear(d, h) },
            output_norm: r.layer_norm(d, eps),
        })
        .collect();
    let (pooler, classifier) = (r.linear(d, d), r.linear(config.num_labels(), d));
    Weights { embeddings, layers, pooler, classifier, relative: None }
}

/// Multiply-adds x 2 of one forward over `batch` sequences of `seq` tokens, as the forward does
/// them: every layer's fused qkv on every token; attention, its output projection and the FFN for every token
/// except in the last layer, which does them for the [CLS] rows only.
pub fn forward_flops(config: &Config, batch: usize, seq: usize) -> f64 {
    let (d, h, b) = (config.dim as f64, config.hidden_dim as f64, batch as f64);
    let (tokens, layers) = (b * seq as f64, config.n_layers as f64);
    // Per query row: scores and context over `seq` keys, output projection, FFN.
    let per_query = 2.0 * seq as f64 * d + d * d + 2.0 * d * h;
    let queries = (layers - 1.0) * tokens + b;
    let head = b * (d * d + d * config.num_labels() as f64);
    2.0 * (layers * tokens * 3.0 * d * d + queries * per_query + head)
}
