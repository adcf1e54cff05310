//! Why a label scored as it did: the effect of each word of the text on each label's score, by
//! occlusion, exactly on the pairs the classification ran.
//!
//! A word is an occurrence of a run of non-space characters, punctuation included ("refund," and
//! "don't" are one word each), except that each CJK ideograph is a word of its own, as BERT's
//! tokenizer splits them: one definition whatever the tokenizer. A word owns the premise tokens
//! whose character spans start inside it; a token that starts on whitespace (byte-level BPE's
//! leading space, SentencePiece's `▁`) belongs to the word after it. For a word w and a label L, on
//! the pair L was scored on (the premise as cut `only_first` for L's hypothesis, the special tokens
//! where the post-processor puts them):
//!
//! ```text
//! effect(w, L) = score_L(text) - score_L(that pair without w's tokens)
//! ```
//!
//! nothing re-cut or re-tokenized, under the same softmax: single-label, L's entailment logit
//! replaced among the other labels' (theirs unchanged); multi-label, L's own softmax over
//! (contradiction, entailment). A word that L's pair does not hold (cut off, or with no token of its
//! own) has no effect for L: it is absent, not 0. Removing one word is not a causal claim, and a
//! label that was not the top one has effects too.
//!
//! The occluded pairs run through the pipeline's batching in steps of a bounded number of rows (a
//! caller reports progress and may stop between steps), each label's pairs together: its full pair,
//! then the pairs without the last word, the one before, ..., so that consecutive pairs share
//! their first tokens and layer 0 computes those rows once (see `CpuBackend::qkv`). An explanation
//! of over [`MAX_EXPLAIN_ROWS`] token rows in all is refused with the numbers.

use serde::Serialize;
use serde::ser::SerializeMap;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::pipeline::{Options, ZeroShotClassifier, hypotheses, ranked, softmax};
use crate::tokenizer::PairEncoding;

/// One word of a text: its characters and where they are, [start, end) in chars (Unicode scalar
/// values, as Python indexes a str).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Word {
    pub text: String,
    pub start: usize,
    pub end: usize,
}

/// A word and its effect on each label whose pair holds it, in the explanation's label order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WordEffects {
    #[serde(flatten)]
    pub word: Word,
    #[serde(serialize_with = "as_map")]
    pub effects: Vec<(String, f64)>,
}

/// The classification and each word's effects.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub sequence: String,
    /// Labels, best first, and their scores, as the classification gives them.
    pub labels: Vec<String>,
    pub scores: Vec<f64>,
    pub words: Vec<WordEffects>,
    /// Whether the text was cut for any label (words past the cut have no effect for it).
    pub truncated: bool,
}

/// `(label, effect)` pairs as a JSON object, in order.
fn as_map<S: serde::Serializer>(effects: &[(String, f64)], s: S) -> std::result::Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(effects.len()))?;
    for (label, effect) in effects {
        map.serialize_entry(label, effect)?;
    }
    map.end()
}

/// The words of `text`, in order (module doc).
pub fn words(text: &str) -> Vec<Word> {
    let mut words = Vec::new();
    let mut current: Option<(usize, String)> = None;
    let end_word = |current: &mut Option<(usize, String)>, at: usize, words: &mut Vec<Word>| {
        if let Some((start, text)) = current.take() {
            words.push(Word { text, start, end: at });
        }
    };
    for (i, c) in text.chars().enumerate() {
        if c.is_whitespace() || is_cjk_ideograph(c) {
            end_word(&mut current, i, &mut words);
        }
        if is_cjk_ideograph(c) {
            words.push(Word { text: c.to_string(), start: i, end: i + 1 });
        } else if !c.is_whitespace() {
            current.get_or_insert_with(|| (i, String::new())).1.push(c);
        }
    }
    end_word(&mut current, text.chars().count(), &mut words);
    words
}

/// BERT's CJK ideographs (transformers' `_is_chinese_char`): the CJK Unified Ideographs blocks
/// and their extensions, and the compatibility ideographs; not kana or hangul.
fn is_cjk_ideograph(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

/// The word owning each token, from the tokens' char spans: the word its span starts in, or the
/// first word after where it starts on whitespace; `None` past the last word.
pub fn owners(words: &[Word], offsets: &[(usize, usize)]) -> Vec<Option<usize>> {
    offsets
        .iter()
        .map(|&(start, _)| {
            let after = words.partition_point(|w| w.end <= start); // the first word not ending before it
            (after < words.len()).then_some(after)
        })
        .collect()
}

/// What one pair of an explanation is: a label's full pair, or that pair without a word's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Full { label: usize },
    Without { label: usize, word: usize },
}

/// The most token rows one explanation may run (all its pairs' tokens): about 8 minutes of the
/// full-size typeform-shaped model at one native thread, 200 times a 25-word answer x 5 labels.
pub const MAX_EXPLAIN_ROWS: usize = 1 << 20;

