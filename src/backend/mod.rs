//! The few operations the encoder needs, behind one small trait so the same forward runs on the
//! CPU and on the GPU. All dispatch happens in [`crate::model`].

pub mod cpu;
pub mod dot;
#[cfg(feature = "gpu")]
pub mod gpu;

use crate::config::{Activation, Config};
use crate::error::Result;
use crate::weights::{Embeddings, LayerNorm, Linear, Tensor, Weights};

/// Added to the attention score of a padding key. Large and finite: -inf would turn a fully
/// masked row into NaN (-inf - -inf), and never occurs here since [CLS] is always attended.
pub const MASKED: f32 = -1e30;

/// Token rows (sequences x padded length) in one forward unless a backend needs fewer. Larger
/// label sets run in chunks, so memory stays bounded (about 12 KB of FFN activations per row at
/// typeform's size: ~100 MB, under WebGPU's 128 MiB default binding size).
pub const MAX_BATCH_ROWS: usize = 8192;

/// Id written into padding positions (its embedding never reaches a real token).
const PAD_ID: u32 = 0;

/// A padded batch of token sequences, the model's input.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Token ids, [batch, seq] row-major, padding filled with `PAD_ID`.
    pub ids: Vec<u32>,
    /// Token types (transformers' `token_type_ids`), [batch, seq], 0 in the padding.
    pub type_ids: Vec<u32>,
    /// Position id of every sequence's first token (the model's `first_position`); token t of a
    /// sequence has position `first_position + t`.
    pub first_position: usize,
    /// Additive attention bias per key, [batch, seq]: 0 where transformers' `attention_mask`
    /// is 1 (attend), [`MASKED`] where it is 0 (padding).
    pub key_bias: Vec<f32>,
    /// Number of sequences.
    pub batch: usize,
    /// Tokens per sequence after padding (the longest sequence).
    pub seq: usize,
}

impl Batch {
    /// Pads `sequences` to the longest, every token of type 0, positions from 0.
    pub fn pad(sequences: &[Vec<u32>]) -> Batch {
        let types: Vec<Vec<u32>> = sequences.iter().map(|s| vec![0; s.len()]).collect();
        Batch::pad_typed(sequences, &types, 0)
    }

    /// Pads `sequences` and their token types (each as long as its sequence) to the longest. This
    /// is the one place where the attention mask convention (transformers: 1 = attend) becomes
    /// our additive bias.
    pub fn pad_typed(sequences: &[Vec<u32>], types: &[Vec<u32>], first_position: usize) -> Batch {
        let seq = sequences.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(sequences.len() * seq);
        let mut type_ids = Vec::with_capacity(sequences.len() * seq);
        let mut key_bias = Vec::with_capacity(sequences.len() * seq);
        for (s, t) in sequences.iter().zip(types) {
            let attention_mask = (0..seq).map(|i| u8::from(i < s.len()));
            key_bias.extend(attention_mask.map(|m| if m == 1 { 0.0 } else { MASKED }));
            ids.extend_from_slice(s);
            ids.resize(ids.len() + seq - s.len(), PAD_ID);
            type_ids.extend(t.iter().take(s.len()));
            type_ids.resize(ids.len(), 0);
        }
        Batch { ids, type_ids, first_position, key_bias, batch: sequences.len(), seq }
    }

    /// Total token rows, `batch * seq`.
    pub fn rows(&self) -> usize {
        self.batch * self.seq
    }

    /// Each sequence's attended tokens: its key_bias's leading zeros ([`Batch::pad`] puts the
    /// padding last).
    pub fn lengths(&self) -> Vec<usize> {
        let per_sequence = self.key_bias.chunks(self.seq.max(1)).take(self.batch);
        per_sequence.map(|bias| bias.iter().take_while(|&&b| b == 0.0).count()).collect()
    }
}

/// Which query rows attention computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queries {
    /// Every token: [batch*seq, dim] out.
    All,
    /// Only each sequence's [CLS] row (position 0): [batch, dim] out. The last layer needs no
    /// more, since the classifier reads nothing else.
    Cls,
}

