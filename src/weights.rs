//! An encoder's weights from `model.safetensors`: one struct per module, the same for every
//! [`Family`](crate::family::Family); the family's [`Names`] say which checkpoint tensor fills which field.
//!
//! F32 tensors are borrowed from the loaded file (no copy of the 268 MB buffer) whenever their
//! bytes are 4-byte aligned; F16/BF16 (and misaligned F32) are converted to owned f32.

use std::sync::Arc;

use safetensors::{Dtype, SafeTensors};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::family::{Names, RelativeNames};
use crate::relative::RelativeAttention;

/// The bytes of a `model.safetensors` file, shared by every tensor borrowed from it.
pub type WeightBytes = Arc<Vec<u8>>;

/// One tensor, row-major: f32 values, or int8 values with one f32 scale per row (the int8
/// format of `zeroshot convert`: a Linear weight's output rows, the word embedding's words).
pub struct Tensor {
    pub shape: Vec<usize>,
    data: Data,
}

enum Data {
    /// `len` f32 values starting at byte `start` of the file; checked 4-byte aligned at load.
    Borrowed {
        bytes: WeightBytes,
        start: usize,
        len: usize,
    },
    Owned(Vec<f32>),
    /// `len` little-endian f16 values starting at byte `start` of the file: an f16 word
    /// embedding, which is only gathered, so it is kept as stored (widened row by row).
    F16 {
        bytes: WeightBytes,
        start: usize,
        len: usize,
    },
    /// Row r's values are `q[r * cols..][..cols] as f32 * scales[r]`, as the converter wrote them.
    Int8 {
        q: Int8Data,
        scales: Vec<f32>,
    },
    /// Tensors of one trailing shape stacked along the first axis, each kept as loaded: q | k | v,
    /// which the wasm build's matmul reads in place from the file (a joined copy would be 42 MB
    /// of typeform's 268); the other backends join them at load ([`Tensor::joined`]).
    Stacked(Vec<Tensor>),
    /// Column c's values are `q[r * cols + c] as f32 * scales[c]`: an int8 Linear weight
    /// transposed to [in, out], as the native CPU backend keeps it for gemm.
    Int8ByColumn {
        q: Vec<i8>,
        scales: Vec<f32>,
    },
}

/// The int8 values of a tensor: read in place from the file, or owned (made in memory).
enum Int8Data {
    Borrowed { bytes: WeightBytes, start: usize, len: usize },
    Owned(Vec<i8>),
}