/// An explanation in progress: the pairs to run, in order (each label's pairs without a word are
/// made from its full pair as their step comes, so a long text's are never all held at once), and
/// the logits of those run so far.
pub struct ExplainJob {
    text: String,
    labels: Vec<String>,
    independent: bool,
    words: Vec<Word>,
    truncated: bool,
    /// Each label's full pair, and the word owning each of its kept premise tokens.
    full: Vec<PairEncoding>,
    held: Vec<Vec<Option<usize>>>,
    /// Every pair to run, in order; where each label's full pair is in it, and each (label, word)
    /// pair ([label][word]: `None` where the label's pair does not hold the word).
    slots: Vec<Slot>,
    full_at: Vec<usize>,
    without_at: Vec<Vec<Option<usize>>>,
    logits: Vec<Vec<f32>>,
}

impl ExplainJob {
    /// A job with nothing to run and nothing to explain (what a finished job is left as once its
    /// result is taken).
    pub fn empty() -> ExplainJob {
        let (text, labels, words, logits) = (String::new(), Vec::new(), Vec::new(), Vec::new());
        let (full, held, slots, full_at, without_at) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        ExplainJob {
            text,
            labels,
            independent: false,
            words,
            truncated: false,
            full,
            held,
            slots,
            full_at,
            without_at,
            logits,
        }
    }

    /// Pairs run so far, and in all (a classification's n labels, plus one per word and label
    /// whose pair holds it).
    pub fn progress(&self) -> (usize, usize) {
        (self.logits.len(), self.slots.len())
    }

    /// Whether every pair has run.
    pub fn is_done(&self) -> bool {
        self.logits.len() == self.slots.len()
    }

    /// The pair of slot `i`.
    fn pair(&self, i: usize) -> PairEncoding {
        match self.slots[i] {
            Slot::Full { label } => self.full[label].clone(),
            Slot::Without { label, word } => without_word(&self.full[label], &self.held[label], word),
        }
    }

    /// Puts each label's full pair, then its pairs without each word it holds (the last word
    /// first: each pair then shares its first tokens with the one before it), in the run order.
    fn plan(&mut self) -> usize {
        let mut rows = 0;
        for (label, full) in self.full.iter().enumerate() {
            self.full_at.push(self.slots.len());
            self.slots.push(Slot::Full { label });
            rows += full.ids.len();
            let mut held = vec![0usize; self.words.len()]; // tokens of each word in this pair
            self.held[label].iter().flatten().for_each(|&w| held[w] += 1);
            let mut at = vec![None; self.words.len()];
            for word in (0..self.words.len()).rev().filter(|&w| held[w] > 0) {
                at[word] = Some(self.slots.len());
                self.slots.push(Slot::Without { label, word });
                rows += full.ids.len() - held[word];
            }
            self.without_at.push(at);
        }
        rows
    }
}

impl<B: Backend> ZeroShotClassifier<B> {
    /// The pairs that explain `labels`' scores for `text` (module doc); nothing runs yet. An
    /// explanation of over [`MAX_EXPLAIN_ROWS`] token rows is refused.
    pub fn explain_job(&self, text: &str, labels: &[String], options: &Options) -> Result<ExplainJob> {
        if labels.is_empty() {
            return Err(Error::NoLabels);
        }
        if text.is_empty() {
            return Err(Error::EmptyText);
        }
        let hypotheses = hypotheses(&options.hypothesis_template, labels)?;
        let premise = self.tokenizer().premise_with_offsets(text)?;
        let words = words(text);
        let owner = owners(&words, premise.offsets());
        let full = hypotheses.iter().map(|h| self.tokenizer().pair(&premise, h)).collect::<Result<Vec<_>>>()?;
        let held = full.iter().map(|f| owner[..f.premise.len()].to_vec()).collect();
        let mut job = ExplainJob {
            text: text.into(),
            labels: labels.to_vec(),
            independent: options.multi_label || labels.len() == 1,
            words,
            truncated: full.iter().any(|f| f.truncated),
            full,
            held,
            ..ExplainJob::empty()
        };
        let rows = job.plan();
        if rows > MAX_EXPLAIN_ROWS {
            return Err(Error::ExplanationTooLarge { pairs: job.slots.len(), rows, max_rows: MAX_EXPLAIN_ROWS });
        }
        Ok(job)
    }

    /// Runs the job's next pairs, as many as fill `max_rows` token rows (padding counted; at least
    /// one pair). Returns whether the job is done.
    pub async fn explain_step(&mut self, job: &mut ExplainJob, max_rows: usize) -> Result<bool> {
        let mut chunk: Vec<PairEncoding> = Vec::new();
        let mut longest = 0;
        for i in job.logits.len()..job.slots.len() {
            let pair = job.pair(i);
            longest = longest.max(pair.ids.len());
            if !chunk.is_empty() && (chunk.len() + 1) * longest > max_rows {
                break;
            }
            chunk.push(pair);
        }
        let logits = self.logits_of(&chunk.iter().collect::<Vec<_>>()).await?;
        job.logits.extend(logits);
        Ok(job.is_done())
    }

