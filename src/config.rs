//! `config.json` of a checkpoint of one of the [`Family`]s, with Hugging Face's field names and
//! defaults, checked once at load so the forward never meets a shape it cannot run.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};

use crate::error::{Error, Result};
use crate::family::Family;
use crate::relative::RelativeAttention;

/// A Linear's activation. `Gelu` is the exact erf form (transformers' `"gelu"`), `GeluTanh` the
/// tanh approximation (`"gelu_new"`, `"gelu_pytorch_tanh"`); `Tanh` is the head's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Gelu,
    GeluTanh,
    Relu,
    Tanh,
}

/// The model's shape and labels, whatever the family calls them (`dim` is DistilBERT's name for
/// BERT's `hidden_size`, and so on).
#[derive(Debug, Clone)]
pub struct Config {
    pub family: Family,
    pub vocab_size: usize,
    /// Hidden size (768 in distilbert-base).
    pub dim: usize,
    /// Width of the word (and position, token-type) embeddings: `dim`, but for a DeBERTa with its
    /// own `embedding_size`, which `embed_proj` takes to `dim`.
    pub embedding_size: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    /// FFN inner size (3072 in distilbert-base).
    pub hidden_dim: usize,
    /// Rows of the position table, `first_position` of them unused by real tokens.
    pub max_position_embeddings: usize,
    /// Position id of each sequence's first token (see [`Family::first_position`]).
    pub first_position: usize,
    /// Rows of the token-type table (0: the family has none).
    pub type_vocab_size: usize,
    /// Whether the embeddings add learned absolute positions (DeBERTa-v3's do not:
    /// `position_biased_input` false).
    pub absolute_positions: bool,
    /// DeBERTa's relative positions in attention; `None` for the other families.
    pub relative: Option<RelativeAttention>,
    pub layer_norm_eps: f32,
    /// The FFN's activation.
    pub activation: Activation,
    /// The activation after the dense layer on [CLS].
    pub head_activation: Activation,
    /// Label names by class index (`id2label`), so `labels.len()` is the classifier's width.
    pub labels: Vec<String>,
    /// Class index of the entailment logit.
    pub entailment_id: usize,
}

/// The most positions a model may claim: bge-m3's 8194. Attention never holds [T, T] scores
/// (the CPU takes queries in blocks; the GPU kernel refuses texts over its own limit), but the
/// position table and a text of that many tokens must fit memory.
pub const MAX_POSITIONS: usize = 8194;

/// The most tokens a sequence may have where no position table bounds it (a DeBERTa of relative
/// positions only). transformers cuts nothing there unless `model_max_length` says so; zeroshot
/// takes pairs of up to this many tokens whole and refuses longer ones, since attention's work
/// grows with the square of the length.
pub const MAX_RELATIVE_TOKENS: usize = 8192;

/// What every family's config.json says the same way.
#[derive(Deserialize)]
struct RawCommon {
    model_type: Option<String>,
    architectures: Option<Vec<String>>,
    #[serde(default)]
    id2label: BTreeMap<String, String>,
    label2id: Option<OrderedLabels>,
}

/// `DistilBertConfig`'s fields and defaults.
#[derive(Deserialize)]
struct RawDistilBert {
    #[serde(default = "defaults::vocab_size")]
    vocab_size: usize,
    #[serde(default = "defaults::dim")]
    dim: usize,
    #[serde(default = "defaults::n_layers")]
    n_layers: usize,
    #[serde(default = "defaults::n_heads")]
    n_heads: usize,
    #[serde(default = "defaults::hidden_dim")]
    hidden_dim: usize,
    #[serde(default = "defaults::max_position_embeddings")]
    max_position_embeddings: usize,
    #[serde(default = "defaults::activation")]
    activation: String,
    #[serde(default)]
    sinusoidal_pos_embds: bool,
}