/// A tensor's values as they are held.
#[derive(Clone, Copy)]
pub enum Values<'a> {
    F32(&'a [f32]),
    /// [rows, cols] int8 values and their [rows] scales.
    Int8 {
        q: &'a [i8],
        scales: &'a [f32],
    },
    /// Row blocks held apart, in order (see [`Tensor::stack`]).
    Stacked(&'a [Tensor]),
    /// Little-endian f16 values, two bytes each (an f16 word embedding).
    F16(&'a [u8]),
    /// [rows, cols] int8 values and their [cols] scales (see [`Tensor::from_int8_by_column`]).
    Int8ByColumn {
        q: &'a [i8],
        scales: &'a [f32],
    },
}

impl Tensor {
    /// The f32 values, row-major; an error for int8 weights, which only the ops that read
    /// [`Tensor::values`] take (matmul weights, the embedding gather).
    pub fn data(&self) -> Result<&[f32]> {
        match self.values() {
            Values::F32(values) => Ok(values),
            Values::Int8 { .. } | Values::Stacked(_) | Values::Int8ByColumn { .. } | Values::F16(_) => {
                Err(Error::Backend(format!(
                    "an int8, f16 or stacked tensor of shape {:?} reached an op that takes only one f32 block",
                    self.shape
                )))
            }
        }
    }

    /// The values as held: f32, or int8 with per-row scales.
    pub fn values(&self) -> Values<'_> {
        match &self.data {
            // Alignment was checked when the tensor was made, and an Arc'd Vec never moves.
            Data::Borrowed { bytes, start, len } => Values::F32(bytemuck::cast_slice(&bytes[*start..*start + len * 4])),
            Data::Owned(values) => Values::F32(values),
            Data::Int8 { q, scales } => {
                let q = match q {
                    Int8Data::Borrowed { bytes, start, len } => bytemuck::cast_slice(&bytes[*start..*start + len]),
                    Int8Data::Owned(q) => q,
                };
                Values::Int8 { q, scales }
            }
            Data::Stacked(parts) => Values::Stacked(parts),
            Data::Int8ByColumn { q, scales } => Values::Int8ByColumn { q, scales },
            Data::F16 { bytes, start, len } => Values::F16(&bytes[*start..*start + len * 2]),
        }
    }

    /// The f32 values whatever the format: int8 rows times their scales, exactly as torch's
    /// `q.float() * scale[:, None]` (one f32 multiply each).
    pub fn dequantized(&self) -> Vec<f32> {
        match self.values() {
            Values::F32(values) => values.to_vec(),
            Values::Int8 { q, scales } => dequantize(q, scales),
            Values::Stacked(parts) => parts.iter().flat_map(Tensor::dequantized).collect(),
            Values::Int8ByColumn { q, scales } => {
                let cols = scales.len().max(1);
                q.iter().enumerate().map(|(i, &v)| f32::from(v) * scales[i % cols]).collect()
            }
            Values::F16(bytes) => widen_f16(bytes),
        }
    }

    /// Whether the values are read in place from the file bytes (no copy).
    pub fn is_borrowed(&self) -> bool {
        match &self.data {
            Data::Borrowed { .. } | Data::Int8 { q: Int8Data::Borrowed { .. }, .. } | Data::F16 { .. } => true,
            Data::Stacked(parts) => parts.iter().all(Tensor::is_borrowed),
            Data::Owned(_) | Data::Int8 { .. } | Data::Int8ByColumn { .. } => false,
        }
    }

    /// Whether the values are int8, with a scale per row (or per column, transposed); for a
    /// stacked tensor, every part.
    pub fn is_int8(&self) -> bool {
        match &self.data {
            Data::Int8 { .. } | Data::Int8ByColumn { .. } => true,
            Data::Stacked(parts) => !parts.is_empty() && parts.iter().all(Tensor::is_int8),
            Data::Owned(_) | Data::Borrowed { .. } | Data::F16 { .. } => false,
        }
    }

    /// `parts` stacked along the first axis without a copy: [a, ..] + [b, ..] -> [a + b, ..].
    /// The parts must share their trailing shape (the loader's shape checks see to it).
    pub fn stack(parts: Vec<Tensor>) -> Tensor {
        Tensor { shape: stacked_shape(&parts), data: Data::Stacked(parts) }
    }

    /// One block of values: a stacked tensor's parts copied together (see [`Tensor::concat`]),
    /// any other tensor as it is. For backends that want every weight in one piece.
    pub fn joined(self) -> Tensor {
        match self.data {
            Data::Stacked(parts) => Tensor::concat(&parts),
            _ => self,
        }
    }

    /// An owned tensor; used by tests and synthetic models.
    pub fn from_vec(shape: Vec<usize>, values: Vec<f32>) -> Self {
        Tensor { shape, data: Data::Owned(values) }
    }

    /// An f16 tensor from its little-endian bytes (two per value), held as f16.
    pub fn from_f16_bytes(shape: Vec<usize>, bytes: Vec<u8>) -> Self {
        let len = bytes.len() / 2;
        Tensor { shape, data: Data::F16 { bytes: Arc::new(bytes), start: 0, len } }
    }

    /// An owned int8 tensor, [rows, cols] with one scale per row.
    pub fn from_int8(shape: Vec<usize>, q: Vec<i8>, scales: Vec<f32>) -> Self {
        Tensor { shape, data: Data::Int8 { q: Int8Data::Owned(q), scales } }
    }

    /// An owned int8 tensor, [rows, cols] with one scale per column (a transposed int8 weight).
    pub fn from_int8_by_column(shape: Vec<usize>, q: Vec<i8>, scales: Vec<f32>) -> Self {
        Tensor { shape, data: Data::Int8ByColumn { q, scales } }
    }
}

/// The shape of `parts` stacked along the first axis: [a, ..] + [b, ..] -> [a + b, ..].
fn stacked_shape(parts: &[Tensor]) -> Vec<usize> {
    let mut shape = parts.first().map_or_else(Vec::new, |t| t.shape.clone());
    if let Some(rows) = shape.first_mut() {
        *rows = parts.iter().map(|t| t.shape.first().copied().unwrap_or(0)).sum();
    }
    shape
}

/// `q [rows, cols]` times each row's scale: [rows, cols] f32.
pub fn dequantize(q: &[i8], scales: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; q.len()];
    dequantize_into(q, scales, &mut out);
    out
}