/// One layer's relative-position terms (DeBERTa's c2p and p2c, see [`crate::relative`]): the
/// score of query a and key b adds `q_a . pos_key[r]` (c2p) and `k_b . pos_query[r]` (p2c), head by
/// head, where `r = rows[a - b + max_tokens - 1]`, and every score is multiplied by `scale`.
pub struct Positions<'a, T> {
    /// The layer's projected relative embeddings, [2 * span, terms * dim]: the position queries
    /// (with p2c) at column 0, then the position keys (with c2p); heads side by side in each.
    pub projected: &'a T,
    /// The row of `projected` for each distance from `-(max_tokens - 1)`, as f32:
    /// [2 * max_tokens - 1] (so max_tokens - 1 is distance 0).
    pub rows: &'a T,
    pub c2p: bool,
    pub p2c: bool,
    /// `1 / sqrt(head_dim * (1 + terms))`, for the content term too.
    pub scale: f32,
}

// Copy whatever T is: the struct holds only references (a derive would ask T: Copy).
impl<T> Clone for Positions<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Positions<'_, T> {}

impl<T> Positions<'_, T> {
    /// Columns of `projected`: one `dim` per term.
    pub fn width(&self, dim: usize) -> usize {
        dim * (usize::from(self.c2p) + usize::from(self.p2c))
    }

    /// The column of `projected` where the position keys start.
    pub fn key_column(&self, dim: usize) -> usize {
        if self.p2c { dim } else { 0 }
    }
}

impl Queries {
    /// Query rows per sequence.
    pub fn per_sequence(self, seq: usize) -> usize {
        match self {
            Queries::All => seq,
            Queries::Cls => 1,
        }
    }
}

/// A compute backend: holds the weights in its own form and runs the ops on [`Batch`]es.
///
/// Tensors are 2-D, row-major, and know their shape. `read` is async because a GPU readback is
/// (on the web it cannot block); there is deliberately no `Send` bound, since wgpu types are not
/// `Send` on wasm. The CPU backend resolves at once.
#[allow(async_fn_in_trait)]
pub trait Backend {
    /// A weight or activation living on this backend.
    type Tensor;
    /// A batch's ids and mask as this backend reads them.
    type Input;

    /// What runs: "cpu" or "gpu".
    fn name(&self) -> &'static str;

    /// Moves a tensor onto the backend (an upload, for a GPU).
    fn load_tensor(&mut self, t: Tensor) -> Result<Self::Tensor>;

    /// Moves a Linear onto the backend, its weight laid out as `linear` wants it.
    fn load_linear(&mut self, l: Linear) -> Result<Linear<Self::Tensor>>;

    /// Takes the model's weights once, before any forward.
    fn load_weights(&mut self, weights: Weights) -> Result<Weights<Self::Tensor>> {
        // Both closures need the backend; a RefCell lends it to one at a time.
        let this = std::cell::RefCell::new(self);
        weights.try_map(|t| this.borrow_mut().load_tensor(t), |l| this.borrow_mut().load_linear(l))
    }

    /// Whether this backend's kernels can run `config` on texts of up to `max_tokens` tokens; an
    /// error (say, a GPU kernel's length limit) lets `auto` choose another backend at load.
    fn supports(&self, _config: &Config, _max_tokens: usize) -> Result<()> {
        Ok(())
    }

    /// Padding rows a forward may carry where its sequences' lengths differ by over an eighth: what
    /// one more forward would cost in fixed overhead. A GPU's dispatches and readback cost as much
    /// as many rows; the CPU computes no padding row at all, so it takes any.
    fn padding_allowance(&self) -> usize {
        0
    }

    /// Most token rows (sequences x padded length) one forward may take on this backend.
    fn max_rows(&self, _config: &Config) -> usize {
        MAX_BATCH_ROWS
    }

