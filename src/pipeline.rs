//! Zero-shot classification with the semantics of transformers' `ZeroShotClassificationPipeline`:
//! each label becomes the hypothesis `template.format(label)`, paired with the text as premise;
//! one label or multi-label scores each label by softmax over [contradiction, entailment], else the
//! entailment logits are softmaxed across labels. Results are sorted by score, descending.

use std::collections::HashMap;

use serde::Serialize;

use crate::backend::{Backend, Batch};
use crate::error::{Error, Result};
use crate::files::Checkpoint;
use crate::model::Encoder;
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
    model: Encoder<B>,
}

impl<B: Backend> ZeroShotClassifier<B> {
    pub fn new(checkpoint: Checkpoint, backend: B) -> Result<Self> {
        let Checkpoint { config, weights, tokenizer } = checkpoint;
        backend.supports(&config, tokenizer.max_len())?;
        Ok(ZeroShotClassifier { tokenizer, model: Encoder::new(config, weights, backend)? })
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
        let mut results = self.classify_batch(&[text], labels, options).await?;
        results.pop().unwrap_or(Err(Error::EmptyText))
    }

    /// Scores `labels` for each text, their pairs packed into shared forwards (sorted by length,
    /// so padding stays small): one result per text, in order. A text's own problem (empty,
    /// overflowing logits) is its result; one shared by all (no labels, a bad template, a failed
    /// forward) is the error.
    pub async fn classify_batch(
        &mut self,
        texts: &[impl AsRef<str>],
        labels: &[String],
        options: &Options,
    ) -> Result<Vec<Result<Classification>>> {
        if labels.is_empty() {
            return Err(Error::NoLabels);
        }
        let hypotheses = hypotheses(&options.hypothesis_template, labels)?;
        let encoded: Vec<Result<Vec<PairEncoding>>> =
            texts.iter().map(|text| self.encode(text.as_ref(), &hypotheses)).collect();
        let logits = self.logits_by_text(&encoded, labels.len()).await?;
        let results = encoded.into_iter().zip(texts).zip(logits).map(|((encodings, text), logits)| {
            let truncated = encodings?.iter().any(|e| e.truncated);
            self.finish(text.as_ref(), labels, &logits, truncated, options)
        });
        Ok(results.collect())
    }

    /// Logits of every pair of the texts that encoded, [text][label][num_labels] (empty for the
    /// others). Pairs with the same ids (labels that tokenize alike) run once, so they tie
    /// exactly, as in transformers; the rest run shortest first, so each forward pads little.
    async fn logits_by_text(
        &mut self,
        encoded: &[Result<Vec<PairEncoding>>],
        n_labels: usize,
    ) -> Result<Vec<Vec<Vec<f32>>>> {
        let mut unique: Vec<&PairEncoding> = Vec::new();
        let mut index: HashMap<(&[u32], &[u32]), usize> = HashMap::new();
        let mut pairs: Vec<(usize, usize, usize)> = Vec::new(); // (text, label, unique pair)
        for (t, encodings) in encoded.iter().enumerate() {
            for (l, e) in encodings.as_deref().unwrap_or_default().iter().enumerate() {
                let u = *index.entry((&e.ids, &e.type_ids)).or_insert_with(|| {
                    unique.push(e);
                    unique.len() - 1
                });
                pairs.push((t, l, u));
            }
        }
        let mut order: Vec<usize> = (0..unique.len()).collect();
        order.sort_by_key(|&u| unique[u].ids.len());
        let flat = self.logits_of(&order.iter().map(|&u| unique[u]).collect::<Vec<_>>()).await?;
        let mut by_unique = vec![Vec::new(); unique.len()];
        order.into_iter().zip(flat).for_each(|(u, row)| by_unique[u] = row);
        let mut logits = vec![vec![Vec::new(); n_labels]; encoded.len()];
        for (t, l, u) in pairs {
            logits[t][l] = by_unique[u].clone();
        }
        Ok(logits)
    }

    /// One text's pairs with every hypothesis; the text is tokenized once.
    fn encode(&self, text: &str, hypotheses: &[String]) -> Result<Vec<PairEncoding>> {
        if text.is_empty() {
            return Err(Error::EmptyText);
        }
        let premise = self.tokenizer.premise(text)?;
        hypotheses.iter().map(|h| self.tokenizer.pair(&premise, h)).collect()
    }