/// Little-endian f16 bytes as f32 values.
pub fn widen_f16(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
}

/// [`dequantize`] into `out` (as long as `q`), a loop the compiler vectorises: the matmuls call
/// it once per weight panel per forward.
pub fn dequantize_into(q: &[i8], scales: &[f32], out: &mut [f32]) {
    let cols = if scales.is_empty() { 0 } else { q.len() / scales.len() }.max(1);
    for ((row, dst), &s) in q.chunks_exact(cols).zip(out.chunks_exact_mut(cols)).zip(scales) {
        for (d, &v) in dst.iter_mut().zip(row) {
            *d = f32::from(v) * s;
        }
    }
}

// The module structs are generic over the tensor type `T`: loaded from the file they hold
// [`Tensor`]s; a backend maps them once to its own form (GPU buffers, say) with `try_map`.

/// `nn.Linear`: `weight` is [out, in], `bias` is [out].
pub struct Linear<T = Tensor> {
    pub weight: T,
    pub bias: T,
}

/// `nn.LayerNorm`: `weight` (gamma) and `bias` (beta), both [dim], and the config's epsilon.
pub struct LayerNorm<T = Tensor> {
    pub weight: T,
    pub bias: T,
    pub eps: f32,
}

/// The embeddings: `LayerNorm(word[id] + token_type[type] + position[p])`, the sum taken from
/// the embedding width E to `dim` by `projection` where a DeBERTa has its own `embedding_size`.
pub struct Embeddings<T = Tensor> {
    /// [vocab_size, E]
    pub word_embeddings: T,
    /// [max_position_embeddings, E]; `None` for a model of relative positions only (DeBERTa-v3).
    pub position_embeddings: Option<T>,
    /// [type_vocab_size, E]; one row of zeros for a model without types (adding it changes no
    /// bit), so every family's embedding is the same sum.
    pub token_type_embeddings: T,
    /// DeBERTa's `embed_proj` ([dim, E], a zero bias): where E differs from `dim`.
    pub projection: Option<Linear<T>>,
    pub layer_norm: LayerNorm<T>,
}

/// DeBERTa's relative positions: what each layer's c2p and p2c terms read
/// ([`crate::relative`]).
pub struct Relative<T = Tensor> {
    /// The relative-position embeddings, [2 * span, dim].
    pub embeddings: T,
    /// Their LayerNorm, where `norm_rel_ebd` asks for one.
    pub norm: Option<LayerNorm<T>>,
    /// Per layer, the Linear that takes `embeddings` to the position queries (p2c's) and then the
    /// position keys (c2p's), side by side: [terms * dim, dim]. Under `share_att_key` these are
    /// the layer's own query and key projections.
    pub projections: Vec<Linear<T>>,
    /// The row of `embeddings` for each distance ([`crate::relative::RelativeAttention::rows`]):
    /// [2 * max_tokens - 1].
    pub rows: T,
}

/// A block's self-attention projections.
pub struct Attention<T = Tensor> {
    /// q, k and v as one: weight [3*dim, dim] (stacked, see [`Tensor::stack`]), bias [3*dim],
    /// so one matmul gives q | k | v side by side ([rows, 3*dim]) instead of three.
    pub qkv: Linear<T>,
    /// [dim, dim]
    pub output: Linear<T>,
}

/// A block's feed-forward network: up [hidden_dim, dim], then the activation, then down [dim, hidden_dim].
pub struct Ffn<T = Tensor> {
    pub up: Linear<T>,
    pub down: Linear<T>,
}

/// A post-LN encoder block.
pub struct Block<T = Tensor> {
    pub attention: Attention<T>,
    pub attention_norm: LayerNorm<T>,
    pub ffn: Ffn<T>,
    pub output_norm: LayerNorm<T>,
}

/// All of a `*ForSequenceClassification` checkpoint.
pub struct Weights<T = Tensor> {
    pub embeddings: Embeddings<T>,
    pub layers: Vec<Block<T>>,
    /// The dense layer on [CLS], [dim, dim] (`pre_classifier`, `pooler.dense`, `classifier.dense`).
    pub pooler: Linear<T>,
    /// [num_labels, dim]
    pub classifier: Linear<T>,
    /// DeBERTa's relative positions; `None` for the other families.
    pub relative: Option<Relative<T>>,
}