    /// Makes a batch available to the ops below.
    fn upload_batch(&mut self, batch: &Batch) -> Result<Self::Input>;

    /// word + token-type + position embeddings (no position where `emb` has none), projected to
    /// `dim` where `emb` has a projection, then LayerNorm: [batch*seq, dim], or without the
    /// padding rows where the backend leaves them out (the CPU: `cpu::Packed`); every op after
    /// follows suit.
    fn embed(&mut self, input: &Self::Input, emb: &Embeddings<Self::Tensor>) -> Result<Self::Tensor>;

    /// `x @ w.T + b`, then `act`: [rows, in] -> [rows, out].
    fn linear(&mut self, x: &Self::Tensor, w: &Linear<Self::Tensor>, act: Option<Activation>) -> Result<Self::Tensor>;

    /// The fused q | k | v projection: `linear(x, w)` with `w` the three weights stacked, [rows,
    /// 3*dim]. Attention reads the queries of `queries`'s rows only, so with [`Queries::Cls`] a
    /// backend may leave the other rows' q columns unset (the CPU computes each set of rows that
    /// repeats an earlier sequence's once: see `cpu.rs`; for [CLS] queries its forward runs
    /// [`Backend::self_attention`]'s own path, which calls no `qkv`).
    fn qkv(
        &mut self,
        x: &Self::Tensor,
        w: &Linear<Self::Tensor>,
        _input: &Self::Input,
        _queries: Queries,
    ) -> Result<Self::Tensor> {
        self.linear(x, w, None)
    }

    /// Multi-head self-attention core: per sequence and head, softmax(q k^T / sqrt(d) + mask) v,
    /// or with `positions` softmax((q k^T + c2p + p2c) * scale + mask) v. `qkv` is
    /// [batch*seq, 3*dim]: q | k | v side by side (the fused projection), heads side by side
    /// within each. Keys and values are every token's; queries are every token's
    /// ([batch*seq, dim] out) or only the [CLS] rows' ([batch, dim] out), see [`Queries`].
    fn attention(
        &mut self,
        qkv: &Self::Tensor,
        positions: Option<Positions<'_, Self::Tensor>>,
        input: &Self::Input,
        n_heads: usize,
        queries: Queries,
    ) -> Result<Self::Tensor>;

    /// Self-attention from the layer's input `x` ([batch*seq, dim]) and its fused q | k | v
    /// Linear: [`Backend::qkv`], then [`Backend::attention`], [R, dim] with R as `queries` says.
    /// A backend may compute the same another way (the CPU reassociates the [CLS]-only case so
    /// that no key or value is computed: see `cpu/cls_attention.rs`).
    fn self_attention(
        &mut self,
        x: &Self::Tensor,
        w: &Linear<Self::Tensor>,
        positions: Option<Positions<'_, Self::Tensor>>,
        input: &Self::Input,
        n_heads: usize,
        queries: Queries,
    ) -> Result<Self::Tensor> {
        let qkv = self.qkv(x, w, input, queries)?;
        self.attention(&qkv, positions, input, n_heads, queries)
    }

    /// `LayerNorm(x + residual)`: [rows, dim]. `residual` may be a [`Backend::cls_rows`] view.
    fn add_layer_norm(
        &mut self,
        x: &Self::Tensor,
        residual: &Self::Tensor,
        ln: &LayerNorm<Self::Tensor>,
    ) -> Result<Self::Tensor>;

    /// `LayerNorm(x)`: [rows, dim] (DeBERTa's relative embeddings).
    fn layer_norm(&mut self, x: &Self::Tensor, ln: &LayerNorm<Self::Tensor>) -> Result<Self::Tensor>;

    /// The [CLS] row (position 0) of every sequence: [batch*seq, dim] -> [batch, dim].
    fn cls_rows(&mut self, x: &Self::Tensor, input: &Self::Input) -> Result<Self::Tensor>;

    /// Copies a tensor back to the host, row-major.
    async fn read(&mut self, t: &Self::Tensor) -> Result<Vec<f32>>;
}
