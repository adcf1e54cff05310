//! Zero-shot classification with the semantics of transformers' `ZeroShotClassificationPipeline`:
//! each label becomes the hypothesis `template.format(label)`, paired with the text as premise;
//! one label or multi-label scores each label by softmax over [contradiction, entailment], else the
//! entailment logits are softmaxed across labels. Results are sorted by score, descending.

use serde::Serialize;

use crate::backend::{Backend, Batch};
use crate::error::{Error, Result};
use crate::files::Checkpoint;
use crate::model::DistilBert;
pub use crate::template::{hypotheses, hypothesis};
use crate::tokenizer::{NliTokenizer, PairEncoding};

/// transformers' default hypothesis template.
pub const DEFAULT_TEMPLATE: &str = "This example is {}.";

/// How to classify.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Python `str.format` syntax with the label as its one argument: `{}` (or `{0}`) where the
    /// label goes, `{{` and `}}` for literal braces (see [`crate::template`]).
    pub hypothesis_template: String,
    /// Score labels independently instead of making them compete.
    pub multi_label: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { hypothesis_template: DEFAULT_TEMPLATE.into(), multi_label: false }
    }
}

/// One text's result, as the pipeline returns it (plus whether the text was cut).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    pub sequence: String,
    /// Labels, best first.
    pub labels: Vec<String>,
    /// Scores in the same order as `labels`.
    pub scores: Vec<f64>,
    /// Whether the text was truncated to fit the model (for any label).
    pub truncated: bool,
}

/// Labels given as one string: split on commas, trimmed, empties dropped (as transformers does).
pub fn parse_labels(labels: &str) -> Vec<String> {
    labels.split(',').map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
}

/// A loaded model ready to classify.
pub struct ZeroShotClassifier<B: Backend> {
    tokenizer: NliTokenizer,
    model: DistilBert<B>,
}

impl<B: Backend> ZeroShotClassifier<B> {
    pub fn new(checkpoint: Checkpoint, backend: B) -> Result<Self> {
        let Checkpoint { config, weights, tokenizer } = checkpoint;
        backend.supports(&config, tokenizer.max_len())?;
        Ok(ZeroShotClassifier { tokenizer, model: DistilBert::new(config, weights, backend)? })
    }

    /// What runs the model: "cpu" or "gpu".
    pub fn backend_name(&self) -> &'static str {
        self.model.backend_name()
    }

    /// The backend, for its own reports (the GPU pool's usage, say).
    pub fn backend(&self) -> &B {
        self.model.backend()
    }

    /// The backend, mutably, for its own hooks.
    pub fn backend_mut(&mut self) -> &mut B {
        self.model.backend_mut()
    }

    /// One tiny forward, so a GPU has compiled and allocated before the first real call.
    pub async fn warm_up(&mut self) -> Result<()> {
        self.model.warm_up().await
    }

    /// Scores `labels` for `text`.
    pub async fn classify(&mut self, text: &str, labels: &[String], options: &Options) -> Result<Classification> {
        if text.is_empty() {
            return Err(Error::EmptyText);
        }
        if labels.is_empty() {
            return Err(Error::NoLabels);
        }
        // The text is tokenized once; each label adds only its hypothesis.
        let premise = self.tokenizer.premise(text)?;
        let encodings = hypotheses(&options.hypothesis_template, labels)?
            .iter()
            .map(|h| self.tokenizer.pair(&premise, h))
            .collect::<Result<Vec<_>>>()?;
        let logits = self.logits(&encodings).await?;
        if let Some(i) = logits.iter().position(|l| l.iter().any(|v| !v.is_finite())) {
            return Err(Error::NonFiniteLogits { label: labels[i].clone(), logits: logits[i].clone() });
        }
        let scores = self.scores(&logits, options.multi_label || labels.len() == 1);
        Ok(sorted(text, labels, scores, encodings.iter().any(|e| e.truncated)))
    }

    /// Raw logits per pair, [pairs][num_labels], run in chunks the backend can hold.
    pub async fn logits(&mut self, encodings: &[PairEncoding]) -> Result<Vec<Vec<f32>>> {
        let (num_labels, max_rows) = (self.model.config.num_labels(), self.model.max_rows());
        let mut out = Vec::with_capacity(encodings.len());
        let mut rest = encodings;
        while !rest.is_empty() {
            let longest = rest.iter().map(|e| e.ids.len()).max().unwrap_or(1).max(1);
            let (chunk, tail) = rest.split_at((max_rows / longest).clamp(1, rest.len()));
            let ids: Vec<Vec<u32>> = chunk.iter().map(|e| e.ids.clone()).collect();
            let flat = self.model.forward(&Batch::pad(&ids)).await?;
            out.extend(flat.chunks_exact(num_labels).map(<[f32]>::to_vec));
            rest = tail;
        }
        Ok(out)
    }

    /// Per-label scores from per-pair logits, in f64 and max-subtracted.
    fn scores(&self, logits: &[Vec<f32>], independent: bool) -> Vec<f64> {
        let config = &self.model.config;
        let (entail, contra) = (config.entailment_id, config.contradiction_id());
        if independent {
            // softmax([contradiction, entailment])[1] for each label on its own.
            logits.iter().map(|l| softmax(&[l[contra] as f64, l[entail] as f64])[1]).collect()
        } else {
            softmax(&logits.iter().map(|l| l[entail] as f64).collect::<Vec<_>>())
        }
    }
}

fn softmax(x: &[f64]) -> Vec<f64> {
    let max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = x.iter().map(|v| (v - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

/// Labels by descending score. transformers uses `reversed(argsort(scores))`, which puts tied
/// labels in reverse input order; a stable ascending sort reversed does the same.
fn sorted(text: &str, labels: &[String], scores: Vec<f64>, truncated: bool) -> Classification {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    order.reverse();
    Classification {
        sequence: text.to_string(),
        labels: order.iter().map(|&i| labels[i].clone()).collect(),
        scores: order.iter().map(|&i| scores[i]).collect(),
        truncated,
    }
}