impl Tensor {
    /// Tensors of equal trailing shape stacked along the first axis: [a, ..] + [b, ..] -> [a + b, ..].
    /// int8 parts stay int8 (their rows and scales stacked) when all are int8.
    pub fn concat(parts: &[Tensor]) -> Tensor {
        let shape = stacked_shape(parts);
        let int8: Option<Vec<_>> = parts
            .iter()
            .map(|t| match t.values() {
                Values::Int8 { q, scales } => Some((q, scales)),
                Values::F32(_) | Values::Stacked(_) | Values::Int8ByColumn { .. } | Values::F16(_) => None,
            })
            .collect();
        match int8 {
            Some(parts) if !parts.is_empty() => {
                let q = parts.iter().flat_map(|(q, _)| q.iter().copied()).collect();
                Tensor::from_int8(shape, q, parts.iter().flat_map(|(_, s)| s.iter().copied()).collect())
            }
            _ => {
                let mut values = Vec::with_capacity(parts.iter().map(|t| t.shape.iter().product::<usize>()).sum());
                for t in parts {
                    match t.values() {
                        Values::F32(v) => values.extend_from_slice(v),
                        Values::Int8 { .. } | Values::Stacked(_) | Values::Int8ByColumn { .. } | Values::F16(_) => {
                            values.extend(t.dequantized())
                        }
                    }
                }
                Tensor::from_vec(shape, values)
            }
        }
    }
}

impl Linear {
    /// Linears over the same input as one: their outputs side by side. The weights are stacked
    /// without a copy ([`Tensor::stack`]); the biases, a few KB, are copied together.
    pub fn stack(parts: Vec<Linear>) -> Linear {
        let (weights, biases): (Vec<Tensor>, Vec<Tensor>) = parts.into_iter().map(|l| (l.weight, l.bias)).unzip();
        Linear { weight: Tensor::stack(weights), bias: Tensor::concat(&biases) }
    }
}

impl<T> Linear<T> {
    /// Both tensors through `f` (a backend's upload, say).
    pub fn try_map<U>(self, f: &mut impl FnMut(T) -> Result<U>) -> Result<Linear<U>> {
        Ok(Linear { weight: f(self.weight)?, bias: f(self.bias)? })
    }
}

impl<T> LayerNorm<T> {
    /// Both tensors through `f`.
    pub fn try_map<U>(self, f: &mut impl FnMut(T) -> Result<U>) -> Result<LayerNorm<U>> {
        Ok(LayerNorm { weight: f(self.weight)?, bias: f(self.bias)?, eps: self.eps })
    }
}

impl<T> Embeddings<T> {
    /// Every tensor through `f` (a projection's too, as plain tensors: [`Weights::try_map`] gives
    /// it to the backend's Linear layout instead).
    pub fn try_map<U>(self, f: &mut impl FnMut(T) -> Result<U>) -> Result<Embeddings<U>> {
        Ok(Embeddings {
            word_embeddings: f(self.word_embeddings)?,
            position_embeddings: self.position_embeddings.map(&mut *f).transpose()?,
            token_type_embeddings: f(self.token_type_embeddings)?,
            projection: self.projection.map(|l| l.try_map(f)).transpose()?,
            layer_norm: self.layer_norm.try_map(f)?,
        })
    }
}

impl<T> Relative<T> {
    /// Every tensor through `tensor`, every Linear through `linear`.
    pub fn try_map<U>(
        self,
        tensor: &mut impl FnMut(T) -> Result<U>,
        linear: &mut impl FnMut(Linear<T>) -> Result<Linear<U>>,
    ) -> Result<Relative<U>> {
        Ok(Relative {
            embeddings: tensor(self.embeddings)?,
            norm: self.norm.map(|ln| ln.try_map(tensor)).transpose()?,
            projections: self.projections.into_iter().map(&mut *linear).collect::<Result<_>>()?,
            rows: tensor(self.rows)?,
        })
    }
}