/// The shape fields that `BertConfig`, `RobertaConfig`, `XLMRobertaConfig` and `DebertaV2Config`
/// name alike; each family fills the ones a file leaves out with its own defaults ([`Defaults`]).
#[derive(Clone, Deserialize)]
struct BertNames {
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    intermediate_size: Option<usize>,
    max_position_embeddings: Option<usize>,
    type_vocab_size: Option<usize>,
    layer_norm_eps: Option<f64>,
    hidden_act: Option<String>,
}

/// A family's defaults for [`BertNames`]: vocab_size, hidden_size, num_hidden_layers,
/// num_attention_heads, intermediate_size, max_position_embeddings, type_vocab_size, and the
/// LayerNorm epsilon (every family's hidden_act defaults to "gelu").
struct Defaults([usize; 7], f64);

const BERT_DEFAULTS: Defaults = Defaults([30522, 768, 12, 12, 3072, 512, 2], 1e-12);
const ROBERTA_DEFAULTS: Defaults = Defaults([50265, 768, 12, 12, 3072, 512, 2], 1e-12);
/// transformers' `DebertaV2Config` defaults are deberta-v2-xlarge's.
const DEBERTA_DEFAULTS: Defaults = Defaults([128100, 1536, 24, 24, 6144, 512, 0], 1e-7);

impl BertNames {
    /// The shape these fields give, `defaults` where the file has none; positions from `pad_token_id`
    /// as `family` counts them.
    fn shape(self, Defaults(d, eps): Defaults, pad_token_id: usize, family: Family) -> Shape {
        let dim = self.hidden_size.unwrap_or(d[1]);
        Shape {
            vocab_size: self.vocab_size.unwrap_or(d[0]),
            dim,
            n_layers: self.num_hidden_layers.unwrap_or(d[2]),
            n_heads: self.num_attention_heads.unwrap_or(d[3]),
            hidden_dim: self.intermediate_size.unwrap_or(d[4]),
            max_position_embeddings: self.max_position_embeddings.unwrap_or(d[5]),
            type_vocab_size: self.type_vocab_size.unwrap_or(d[6]),
            layer_norm_eps: self.layer_norm_eps.unwrap_or(eps),
            activation: self.hidden_act.unwrap_or_else(defaults::activation),
            pad_token_id,
            first_position: family.first_position(pad_token_id),
            embedding_size: dim,
            absolute_positions: true,
            relative: None,
            head_activation: family.head_activation(),
        }
    }
}

/// `BertConfig`'s other fields, which `RobertaConfig` and `XLMRobertaConfig` share.
#[derive(Deserialize)]
struct RawBert {
    #[serde(flatten)]
    names: BertNames,
    pad_token_id: Option<usize>,
    position_embedding_type: Option<String>,
    #[serde(default)]
    is_decoder: bool,
}

/// `DebertaV2Config`'s fields and defaults (transformers' defaults are deberta-v2-xlarge's).
#[derive(Deserialize)]
struct RawDeberta {
    #[serde(flatten)]
    names: BertNames,
    #[serde(default = "defaults::activation")]
    pooler_hidden_act: String,
    pooler_hidden_size: Option<usize>,
    embedding_size: Option<usize>,
    attention_head_size: Option<usize>,
    #[serde(default)]
    relative_attention: bool,
    #[serde(default = "defaults::unset")]
    max_relative_positions: i64,
    #[serde(default = "defaults::unset")]
    position_buckets: i64,
    #[serde(default = "yes")]
    position_biased_input: bool,
    /// A list (`["p2c", "c2p"]`) or a string (`"p2c|c2p"`), as `DebertaV2Config` takes it.
    pos_att_type: Option<serde_json::Value>,
    #[serde(default)]
    share_att_key: bool,
    norm_rel_ebd: Option<String>,
    #[serde(default)]
    conv_kernel_size: i64,
}

fn yes() -> bool {
    true
}

/// transformers' defaults, used where a config.json leaves a field out.
mod defaults {
    pub fn vocab_size() -> usize {
        30522
    }
    pub fn dim() -> usize {
        768
    }
    pub fn n_layers() -> usize {
        6
    }
    pub fn n_heads() -> usize {
        12
    }
    pub fn hidden_dim() -> usize {
        3072
    }
    pub fn max_position_embeddings() -> usize {
        512
    }
    pub fn activation() -> String {
        "gelu".into()
    }
    /// `-1`: DeBERTa's "not set" for `max_relative_positions` and `position_buckets`.
    pub fn unset() -> i64 {
        -1
    }
}