    /// The explanation of a finished job: the classification and every word's effects.
    pub fn explain_result(&self, job: ExplainJob) -> Result<Explanation> {
        if !job.is_done() {
            return Err(Error::Backend("explain_result: the job has pairs left to run".into()));
        }
        if let Some(i) = job.logits.iter().position(|l| l.iter().any(|v| !v.is_finite())) {
            let label = job.labels[label_of(job.slots[i])].clone();
            return Err(Error::NonFiniteLogits { label, logits: job.logits[i].clone() });
        }
        let full: Vec<Vec<f32>> = job.full_at.iter().map(|&i| job.logits[i].clone()).collect();
        let scores = self.scores(&full, job.independent);
        let order = ranked(&scores); // best first, as the classification lists them
        let words = job
            .words
            .iter()
            .enumerate()
            .map(|(w, word)| WordEffects { word: word.clone(), effects: self.effects(&job, &full, &scores, &order, w) })
            .collect();
        Ok(Explanation {
            sequence: job.text.clone(),
            labels: order.iter().map(|&l| job.labels[l].clone()).collect(),
            scores: order.iter().map(|&l| scores[l]).collect(),
            words,
            truncated: job.truncated,
        })
    }

    /// `text` explained, every pair run in steps of up to the backend's rows per forward.
    pub async fn explain(&mut self, text: &str, labels: &[String], options: &Options) -> Result<Explanation> {
        let mut job = self.explain_job(text, labels, options)?;
        let max_rows = self.max_rows();
        while !self.explain_step(&mut job, max_rows).await? {}
        self.explain_result(job)
    }

    /// Word `w`'s effect on each label (in `order`) whose pair holds it.
    fn effects(
        &self,
        job: &ExplainJob,
        full: &[Vec<f32>],
        scores: &[f64],
        order: &[usize],
        w: usize,
    ) -> Vec<(String, f64)> {
        let occluded = |label: usize| Some(&job.logits[job.without_at[label][w]?]);
        order
            .iter()
            .filter_map(|&label| {
                let without = occluded(label)?;
                Some((
                    job.labels[label].clone(),
                    scores[label] - self.score_with(full, label, without, job.independent),
                ))
            })
            .collect()
    }

    /// Label `label`'s score with its pair's logits replaced by `logits`, the others as `full`.
    fn score_with(&self, full: &[Vec<f32>], label: usize, logits: &[f32], independent: bool) -> f64 {
        let (entail, contra) = self.entailment_ids();
        if independent {
            return softmax(&[logits[contra] as f64, logits[entail] as f64])[1];
        }
        let entailment: Vec<f64> = full
            .iter()
            .enumerate()
            .map(|(l, row)| if l == label { logits[entail] } else { row[entail] } as f64)
            .collect();
        softmax(&entailment)[label]
    }
}

/// `full` without the premise tokens (`held`: each kept premise token's word) owned by `word`.
fn without_word(full: &PairEncoding, held: &[Option<usize>], word: usize) -> PairEncoding {
    let keep = |i: usize| !full.premise.contains(&i) || held[i - full.premise.start] != Some(word);
    let ids: Vec<u32> = full.ids.iter().enumerate().filter(|&(i, _)| keep(i)).map(|(_, &id)| id).collect();
    let type_ids = full.type_ids.iter().enumerate().filter(|&(i, _)| keep(i)).map(|(_, &t)| t).collect();
    let removed = full.ids.len() - ids.len();
    let premise = full.premise.start..full.premise.end - removed;
    PairEncoding { ids, type_ids, truncated: full.truncated, premise }
}

/// The label a pair scores.
fn label_of(slot: Slot) -> usize {
    match slot {
        Slot::Full { label } | Slot::Without { label, .. } => label,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(words: &[Word]) -> Vec<&str> {
        words.iter().map(|w| w.text.as_str()).collect()
    }

    /// Runs of non-space characters, punctuation kept; each CJK ideograph alone, kana and hangul
    /// in runs; offsets in chars, whatever the bytes.
    #[test]
    fn words_are_runs_of_non_space_and_single_ideographs() {
        let w = words("  I want a refund, don't\tyou?\n\u{a0}Café 😠!! ");
        assert_eq!(texts(&w), ["I", "want", "a", "refund,", "don't", "you?", "Café", "😠!!"]);
        assert_eq!((w[6].start, w[6].end, w[7].start, w[7].end), (31, 35, 36, 39));
        let w = words("東京はAB日本です。 한국어");
        assert_eq!(texts(&w), ["東", "京", "はAB", "日", "本", "です。", "한국어"]);
        assert_eq!((w[2].start, w[2].end, w[6].start), (2, 5, 11));
        assert!(words(" \t\n ").is_empty());
    }

    /// A token belongs to the word its span starts in; one starting on whitespace (a leading
    /// space, `▁`) to the next word; none past the last.
    #[test]
    fn tokens_belong_to_the_word_they_start_in_or_the_next() {
        let w = words("ab  cd e");
        let offsets = [(0, 1), (1, 2), (2, 6), (3, 4), (4, 6), (7, 8), (8, 8)];
        assert_eq!(owners(&w, &offsets), [Some(0), Some(0), Some(1), Some(1), Some(1), Some(2), None]);
    }
}