    /// A text's result from its logits, [label][num_labels].
    fn finish(
        &self,
        text: &str,
        labels: &[String],
        logits: &[Vec<f32>],
        truncated: bool,
        options: &Options,
    ) -> Result<Classification> {
        if let Some(i) = logits.iter().position(|l| l.iter().any(|v| !v.is_finite())) {
            return Err(Error::NonFiniteLogits { label: labels[i].clone(), logits: logits[i].clone() });
        }
        let scores = self.scores(logits, options.multi_label || labels.len() == 1);
        Ok(sorted(text, labels, scores, truncated))
    }

    /// Raw logits per pair, [pairs][num_labels], run in chunks the backend can hold.
    pub async fn logits(&mut self, encodings: &[PairEncoding]) -> Result<Vec<Vec<f32>>> {
        self.logits_of(&encodings.iter().collect::<Vec<_>>()).await
    }

    /// Logits for encoded pairs, [pairs][num_labels], in forwards of the sizes [`fitting`]
    /// picks (sorted input pads little), in the order given.
    pub(crate) async fn logits_of(&mut self, sequences: &[&PairEncoding]) -> Result<Vec<Vec<f32>>> {
        let (num_labels, max_rows) = (self.model.config.num_labels(), self.model.max_rows());
        let allowance = self.model.padding_allowance();
        let mut out = Vec::with_capacity(sequences.len());
        let mut rest = sequences;
        while !rest.is_empty() {
            let take = fitting(rest, max_rows, allowance);
            let (chunk, tail) = rest.split_at(take);
            let ids: Vec<Vec<u32>> = chunk.iter().map(|e| e.ids.clone()).collect();
            let types: Vec<Vec<u32>> = chunk.iter().map(|e| e.type_ids.clone()).collect();
            let first = self.model.config.first_position;
            let flat = self.model.forward(&Batch::pad_typed(&ids, &types, first)).await?;
            out.extend(flat.chunks_exact(num_labels).map(<[f32]>::to_vec));
            rest = tail;
        }
        Ok(out)
    }

    /// The tokenizer, for the explanations ([`crate::explain`]).
    pub(crate) fn tokenizer(&self) -> &NliTokenizer {
        &self.tokenizer
    }

    /// Most token rows one forward may take on this backend.
    pub fn max_rows(&self) -> usize {
        self.model.max_rows()
    }

    /// The entailment and contradiction logits' indices, as the pipeline picks them.
    pub(crate) fn entailment_ids(&self) -> (usize, usize) {
        (self.model.config.entailment_id, self.model.config.contradiction_id())
    }

    /// Per-label scores from per-pair logits, in f64 and max-subtracted.
    pub(crate) fn scores(&self, logits: &[Vec<f32>], independent: bool) -> Vec<f64> {
        let (entail, contra) = self.entailment_ids();
        if independent {
            // softmax([contradiction, entailment])[1] for each label on its own.
            logits.iter().map(|l| softmax(&[l[contra] as f64, l[entail] as f64])[1]).collect()
        } else {
            softmax(&logits.iter().map(|l| l[entail] as f64).collect::<Vec<_>>())
        }
    }
}

/// How many of `sequences` (shortest first) one forward takes: while the padded size (count x the
/// longest) fits `max_rows`, and either the longest is at most 9/8 of the shortest (padding wastes
/// at most a ninth) or the padding is at most `allowance` rows (the fixed cost of another forward;
/// unbounded on the CPU, which computes no padding row); at least one.
fn fitting(sequences: &[&PairEncoding], max_rows: usize, allowance: usize) -> usize {
    let shortest = sequences.first().map_or(1, |s| s.ids.len().max(1));
    let (mut longest, mut tokens) = (1, 0);
    for (i, s) in sequences.iter().enumerate() {
        longest = longest.max(s.ids.len());
        tokens += s.ids.len();
        let padded = (i + 1) * longest;
        if padded > max_rows || (longest * 8 > shortest * 9 && padded - tokens > allowance) {
            return i.max(1);
        }
    }
    sequences.len()
}

pub(crate) fn softmax(x: &[f64]) -> Vec<f64> {
    let max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = x.iter().map(|v| (v - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

/// Label indices by descending score. transformers uses `reversed(argsort(scores))`, which puts
/// tied labels in reverse input order; a stable ascending sort reversed does the same.
pub(crate) fn ranked(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    order.reverse();
    order
}

/// Labels by descending score ([`ranked`]).
fn sorted(text: &str, labels: &[String], scores: Vec<f64>, truncated: bool) -> Classification {
    let order = ranked(&scores);
    Classification {
        sequence: text.to_string(),
        labels: order.iter().map(|&i| labels[i].clone()).collect(),
        scores: order.iter().map(|&i| scores[i]).collect(),
        truncated,
    }
}