/// `label2id` in file order: transformers takes the *first* key starting with "entail".
struct OrderedLabels(Vec<(String, i64)>);

impl<'de> Deserialize<'de> for OrderedLabels {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedLabels;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object mapping label names to class ids")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, i64>()? {
                    out.push(entry);
                }
                Ok(OrderedLabels(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The shape fields every family has, once read under the family's own names.
struct Shape {
    vocab_size: usize,
    dim: usize,
    n_layers: usize,
    n_heads: usize,
    hidden_dim: usize,
    max_position_embeddings: usize,
    type_vocab_size: usize,
    layer_norm_eps: f64,
    activation: String,
    pad_token_id: usize,
    /// Position id of a sequence's first token.
    first_position: usize,
    embedding_size: usize,
    absolute_positions: bool,
    relative: Option<RelativeAttention>,
    /// The activation after the dense layer on [CLS].
    head_activation: Activation,
}

impl Config {
    /// Parses and checks `config.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let json = |e: serde_json::Error| Error::Json { file: "config.json", message: e.to_string() };
        let common: RawCommon = serde_json::from_slice(bytes).map_err(json)?;
        let family = family(&common)?;
        let shape = match family {
            Family::DistilBert => serde_json::from_slice::<RawDistilBert>(bytes).map_err(json)?.shape()?,
            Family::DebertaV2 => serde_json::from_slice::<RawDeberta>(bytes).map_err(json)?.shape()?,
            _ => serde_json::from_slice::<RawBert>(bytes).map_err(json)?.shape(family)?,
        };
        check_shape(&shape)?;
        let (labels, entailment_id) = labels(common)?;
        Ok(Config {
            family,
            vocab_size: shape.vocab_size,
            dim: shape.dim,
            embedding_size: shape.embedding_size,
            n_layers: shape.n_layers,
            n_heads: shape.n_heads,
            hidden_dim: shape.hidden_dim,
            max_position_embeddings: shape.max_position_embeddings,
            first_position: shape.first_position,
            type_vocab_size: shape.type_vocab_size,
            absolute_positions: shape.absolute_positions,
            relative: shape.relative,
            layer_norm_eps: shape.layer_norm_eps as f32,
            activation: activation(&shape.activation)?,
            head_activation: shape.head_activation,
            labels,
            entailment_id,
        })
    }

    /// Number of classifier outputs (3 for MNLI models).
    pub fn num_labels(&self) -> usize {
        self.labels.len()
    }

    /// Size of one attention head.
    pub fn head_dim(&self) -> usize {
        self.dim / self.n_heads
    }

    /// Tokens one sequence may have: the position table's rows from `first_position` on
    /// (RoBERTa's 514 rows give 512), or [`MAX_RELATIVE_TOKENS`] without absolute positions.
    pub fn max_tokens(&self) -> usize {
        match self.absolute_positions {
            true => self.max_position_embeddings.saturating_sub(self.first_position),
            false => MAX_RELATIVE_TOKENS,
        }
    }

    /// Whether the model reads the tokenizer's token types (see [`Family::reads_token_types`]).
    pub fn reads_token_types(&self) -> bool {
        self.family.reads_token_types(self.type_vocab_size)
    }

    /// The contradiction logit exactly as transformers' pipeline picks it: index -1 (the last) when
    /// entailment is 0, else index 0.
    pub fn contradiction_id(&self) -> usize {
        if self.entailment_id == 0 { self.num_labels() - 1 } else { 0 }
    }
}

/// The family `model_type` names; an `architectures` entry other than its sequence classifier
/// (a masked-LM head, a bare encoder) is refused by name, since its weights would not be ours.
fn family(common: &RawCommon) -> Result<Family> {
    let model_type = common.model_type.as_deref().unwrap_or("(missing)");
    let family = Family::from_model_type(model_type).ok_or_else(|| Error::UnsupportedModelType(model_type.into()))?;
    if let Some(other) = common.architectures.iter().flatten().find(|a| *a != family.architecture()) {
        return Err(Error::Field {
            file: "config.json",
            field: "architectures",
            reason: format!(
                "names {other:?}; zeroshot runs {} (an NLI model fine-tuned for sequence classification)",
                family.architecture()
            ),
        });
    }
    Ok(family)
}

impl RawDistilBert {
    fn shape(self) -> Result<Shape> {
        if self.sinusoidal_pos_embds {
            return Err(Error::SinusoidalPositions);
        }
        Ok(Shape {
            vocab_size: self.vocab_size,
            dim: self.dim,
            n_layers: self.n_layers,
            n_heads: self.n_heads,
            hidden_dim: self.hidden_dim,
            max_position_embeddings: self.max_position_embeddings,
            type_vocab_size: 0,
            layer_norm_eps: 1e-12, // nn.LayerNorm(dim, eps=1e-12), fixed in DistilBERT
            activation: self.activation,
            pad_token_id: 0,
            first_position: 0,
            embedding_size: self.dim,
            absolute_positions: true,
            relative: None,
            head_activation: Family::DistilBert.head_activation(),
        })
    }
}

impl RawBert {
    fn shape(self, family: Family) -> Result<Shape> {
        if let Some(kind) = self.position_embedding_type.filter(|k| k != "absolute") {
            return Err(Error::Field {
                file: "config.json",
                field: "position_embedding_type",
                reason: format!("is {kind:?}; zeroshot runs only \"absolute\" (learned) position embeddings"),
            });
        }
        if self.is_decoder {
            return Err(Error::Field {
                file: "config.json",
                field: "is_decoder",
                reason: "is true; zeroshot runs encoders, which attend to every token".into(),
            });
        }
        let pad_token_id = self.pad_token_id.unwrap_or(if family == Family::Bert { 0 } else { 1 });
        let defaults = if family == Family::Roberta { ROBERTA_DEFAULTS } else { BERT_DEFAULTS };
        Ok(self.names.shape(defaults, pad_token_id, family))
    }
}

impl RawDeberta {
    fn shape(self) -> Result<Shape> {
        let shape = self.names.clone().shape(DEBERTA_DEFAULTS, 0, Family::DebertaV2);
        self.refuse_unsupported(&shape)?;
        Ok(Shape {
            embedding_size: self.embedding_size.unwrap_or(shape.dim),
            absolute_positions: self.position_biased_input,
            relative: Some(self.relative(&shape)?),
            head_activation: activation(&self.pooler_hidden_act)?,
            ..shape
        })
    }

    /// The options `DebertaV2ForSequenceClassification` has that zeroshot does not run, by name.
    fn refuse_unsupported(&self, shape: &Shape) -> Result<()> {
        let refuse = |field, reason: String| Err(Error::Field { file: "config.json", field, reason });
        if self.conv_kernel_size > 0 {
            return refuse(
                "conv_kernel_size",
                format!(
                    "is {}; zeroshot does not run DeBERTa-v2's convolution layer (ConvLayer)",
                    self.conv_kernel_size
                ),
            );
        }
        if !self.relative_attention {
            return refuse("relative_attention", "is false; zeroshot runs DeBERTa with relative attention only".into());
        }
        if let Some(size) = self.attention_head_size.filter(|&s| s * shape.n_heads != shape.dim) {
            return refuse(
                "attention_head_size",
                format!("is {size}; zeroshot runs heads of hidden_size / num_attention_heads"),
            );
        }
        if let Some(size) = self.pooler_hidden_size.filter(|&s| s != shape.dim) {
            return refuse(
                "pooler_hidden_size",
                format!("is {size}; the pooler must take hidden_size ({})", shape.dim),
            );
        }
        if self.position_buckets == 1 {
            return refuse("position_buckets", "is 1; log buckets need at least 2 (or -1 for none)".into());
        }
        Ok(())
    }

    /// The relative-position options, with transformers' fallbacks.
    fn relative(&self, shape: &Shape) -> Result<RelativeAttention> {
        let (c2p, p2c) = pos_att_type(self.pos_att_type.as_ref())?;
        let max_relative = match self.max_relative_positions {
            m if m < 1 => shape.max_position_embeddings,
            m => usize::try_from(m).unwrap_or(usize::MAX),
        };
        let relative = RelativeAttention {
            position_buckets: usize::try_from(self.position_buckets).unwrap_or(0),
            max_relative_positions: max_relative,
            c2p,
            p2c,
            share_att_key: self.share_att_key,
            norm_embeddings: self
                .norm_rel_ebd
                .as_deref()
                .unwrap_or("none")
                .to_lowercase()
                .split('|')
                .any(|n| n.trim() == "layer_norm"),
        };
        check_relative(&relative)?;
        Ok(relative)
    }
}

/// The most rows on each side of the relative embeddings zeroshot takes (DeBERTa-v3 has 256,
/// DeBERTa-v2 without buckets 512): each layer's projection of them is kept, and the p2c terms of a
/// text of n tokens hold [n, 2 span] per thread.
pub const MAX_SPAN: usize = 1024;

/// Relative-position options that transformers would run but that leave nothing to compute (no
/// term) or a bucket map that is not monotonic (a log ratio of 1 or less), and spans past
/// [`MAX_SPAN`], are refused by name.
fn check_relative(r: &RelativeAttention) -> Result<()> {
    let refuse = |field, reason: String| Err(Error::Field { file: "config.json", field, reason });
    if r.terms() == 0 {
        return refuse(
            "pos_att_type",
            "names neither \"c2p\" nor \"p2c\"; zeroshot runs DeBERTa with its relative terms".into(),
        );
    }
    let field = if r.position_buckets > 0 { "position_buckets" } else { "max_relative_positions" };
    if r.span() > MAX_SPAN {
        return refuse(field, format!("is {}; at most {MAX_SPAN} are supported", r.span()));
    }
    if r.position_buckets > 0 && r.max_relative_positions <= r.position_buckets / 2 + 1 {
        return refuse(
            "max_relative_positions",
            format!(
                "is {}; with {} position_buckets it must be over {} (half the buckets plus one) for the log buckets to grow with the distance",
                r.max_relative_positions,
                r.position_buckets,
                r.position_buckets / 2 + 1
            ),
        );
    }
    Ok(())
}

/// `pos_att_type` as (c2p, p2c): a list or a `|`-separated string; any other term is refused.
fn pos_att_type(value: Option<&serde_json::Value>) -> Result<(bool, bool)> {
    let bad = |reason: String| Error::Field { file: "config.json", field: "pos_att_type", reason };
    let terms: Vec<String> = match value {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::String(s)) => s.to_lowercase().split('|').map(|t| t.trim().to_string()).collect(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|t| t.as_str().map(str::to_string).ok_or_else(|| bad(format!("holds {t}, not a string"))))
            .collect::<Result<_>>()?,
        Some(other) => return Err(bad(format!("is {other}; a list like [\"p2c\", \"c2p\"] is expected"))),
    };
    if let Some(other) = terms.iter().find(|t| !matches!(t.as_str(), "c2p" | "p2c" | "")) {
        return Err(bad(format!("names {other:?}; DeBERTa-v2 adds only \"c2p\" and \"p2c\"")));
    }
    Ok((terms.iter().any(|t| t == "c2p"), terms.iter().any(|t| t == "p2c")))
}

