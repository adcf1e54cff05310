//! `config.json` of a DistilBERT checkpoint, with Hugging Face's field names and defaults, checked
//! once at load so the forward never meets a shape it cannot run.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};

use crate::error::{Error, Result};

/// FFN activation; `Gelu` is the exact erf form, as in transformers' `"gelu"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Gelu,
    Relu,
}

/// The model's shape and labels, as `DistilBertConfig` reads them.
#[derive(Debug, Clone)]
pub struct Config {
    pub vocab_size: usize,
    /// Hidden size (768 in distilbert-base).
    pub dim: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    /// FFN inner size (3072 in distilbert-base).
    pub hidden_dim: usize,
    pub max_position_embeddings: usize,
    pub activation: Activation,
    /// Label names by class index (`id2label`), so `labels.len()` is the classifier's width.
    pub labels: Vec<String>,
    /// Class index of the entailment logit.
    pub entailment_id: usize,
}

/// The most positions a model may claim. The attention's scores are [tokens, tokens] per head, so
/// a text as long as a huge claimed table would allocate gigabytes; DistilBERTs have 512.
pub const MAX_POSITIONS: usize = 4096;

/// `config.json` exactly as written, before checks.
#[derive(Deserialize)]
struct RawConfig {
    model_type: Option<String>,
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
    #[serde(default)]
    id2label: BTreeMap<String, String>,
    label2id: Option<OrderedLabels>,
}

/// `DistilBertConfig`'s defaults, used where a config.json leaves a field out.
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

impl Config {
    /// Parses and checks `config.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let raw: RawConfig =
            serde_json::from_slice(bytes).map_err(|e| Error::Json { file: "config.json", message: e.to_string() })?;
        check_architecture(&raw)?;
        let labels = id2label(&raw.id2label)?;
        if labels.len() < 2 {
            // softmax over one logit is 1, so every score would be 0.5 or 1: no information.
            return Err(Error::Field {
                file: "config.json",
                field: "id2label",
                reason: format!("names {} label; an NLI head has at least entailment and contradiction", labels.len()),
            });
        }
        let label2id = match raw.label2id {
            Some(OrderedLabels(pairs)) => pairs,
            // transformers derives label2id from id2label when it is absent.
            None => labels.iter().enumerate().map(|(i, l)| (l.clone(), i as i64)).collect(),
        };
        let entailment_id = find_entailment(&label2id, labels.len())?;
        let activation = match raw.activation.as_str() {
            "gelu" => Activation::Gelu,
            "relu" => Activation::Relu,
            other => return Err(Error::UnsupportedActivation(other.to_string())),
        };
        Ok(Config {
            vocab_size: raw.vocab_size,
            dim: raw.dim,
            n_layers: raw.n_layers,
            n_heads: raw.n_heads,
            hidden_dim: raw.hidden_dim,
            max_position_embeddings: raw.max_position_embeddings,
            activation,
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

    /// The contradiction logit exactly as transformers' pipeline picks it: index -1 (the last) when
    /// entailment is 0, else index 0.
    pub fn contradiction_id(&self) -> usize {
        if self.entailment_id == 0 { self.num_labels() - 1 } else { 0 }
    }
}

fn check_architecture(raw: &RawConfig) -> Result<()> {
    match raw.model_type.as_deref() {
        Some("distilbert") => {}
        other => return Err(Error::UnsupportedModelType(other.unwrap_or("(missing)").to_string())),
    }
    if raw.sinusoidal_pos_embds {
        return Err(Error::SinusoidalPositions);
    }
    for (field, value) in [
        ("vocab_size", raw.vocab_size),
        ("dim", raw.dim),
        ("n_layers", raw.n_layers),
        ("n_heads", raw.n_heads),
        ("hidden_dim", raw.hidden_dim),
        ("max_position_embeddings", raw.max_position_embeddings),
    ] {
        if value == 0 {
            return Err(Error::ZeroSize { field });
        }
    }
    if raw.max_position_embeddings > MAX_POSITIONS {
        return Err(Error::Field {
            file: "config.json",
            field: "max_position_embeddings",
            reason: format!(
                "is {}; at most {MAX_POSITIONS} are supported (attention memory grows with its square)",
                raw.max_position_embeddings
            ),
        });
    }
    if !raw.dim.is_multiple_of(raw.n_heads) {
        return Err(Error::HeadsDontDivide { dim: raw.dim, n_heads: raw.n_heads });
    }
    Ok(())
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
