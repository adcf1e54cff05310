//! The `*ForSequenceClassification` forward of every [`crate::family::Family`] (DistilBERT, BERT,
//! RoBERTa, XLM-R, DeBERTa-v2: post-LN encoders), on any [`Backend`]. One function, top to
//! bottom, shapes in comments (B = sequences, L = tokens each, D = dim, F = hidden_dim, S = the
//! relative positions' span; B*L counts the padding rows, which the CPU backend leaves out). The
//! families differ only in data read at load: tensor names, position offset, token types,
//! epsilons, activations, and DeBERTa's relative positions ([`crate::relative`]).

use crate::backend::{Backend, Batch, Positions, Queries};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::weights::{Relative, Weights};

/// The model with its weights held by a backend.
pub struct Encoder<B: Backend> {
    pub config: Config,
    backend: B,
    weights: Weights<B::Tensor>,
    /// DeBERTa: each layer's relative embeddings through its position projections, [2S, terms*D].
    /// They depend on the weights only: the first forward that completes computes them.
    positions: Vec<B::Tensor>,
}

impl<B: Backend> Encoder<B> {
    /// Hands the weights to the backend (an upload, for a GPU).
    pub fn new(config: Config, weights: Weights, mut backend: B) -> Result<Self> {
        if weights.layers.is_empty() {
            return Err(Error::ZeroSize { field: "n_layers" });
        }
        let weights = backend.load_weights(weights)?;
        Ok(Encoder { config, backend, weights, positions: Vec::new() })
    }

    /// What runs the model: "cpu" or "gpu".
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// The backend running the model.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend, for its own hooks (a GPU's device-loss test hook, say).
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Padding rows a forward may carry for free (see [`Backend::padding_allowance`]).
    pub fn padding_allowance(&self) -> usize {
        self.backend.padding_allowance()
    }

    /// Most token rows one forward may take (the pipeline splits larger batches).
    pub fn max_rows(&self) -> usize {
        self.backend.max_rows(&self.config)
    }

    /// One tiny forward, so pipelines are compiled and buffers exist before the first real call.
    pub async fn warm_up(&mut self) -> Result<()> {
        let batch = Batch { first_position: self.config.first_position, ..Batch::pad(&[vec![0, 0]]) };
        self.forward(&batch).await.map(drop)
    }

    /// Logits for every sequence of the batch: [B, num_labels], row-major.
    pub async fn forward(&mut self, batch: &Batch) -> Result<Vec<f32>> {
        self.check(batch)?;
        let (b, w, cfg) = (&mut self.backend, &self.weights, &self.config);
        let input = b.upload_batch(batch)?;
        // DeBERTa, the first time: LayerNorm(relative embeddings) [2S, D] through each layer's
        // position projections: [2S, terms*D] per layer (recorded in this forward's submission).
        let fresh = match (&w.relative, self.positions.is_empty()) {
            (Some(relative), true) => project_positions(b, relative)?,
            _ => Vec::new(),
        };
        let projected = if fresh.is_empty() { &self.positions } else { &fresh };
        // LayerNorm(word + token type + position), DeBERTa's projected to D where its embeddings
        // are narrower: [B*L, D]
        let mut x = b.embed(&input, &w.embeddings)?;
        let last = w.layers.len() - 1; // `new` refuses 0 layers
        for (i, layer) in w.layers.iter().enumerate() {
            // The classifier reads only [CLS]: after the last layer's attention (whose keys and
            // values still need every token) only the [CLS] rows go on. R = B*L, or B in the last layer.
            let queries = if i == last { Queries::Cls } else { Queries::All };
            let att = &layer.attention;
            // softmax(q k^T / sqrt(D / n_heads)) v per head, q | k | v from one fused Linear;
            // DeBERTa: softmax((q k^T + c2p + p2c) / sqrt(3 D / n_heads)) v.
            let positions = layer_positions(cfg, w, projected, i)?;
            let ctx = b.self_attention(&x, &att.qkv, positions, &input, cfg.n_heads, queries)?; // [R, D]
            let residual = if i == last { b.cls_rows(&x, &input)? } else { x }; // [R, D]
            let sa = b.linear(&ctx, &att.output, None)?; // [R, D]
            x = b.add_layer_norm(&sa, &residual, &layer.attention_norm)?; // post-LN: [R, D]
            let h = b.linear(&x, &layer.ffn.up, Some(cfg.activation))?; // [R, F]
            let f = b.linear(&h, &layer.ffn.down, None)?; // [R, D]
            x = b.add_layer_norm(&f, &x, &layer.output_norm)?; // [R, D]
        }
        // dense + ReLU (DistilBERT) or tanh (BERT's pooler, RoBERTa's head) on [CLS]: [B, D]
        let pooled = b.linear(&x, &w.pooler, Some(cfg.head_activation))?;
        let logits = b.linear(&pooled, &w.classifier, None)?; // [B, num_labels]
        let logits = b.read(&logits).await?;
        if !fresh.is_empty() {
            // Computed and read back: kept, and the projections (copies, on some backends) let go.
            self.positions = fresh;
            if let Some(relative) = &mut self.weights.relative {
                relative.projections = Vec::new();
            }
        }
        Ok(logits)
    }

    /// Refuses batches the embeddings cannot index, so no backend ever reads out of bounds.
    fn check(&self, batch: &Batch) -> Result<()> {
        if batch.batch == 0 || batch.seq == 0 {
            return Err(Error::Backend("empty batch".into()));
        }
        if batch.seq > self.config.max_tokens() || batch.first_position != self.config.first_position {
            return Err(Error::Backend(format!(
                "sequences of {} tokens from position {} exceed the model's {} positions from {}",
                batch.seq,
                batch.first_position,
                self.config.max_tokens(),
                self.config.first_position
            )));
        }
        let types = self.config.type_vocab_size.max(1); // one zero row where the family has none
        if let Some(&kind) = batch.type_ids.iter().find(|&&t| t as usize >= types) {
            return Err(Error::Backend(format!("token type {kind} outside the model's {types}")));
        }
        if let Some(&id) = batch.ids.iter().find(|&&id| id as usize >= self.config.vocab_size) {
            return Err(Error::TokenIdOutOfRange { id, vocab_size: self.config.vocab_size });
        }
        Ok(())
    }
}

/// Each layer's relative embeddings, LayerNorm'ed where the model says, through its position
/// projections: [2S, D] -> [2S, terms*D] per layer.
fn project_positions<B: Backend>(b: &mut B, relative: &Relative<B::Tensor>) -> Result<Vec<B::Tensor>> {
    let normed = relative.norm.as_ref().map(|ln| b.layer_norm(&relative.embeddings, ln)).transpose()?;
    let embeddings = normed.as_ref().unwrap_or(&relative.embeddings); // [2S, D]
    relative.projections.iter().map(|p| b.linear(embeddings, p, None)).collect()
}

/// Layer `i`'s relative-position terms, where the model has them.
fn layer_positions<'a, T>(
    cfg: &Config,
    w: &'a Weights<T>,
    projected: &'a [T],
    i: usize,
) -> Result<Option<Positions<'a, T>>> {
    let (Some(relative), Some(rel)) = (&w.relative, &cfg.relative) else { return Ok(None) };
    let projected =
        projected.get(i).ok_or_else(|| Error::Backend(format!("layer {i} has no projected relative positions")))?;
    let scale = rel.score_scale(cfg.head_dim());
    Ok(Some(Positions { projected, rows: &relative.rows, c2p: rel.c2p, p2c: rel.p2c, scale }))
}