fn activation(name: &str) -> Result<Activation> {
    match name {
        "gelu" => Ok(Activation::Gelu),
        "gelu_new" | "gelu_pytorch_tanh" => Ok(Activation::GeluTanh),
        "relu" => Ok(Activation::Relu),
        "tanh" => Ok(Activation::Tanh),
        other => Err(Error::UnsupportedActivation(other.to_string())),
    }
}

fn check_shape(s: &Shape) -> Result<()> {
    for (field, value) in [
        ("vocab_size", s.vocab_size),
        ("dim", s.dim),
        ("embedding_size", s.embedding_size),
        ("n_layers", s.n_layers),
        ("n_heads", s.n_heads),
        ("hidden_dim", s.hidden_dim),
        ("max_position_embeddings", s.max_position_embeddings),
    ] {
        if value == 0 {
            return Err(Error::ZeroSize { field });
        }
    }
    if s.max_position_embeddings > MAX_POSITIONS {
        return Err(Error::Field {
            file: "config.json",
            field: "max_position_embeddings",
            reason: format!("is {}; at most {MAX_POSITIONS} are supported", s.max_position_embeddings),
        });
    }
    if s.first_position >= s.max_position_embeddings {
        return Err(Error::Field {
            file: "config.json",
            field: "pad_token_id",
            reason: format!(
                "is {}; positions would start at {}, past the table's {} rows",
                s.pad_token_id, s.first_position, s.max_position_embeddings
            ),
        });
    }
    if !(s.layer_norm_eps.is_finite() && s.layer_norm_eps > 0.0 && s.layer_norm_eps < 1.0) {
        return Err(Error::Field {
            file: "config.json",
            field: "layer_norm_eps",
            reason: format!("is {}; a LayerNorm epsilon is a small positive number", s.layer_norm_eps),
        });
    }
    if !s.dim.is_multiple_of(s.n_heads) {
        return Err(Error::HeadsDontDivide { dim: s.dim, n_heads: s.n_heads });
    }
    Ok(())
}