impl<T> Weights<T> {
    /// Every Linear through `linear` and every other tensor through `tensor`, so a backend can
    /// lay out matmul weights its own way.
    pub fn try_map<U>(
        self,
        mut tensor: impl FnMut(T) -> Result<U>,
        mut linear: impl FnMut(Linear<T>) -> Result<Linear<U>>,
    ) -> Result<Weights<U>> {
        // The embeddings' projection is a Linear: it goes through `linear`, the rest through `tensor`.
        let mut embeddings = self.embeddings;
        let projection = embeddings.projection.take().map(&mut linear).transpose()?;
        let embeddings = Embeddings { projection, ..embeddings.try_map(&mut tensor)? };
        let mut layers = Vec::with_capacity(self.layers.len());
        for l in self.layers {
            let a = l.attention;
            layers.push(Block {
                attention: Attention { qkv: linear(a.qkv)?, output: linear(a.output)? },
                attention_norm: l.attention_norm.try_map(&mut tensor)?,
                ffn: Ffn { up: linear(l.ffn.up)?, down: linear(l.ffn.down)? },
                output_norm: l.output_norm.try_map(&mut tensor)?,
            });
        }
        let relative = self.relative.map(|r| r.try_map(&mut tensor, &mut linear)).transpose()?;
        Ok(Weights { embeddings, layers, pooler: linear(self.pooler)?, classifier: linear(self.classifier)?, relative })
    }
}

impl Weights {
    /// Reads and checks every tensor the model needs from a `model.safetensors` buffer, under the
    /// names of `config.family`.
    pub fn from_safetensors(bytes: WeightBytes, config: &Config) -> Result<Self> {
        let file = SafeTensors::deserialize(&bytes).map_err(|e| Error::Safetensors(e.to_string()))?;
        let names = config.family.names();
        check_layer_count(&file, names, config.n_layers)?;
        let loader = Loader { file, bytes: &bytes, names, eps: config.layer_norm_eps };
        let (d, h) = (config.dim, config.hidden_dim);
        let layers = (0..config.n_layers)
            .map(|i| loader.block(&format!("{}.{i}", names.layers), d, h))
            .collect::<Result<Vec<_>>>()?;
        let pooler = match names.pooler_in_backbone {
            true => loader.linear(names.pooler, d, d)?,
            false => loader.head_linear(names.pooler, d, d)?,
        };
        Ok(Weights {
            embeddings: loader.embeddings(config)?,
            layers,
            pooler,
            classifier: loader.head_linear(names.classifier, config.num_labels(), d)?,
            relative: loader.relative(config)?,
        })
    }
}

/// A block tensor beyond `n_layers` means config.json describes a truncated model, which would
/// run without error and give other scores than the file's author saw.
fn check_layer_count(file: &SafeTensors, names: &Names, n_layers: usize) -> Result<()> {
    let layer_of = |name: &str| {
        let rest = name.strip_prefix(names.backbone).and_then(|r| r.strip_prefix('.')).unwrap_or(name);
        let rest = rest.strip_prefix(names.layers)?.strip_prefix('.')?;
        rest.split('.').next()?.parse::<usize>().ok()
    };
    match file.names().into_iter().find(|name| layer_of(name).is_some_and(|i| i >= n_layers)) {
        Some(name) => Err(Error::Field {
            file: "config.json",
            field: "n_layers",
            reason: format!(
                "is {n_layers}, but model.safetensors has {name}: the model would run without its later layers"
            ),
        }),
        None => Ok(()),
    }
}

/// Looks tensors up by checkpoint name and checks them against the config.
struct Loader<'a> {
    file: SafeTensors<'a>,
    bytes: &'a WeightBytes,
    names: &'static Names,
    eps: f32,
}