/// Label names by index and the entailment index, as the pipeline finds it.
fn labels(common: RawCommon) -> Result<(Vec<String>, usize)> {
    let labels = id2label(&common.id2label)?;
    if labels.len() < 2 {
        // softmax over one logit is 1, so every score would be 0.5 or 1: no information.
        return Err(Error::Field {
            file: "config.json",
            field: "id2label",
            reason: format!("names {} label; an NLI head has at least entailment and contradiction", labels.len()),
        });
    }
    let label2id = match common.label2id {
        Some(OrderedLabels(pairs)) => pairs,
        // transformers derives label2id from id2label when it is absent.
        None => labels.iter().enumerate().map(|(i, l)| (l.clone(), i as i64)).collect(),
    };
    let entailment_id = find_entailment(&label2id, labels.len())?;
    Ok((labels, entailment_id))
}

/// `id2label` ("0" -> "ENTAILMENT", ...) as a dense list; a gap or a non-numeric key is an error.
fn id2label(map: &BTreeMap<String, String>) -> Result<Vec<String>> {
    if map.is_empty() {
        return Err(Error::Json {
            file: "config.json",
            message: "id2label is missing or empty; an NLI model names its labels there".into(),
        });
    }
    let mut labels = vec![None; map.len()];
    for (key, name) in map {
        let slot = key.parse::<usize>().ok().and_then(|i| labels.get_mut(i));
        match slot {
            Some(slot) => *slot = Some(name.clone()),
            None => {
                return Err(Error::Json {
                    file: "config.json",
                    message: format!("id2label key {key:?} is not an index below {}", map.len()),
                });
            }
        }
    }
    // Keys like "1" and "01" name the same slot and leave another empty.
    labels.into_iter().collect::<Option<Vec<_>>>().ok_or_else(|| Error::Json {
        file: "config.json",
        message: "id2label does not name every index from 0 once".into(),
    })
}

/// transformers' `entailment_id`: the first label2id entry whose lower-cased name starts with
/// "entail". transformers falls back to -1 when there is none; we refuse to guess.
fn find_entailment(label2id: &[(String, i64)], num_labels: usize) -> Result<usize> {
    let Some((label, id)) = label2id.iter().find(|(name, _)| name.to_lowercase().starts_with("entail")) else {
        return Err(Error::NoEntailmentLabel { labels: label2id.iter().map(|(name, _)| name.clone()).collect() });
    };
    usize::try_from(*id).ok().filter(|&i| i < num_labels).ok_or_else(|| Error::LabelIdOutOfRange {
        label: label.clone(),
        id: *id,
        num_labels,
    })
}