impl Loader<'_> {
    fn embeddings(&self, config: &Config) -> Result<Embeddings> {
        let (n, e) = (self.names, config.embedding_size);
        let word = self.backbone(&format!("{}.weight", n.word_embeddings))?;
        let position_embeddings = match config.absolute_positions {
            true => Some(self.named(
                &self.backbone(&format!("{}.weight", n.position_embeddings))?,
                &[config.max_position_embeddings, e],
            )?),
            false => None,
        };
        let token_type_embeddings = match n.token_type_embeddings.filter(|_| config.type_vocab_size > 0) {
            Some(name) => self.named(&self.backbone(&format!("{name}.weight"))?, &[config.type_vocab_size, e])?,
            None => Tensor::from_vec(vec![1, e], vec![0.0; e]),
        };
        Ok(Embeddings {
            word_embeddings: self.word_table(&word, &[config.vocab_size, e])?,
            position_embeddings,
            token_type_embeddings,
            projection: self.embedding_projection(config)?,
            layer_norm: self.layer_norm(n.embeddings_norm, config.dim)?,
        })
    }

    /// DeBERTa's `embed_proj` (no bias: a zero one) where `embedding_size` differs from `dim`.
    fn embedding_projection(&self, config: &Config) -> Result<Option<Linear>> {
        let Some(rel) = self.names.relative.as_ref().filter(|_| config.embedding_size != config.dim) else {
            return Ok(None);
        };
        let name = self.backbone(&format!("{}.weight", rel.embedding_projection))?;
        let weight = self.weight(&name, &[config.dim, config.embedding_size])?;
        Ok(Some(Linear { weight, bias: Tensor::from_vec(vec![config.dim], vec![0.0; config.dim]) }))
    }

    /// The word embedding as stored: F32 in place, int8 with its scales, F16 kept as f16 (it is
    /// only gathered, a row at a time); BF16 widened.
    fn word_table(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let view = self.view(name, shape)?;
        if view.dtype() != Dtype::F16 {
            return self.weight(name, shape);
        }
        let raw = view.data();
        // Checked half by half: a widened copy would cost twice the table, for a moment.
        let half = |b: &[u8]| half::f16::from_le_bytes([b[0], b[1]]);
        if let Some((index, h)) = raw.chunks_exact(2).map(half).enumerate().find(|(_, h)| !h.is_finite()) {
            return Err(Error::NonFiniteWeight { name: name.to_string(), index, value: h.to_f32() });
        }
        let start = raw.as_ptr() as usize - self.bytes.as_ptr() as usize;
        let data = Data::F16 { bytes: Arc::clone(self.bytes), start, len: raw.len() / 2 };
        Ok(Tensor { shape: shape.to_vec(), data })
    }

    /// DeBERTa's relative-position embeddings, their LayerNorm, each layer's projections of them
    /// and the row of every distance; `None` for a config without relative attention.
    fn relative(&self, config: &Config) -> Result<Option<Relative>> {
        let (Some(names), Some(rel)) = (self.names.relative.as_ref(), config.relative.as_ref()) else {
            return Ok(None);
        };
        let d = config.dim;
        let embeddings = self.named(&self.backbone(&format!("{}.weight", names.embeddings))?, &[2 * rel.span(), d])?;
        let norm = match rel.norm_embeddings {
            true => Some(self.layer_norm(names.norm, d)?),
            false => None,
        };
        let projections = (0..config.n_layers)
            .map(|i| self.position_projection(&format!("{}.{i}", self.names.layers), names, rel, d))
            .collect::<Result<Vec<_>>>()?;
        let rows = rel.rows(config.max_tokens());
        Ok(Some(Relative { embeddings, norm, projections, rows: Tensor::from_vec(vec![rows.len()], rows) }))
    }

    /// Layer `p`'s projection of the relative embeddings: the position queries (p2c) then the
    /// position keys (c2p), from its query and key projections under `share_att_key`, else from
    /// `pos_query_proj` and `pos_key_proj`.
    fn position_projection(&self, p: &str, names: &RelativeNames, rel: &RelativeAttention, d: usize) -> Result<Linear> {
        let [query, key, _] = self.names.qkv;
        let (query, key) = if rel.share_att_key { (query, key) } else { (names.pos_query, names.pos_key) };
        let parts = [(rel.p2c, query), (rel.c2p, key)].into_iter().filter(|(used, _)| *used);
        let linears = parts.map(|(_, name)| self.linear(&format!("{p}.{name}"), d, d)).collect::<Result<Vec<_>>>()?;
        Ok(Linear::stack(linears))
    }

    fn block(&self, p: &str, d: usize, h: usize) -> Result<Block> {
        let n = self.names;
        let qkv = n.qkv.map(|name| self.linear(&format!("{p}.{name}"), d, d));
        Ok(Block {
            attention: Attention {
                qkv: Linear::stack(qkv.into_iter().collect::<Result<Vec<_>>>()?),
                output: self.linear(&format!("{p}.{}", n.attention_output), d, d)?,
            },
            attention_norm: self.layer_norm(&format!("{p}.{}", n.attention_norm), d)?,
            ffn: Ffn {
                up: self.linear(&format!("{p}.{}", n.ffn_up), h, d)?,
                down: self.linear(&format!("{p}.{}", n.ffn_down), d, h)?,
            },
            output_norm: self.layer_norm(&format!("{p}.{}", n.output_norm), d)?,
        })
    }

    fn linear(&self, prefix: &str, out: usize, inp: usize) -> Result<Linear> {
        Ok(Linear {
            weight: self.weight(&self.backbone(&format!("{prefix}.weight"))?, &[out, inp])?,
            bias: self.named(&self.backbone(&format!("{prefix}.bias"))?, &[out])?,
        })
    }

    fn layer_norm(&self, prefix: &str, dim: usize) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: self.named(&self.backbone(&format!("{prefix}.weight"))?, &[dim])?,
            bias: self.named(&self.backbone(&format!("{prefix}.bias"))?, &[dim])?,
            eps: self.eps,
        })
    }

    /// The classification head sits outside the backbone in transformers' checkpoints.
    fn head_linear(&self, prefix: &str, out: usize, inp: usize) -> Result<Linear> {
        Ok(Linear {
            weight: self.weight(&format!("{prefix}.weight"), &[out, inp])?,
            bias: self.named(&format!("{prefix}.bias"), &[out])?,
        })
    }

    /// A backbone tensor's name: `{backbone}.{name}` as `*ForSequenceClassification` saves it,
    /// or bare `{name}` as an encoder export (`DistilBertModel`) does.
    fn backbone(&self, name: &str) -> Result<String> {
        let prefixed = format!("{}.{name}", self.names.backbone);
        match self.file.tensor(&prefixed) {
            Ok(_) => Ok(prefixed),
            Err(_) if self.file.tensor(name).is_ok() => Ok(name.to_string()),
            Err(_) => Err(Error::MissingTensor { name: prefixed }),
        }
    }

    /// A tensor the int8 format may hold as I8 with a `{name}_scale` F32 tensor of one scale per
    /// row beside it (Linear weights, the word embedding); any float dtype otherwise.
    fn weight(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let view = self.view(name, shape)?;
        if view.dtype() != Dtype::I8 {
            return self.named(name, shape);
        }
        let scale_name = format!("{name}_scale");
        let scales = self.named(&scale_name, &shape[..1])?.dequantized();
        if let Some((index, &value)) = scales.iter().enumerate().find(|(_, s)| **s < 0.0) {
            return Err(Error::BadScale { name: scale_name, index, value });
        }
        let raw = view.data();
        let start = raw.as_ptr() as usize - self.bytes.as_ptr() as usize;
        let q = Int8Data::Borrowed { bytes: Arc::clone(self.bytes), start, len: raw.len() };
        Ok(Tensor { shape: shape.to_vec(), data: Data::Int8 { q, scales } })
    }

    /// A tensor by its exact name, checked against `shape`.
    fn view(&self, name: &str, shape: &[usize]) -> Result<safetensors::tensor::TensorView<'_>> {
        let view = self.file.tensor(name).map_err(|_| Error::MissingTensor { name: name.to_string() })?;
        if view.shape() != shape {
            return Err(Error::TensorShape {
                name: name.to_string(),
                expected: shape.to_vec(),
                actual: view.shape().to_vec(),
            });
        }
        Ok(view)
    }

    /// A float tensor (F32, F16 or BF16) as f32.
    fn named(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let view = self.view(name, shape)?;
        let tensor = Tensor { shape: shape.to_vec(), data: to_f32(name, view.dtype(), view.data(), self.bytes)? };
        // A NaN or infinity in a weight reaches every score as NaN: refuse it here, by name.
        if let Some((index, &value)) = tensor.data()?.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFiniteWeight { name: name.to_string(), index, value });
        }
        Ok(tensor)
    }
}

/// F32 bytes are borrowed in place when aligned; everything else becomes owned f32.
fn to_f32(name: &str, dtype: Dtype, raw: &[u8], bytes: &WeightBytes) -> Result<Data> {
    let aligned = bytemuck::try_cast_slice::<u8, f32>(raw).is_ok();
    if dtype == Dtype::F32 && cfg!(target_endian = "little") && aligned {
        let start = raw.as_ptr() as usize - bytes.as_ptr() as usize;
        return Ok(Data::Borrowed { bytes: Arc::clone(bytes), start, len: raw.len() / 4 });
    }
    float_values(name, dtype, raw).map(Data::Owned)
}

/// A float tensor's little-endian bytes (F32, F16 or BF16) as f32 values.
pub(crate) fn float_values(name: &str, dtype: Dtype, raw: &[u8]) -> Result<Vec<f32>> {
    Ok(match dtype {
        Dtype::F32 => raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F16 => raw.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::BF16 => raw.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        other => {
            return Err(Error::TensorDtype { name: name.to_string(), dtype: format!("{other:?}") });
        }
    })
}
