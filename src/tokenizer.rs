//! Premise/hypothesis pairs to token ids, as transformers' zero-shot pipeline makes them: the
//! pair as the tokenizer's post-processor lays it out (`[CLS] A [SEP] B [SEP]` for BERT,
//! `<s> A </s></s> B </s>` for RoBERTa and XLM-R), truncated `only_first` to the length limit.
//!
//! The premise is tokenized once per text and cut here, not by the tokenizer: `tokenizers`'
//! truncation builds every overflow piece of a long text (stride 0), about 1 GB per label for a
//! 200 KB text, only to tell us it was cut. The pair is then assembled from the two token lists
//! and the special ids around them, which load reads from the tokenizer's own post-processor.

use ahash::AHashMap;
use serde::Deserialize;
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::models::bpe::BPE;
use tokenizers::models::unigram::Unigram;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::replace::{Replace, ReplacePattern};
use tokenizers::normalizers::strip::Strip;
use tokenizers::normalizers::unicode::NFC;
use tokenizers::normalizers::utils::{Lowercase, Sequence as NormalizerSequence};
use tokenizers::normalizers::{BertNormalizer, NormalizerWrapper};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::punctuation::Punctuation;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Model, ModelWrapper, SplitDelimiterBehavior, Tokenizer};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::family::Family;

/// WordPiece's greedy longest-match costs about n³/6 lookups for an n-character word, so the
/// longest word it may try is bounded (100 is BERT's own value, which [`bert_from_vocab`] uses; a
/// 200 KB text of 100-letter words takes about 2 s).
pub const MAX_INPUT_CHARS_PER_WORD: usize = 100;

/// A text tokenized once, without special tokens, to pair with every label's hypothesis.
pub struct Premise {
    ids: Vec<u32>,
    /// Each token's span of the text in chars (Unicode scalar values), where asked for
    /// ([`NliTokenizer::premise_with_offsets`]); empty otherwise.
    offsets: Vec<(usize, usize)>,
}

impl Premise {
    /// Each token's span of the text, [start, end) in chars; empty unless made by
    /// [`NliTokenizer::premise_with_offsets`].
    pub fn offsets(&self) -> &[(usize, usize)] {
        &self.offsets
    }
}

/// One encoded premise/hypothesis pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairEncoding {
    /// The pair with its special tokens, at most the tokenizer's `max_len` ids.
    pub ids: Vec<u32>,
    /// Token types as the model reads them (BERT: 1 from the hypothesis on; others: all 0).
    pub type_ids: Vec<u32>,
    /// Whether the premise was cut to fit.
    pub truncated: bool,
    /// Where the premise's kept tokens sit in `ids`: its first `premise.len()` tokens.
    pub premise: std::ops::Range<usize>,
}

/// A tokenizer's files as a Hub repo ships them: `tokenizer.json`, or the older layouts that
/// transformers builds a tokenizer from (`vocab.txt`; `vocab.json` + `merges.txt`), and
/// `tokenizer_config.json`.
#[derive(Clone, Copy, Default)]
pub struct TokenizerFiles<'a> {
    pub tokenizer_json: Option<&'a [u8]>,
    pub vocab_txt: Option<&'a [u8]>,
    pub vocab_json: Option<&'a [u8]>,
    pub merges_txt: Option<&'a [u8]>,
    pub tokenizer_config: Option<&'a [u8]>,
}

/// Where the post-processor puts special tokens around a pair, and each part's token type:
/// `prefix A middle B suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PairLayout {
    prefix: Vec<u32>,
    middle: Vec<u32>,
    suffix: Vec<u32>,
    /// Types of prefix, A, middle, B, suffix.
    types: [u32; 5],
}

impl PairLayout {
    fn special_tokens(&self) -> usize {
        self.prefix.len() + self.middle.len() + self.suffix.len()
    }
}

/// A tokenizer with our truncation applied.
pub struct NliTokenizer {
    inner: Tokenizer,
    max_len: usize,
    /// Whether a longer pair is cut (`only_first`, as transformers cuts it), or refused: where no
    /// limit binds transformers (a model of relative positions only, without `model_max_length`)
    /// and `max_len` is zeroshot's own bound.
    cuts: bool,
    vocab_size: usize,
    layout: PairLayout,
    reads_token_types: bool,
}

/// The parts of `tokenizer_config.json` that change tokenization, with transformers' defaults.
#[derive(Deserialize)]
struct TokenizerConfig {
    model_max_length: Option<f64>,
    /// BERT's default is true, DeBERTa's false.
    do_lower_case: Option<bool>,
    /// DeBERTa's: punctuation split from words before SentencePiece.
    #[serde(default)]
    split_by_punct: bool,
    #[serde(default = "yes")]
    tokenize_chinese_chars: bool,
    strip_accents: Option<bool>,
    /// RoBERTa's default is false, XLM-R's and DeBERTa's true.
    add_prefix_space: Option<bool>,
    #[serde(default = "yes")]
    trim_offsets: bool,
    /// The transformers class that builds the tokenizer (the family's own when absent).
    tokenizer_class: Option<String>,
    unk_token: Option<TokenName>,
    sep_token: Option<TokenName>,
    pad_token: Option<TokenName>,
    cls_token: Option<TokenName>,
    mask_token: Option<TokenName>,
}

fn yes() -> bool {
    true
}

/// A special token is written either as a string or as an `AddedToken` object.
#[derive(Deserialize)]
#[serde(untagged)]
enum TokenName {
    Plain(String),
    Object { content: String },
}

impl TokenName {
    fn or(name: &Option<TokenName>, default: &str) -> String {
        match name {
            Some(TokenName::Plain(s)) | Some(TokenName::Object { content: s }) => s.clone(),
            None => default.to_string(),
        }
    }
}

impl NliTokenizer {
    /// Builds the tokenizer from `tokenizer.json` when given, else from the family's older layout;
    /// either way `tokenizer_config.json` (optional) sets the length limit.
    pub fn new(files: TokenizerFiles, config: &Config) -> Result<Self> {
        let tok_config: TokenizerConfig = serde_json::from_slice(files.tokenizer_config.unwrap_or(b"{}"))
            .map_err(|e| Error::Json { file: "tokenizer_config.json", message: e.to_string() })?;
        let mut inner = build(files, &tok_config, config.family)?;
        check_word_limit(&inner)?;
        // Our own truncation replaces the file's (often to 128), and nothing is padded.
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| Error::Tokenizer(e.to_string()))?;
        let mut layout = pair_layout(&inner)?;
        let reads_token_types = config.reads_token_types();
        if !reads_token_types {
            layout.types = [0; 5];
        }
        let (max_len, cuts) = max_len(tok_config.model_max_length, config, layout.special_tokens())?;
        Ok(NliTokenizer { inner, max_len, cuts, vocab_size: config.vocab_size, layout, reads_token_types })
    }

    /// The most ids one pair may have.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Whether the model reads token types (BERT); for the others every type is 0.
    pub fn reads_token_types(&self) -> bool {
        self.reads_token_types
    }

    /// Special tokens around a pair (3 for BERT, 4 for RoBERTa).
    pub fn special_tokens(&self) -> usize {
        self.layout.special_tokens()
    }

    /// Encodes the pair, cutting the premise if needed.
    pub fn encode_pair(&self, premise: &str, hypothesis: &str) -> Result<PairEncoding> {
        self.pair(&self.premise(premise)?, hypothesis)
    }

    /// Tokenizes a text once, for [`Self::pair`] with each hypothesis.
    pub fn premise(&self, text: &str) -> Result<Premise> {
        Ok(Premise { ids: self.ids(text)?, offsets: Vec::new() })
    }

    /// [`Self::premise`] with each token's span of the text in chars (the same ids: offsets are
    /// tracked, nothing else changes), for explanations.
    pub fn premise_with_offsets(&self, text: &str) -> Result<Premise> {
        let encoding = self.inner.encode_char_offsets(text, false).map_err(|e| Error::Tokenizer(e.to_string()))?;
        let ids = self.checked(encoding.get_ids())?;
        Ok(Premise { ids, offsets: encoding.get_offsets().to_vec() })
    }

    /// The pair, the premise cut to fit as `only_first` truncation does: it keeps the premise's
    /// first `max_len - special tokens - hypothesis` tokens, and fails when that leaves none.
    pub fn pair(&self, premise: &Premise, hypothesis: &str) -> Result<PairEncoding> {
        let h = self.ids(hypothesis)?;
        let fixed = h.len() + self.special_tokens();
        let room = self.max_len.saturating_sub(fixed);
        if premise.ids.len() + fixed > self.max_len && !self.cuts {
            return Err(Error::TextTooLong { tokens: premise.ids.len() + fixed, max_len: self.max_len });
        }
        if premise.ids.len() + fixed > self.max_len && room == 0 {
            return Err(Error::HypothesisTooLong {
                hypothesis: hypothesis.to_string(),
                tokens: fixed,
                max_len: self.max_len,
            });
        }
        let kept = &premise.ids[..premise.ids.len().min(room)];
        let (ids, type_ids) = assemble(&self.layout, kept, &h);
        let at = self.layout.prefix.len();
        Ok(PairEncoding { truncated: kept.len() < premise.ids.len(), ids, type_ids, premise: at..at + kept.len() })
    }

    /// One sequence's ids without special tokens, each checked against the model's vocabulary.
    fn ids(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self.inner.encode_fast(text, false).map_err(|e| Error::Tokenizer(e.to_string()))?;
        self.checked(encoding.get_ids())
    }

    /// `ids`, each checked against the model's vocabulary.
    fn checked(&self, ids: &[u32]) -> Result<Vec<u32>> {
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= self.vocab_size) {
            return Err(Error::TokenIdOutOfRange { id, vocab_size: self.vocab_size });
        }
        Ok(ids.to_vec())
    }
}

/// The tokenizer from whichever layout the folder has, `tokenizer.json` first. A layout the
/// family's tokenizer cannot be built from exactly is refused, naming the file that would do.
fn build(files: TokenizerFiles, cfg: &TokenizerConfig, family: Family) -> Result<Tokenizer> {
    if let Some(json) = files.tokenizer_json {
        let mut tokenizer =
            Tokenizer::from_bytes(json).map_err(|e| Error::Tokenizer(format!("tokenizer.json: {e}")))?;
        as_transformers_builds(&mut tokenizer, json, cfg, family)?;
        return Ok(tokenizer);
    }
    match family {
        Family::DistilBert | Family::Bert => match files.vocab_txt {
            Some(vocab) => bert_from_vocab(vocab, cfg),
            None => Err(Error::Tokenizer("neither tokenizer.json nor vocab.txt was given".into())),
        },
        Family::Roberta => match (files.vocab_json, files.merges_txt) {
            (Some(vocab), Some(merges)) => roberta_from_bpe(vocab, merges, cfg),
            _ => Err(Error::Tokenizer("a RoBERTa needs tokenizer.json, or vocab.json and merges.txt".into())),
        },
        // transformers builds XLM-R's from sentencepiece.bpe.model and DeBERTa's from spm.model,
        // SentencePiece protobufs we do not read.
        Family::XlmRoberta | Family::DebertaV2 => Err(Error::Tokenizer(format!(
            "{} needs tokenizer.json (the Hub's DeBERTa-v3 and XLM-R repos have one; or save one with transformers: \
             AutoTokenizer.from_pretrained(repo).save_pretrained(folder))",
            if family == Family::DebertaV2 { "a DeBERTa" } else { "an XLM-RoBERTa" }
        ))),
    }
}

/// The normalizer and pre-tokenizer that transformers (5.x) puts on a tokenizer.json's vocabulary.
/// Its `BertTokenizer`, `RobertaTokenizer` and `XLMRobertaTokenizer` (the family's class, unless
/// `tokenizer_class` names another) keep only the file's model, special tokens and SentencePiece
/// charsmap, and set the rest from tokenizer_config.json as their constructors do; any other
/// class uses the file as it is.
fn as_transformers_builds(tokenizer: &mut Tokenizer, json: &[u8], cfg: &TokenizerConfig, family: Family) -> Result<()> {
    let class = cfg.tokenizer_class.as_deref().map(|c| c.trim_end_matches("Fast"));
    let class = class.unwrap_or(match family {
        Family::DistilBert => "DistilBertTokenizer",
        Family::Bert => "BertTokenizer",
        Family::Roberta => "RobertaTokenizer",
        Family::XlmRoberta => "XLMRobertaTokenizer",
        Family::DebertaV2 => "DebertaV2Tokenizer",
    });
    let fail = |e: tokenizers::Error| Error::Tokenizer(e.to_string());
    match class {
        "BertTokenizer" | "DistilBertTokenizer" => {
            tokenizer
                .with_normalizer(Some(bert_normalizer(cfg)))
                .map_err(fail)?
                .with_pre_tokenizer(Some(BertPreTokenizer));
        }
        "RobertaTokenizer" => {
            tokenizer
                .with_normalizer(None::<NormalizerWrapper>)
                .map_err(fail)?
                .with_pre_tokenizer(Some(byte_level(cfg)));
        }
        "XLMRobertaTokenizer" => {
            let prepend =
                if cfg.add_prefix_space.unwrap_or(true) { PrependScheme::Always } else { PrependScheme::Never };
            let split = PreTokenizerWrapper::from(WhitespaceSplit);
            let metaspace = PreTokenizerWrapper::from(Metaspace::new('\u{2581}', prepend, true));
            tokenizer
                .with_normalizer(precompiled_charsmap(json)?)
                .map_err(fail)?
                .with_pre_tokenizer(Some(PreTokenizerSequence::new(vec![split, metaspace])));
        }
        "DebertaV2Tokenizer" => as_deberta_builds(tokenizer, json, cfg)?,
        _ => {}
    }
    Ok(())
}

/// transformers' `DebertaV2Tokenizer`: the file's Unigram vocabulary (its unknown token the
/// `unk_token` entry of score 0, else id 1; no byte fallback) and added tokens, with the class's
/// own normalizer, pre-tokenizer and `[CLS] A [SEP] B [SEP]` template.
fn as_deberta_builds(tokenizer: &mut Tokenizer, json: &[u8], cfg: &TokenizerConfig) -> Result<()> {
    let fail = |e: tokenizers::Error| Error::Tokenizer(format!("tokenizer.json: {e}"));
    let unk = TokenName::or(&cfg.unk_token, "[UNK]");
    let vocab = unigram_vocab(json)?;
    let unk_id = vocab.iter().position(|(piece, score)| *piece == unk && *score == 0.0).unwrap_or(1);
    tokenizer.with_model(Unigram::from(vocab, Some(unk_id), false).map_err(fail)?);
    let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
    if cfg.do_lower_case.unwrap_or(false) {
        normalizers.push(Lowercase.into());
    }
    normalizers.push(Replace::new(ReplacePattern::Regex(r"\s{2,}|[\n\r\t]".into()), " ").map_err(fail)?.into());
    normalizers.extend([NFC.into(), Strip::new(false, true).into()]);
    tokenizer.with_normalizer(Some(NormalizerSequence::new(normalizers))).map_err(fail)?;
    let mut pre: Vec<PreTokenizerWrapper> = Vec::new();
    if cfg.split_by_punct {
        pre.push(Punctuation::new(SplitDelimiterBehavior::Isolated).into());
    }
    let prepend = if cfg.add_prefix_space.unwrap_or(true) { PrependScheme::Always } else { PrependScheme::First };
    pre.push(Metaspace::new('\u{2581}', prepend, true).into());
    tokenizer.with_pre_tokenizer(Some(PreTokenizerSequence::new(pre)));
    let (cls, sep) = (TokenName::or(&cfg.cls_token, "[CLS]"), TokenName::or(&cfg.sep_token, "[SEP]"));
    let id = |name: &str| {
        tokenizer.token_to_id(name).ok_or_else(|| Error::Tokenizer(format!("tokenizer.json has no {name} token")))
    };
    let template = TemplateProcessing::builder()
        .try_single(format!("{cls}:0 $A:0 {sep}:0"))
        .and_then(|b| b.try_pair(format!("{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1")))
        .map_err(|e| Error::Tokenizer(format!("template: {e}")))?
        .special_tokens(vec![(cls.clone(), id(&cls)?), (sep.clone(), id(&sep)?)])
        .build()
        .map_err(|e| Error::Tokenizer(format!("template: {e}")))?;
    tokenizer.with_post_processor(Some(template));
    Ok(())
}

/// A tokenizer.json's Unigram vocabulary: [piece, score] pairs.
fn unigram_vocab(json: &[u8]) -> Result<Vec<(String, f64)>> {
    #[derive(Deserialize)]
    struct File {
        model: UnigramModel,
    }
    #[derive(Deserialize)]
    struct UnigramModel {
        #[serde(rename = "type")]
        kind: Option<String>,
        vocab: serde_json::Value,
    }
    let file: File =
        serde_json::from_slice(json).map_err(|e| Error::Json { file: "tokenizer.json", message: e.to_string() })?;
    let not_unigram = || Error::Field {
        file: "tokenizer.json",
        field: "model",
        reason: "is not a Unigram (SentencePiece) model; DeBERTa-v2's tokenizer is one".into(),
    };
    if file.model.kind.as_deref().is_some_and(|k| k != "Unigram") {
        return Err(not_unigram());
    }
    serde_json::from_value(file.model.vocab).map_err(|_| not_unigram())
}

/// The `Precompiled` (SentencePiece charsmap) normalizer of a tokenizer.json, alone or in a
/// sequence, as transformers extracts it.
fn precompiled_charsmap(json: &[u8]) -> Result<Option<NormalizerWrapper>> {
    let file: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| Error::Json { file: "tokenizer.json", message: e.to_string() })?;
    let normalizer = &file["normalizer"];
    let candidates = match normalizer["type"].as_str() {
        Some("Sequence") => normalizer["normalizers"].as_array().cloned().unwrap_or_default(),
        _ => vec![normalizer.clone()],
    };
    let Some(precompiled) = candidates.into_iter().find(|n| n["type"] == "Precompiled") else { return Ok(None) };
    serde_json::from_value(precompiled)
        .map(Some)
        .map_err(|e| Error::Json { file: "tokenizer.json", message: format!("normalizer: {e}") })
}

/// BERT's normalizer with tokenizer_config.json's options, as transformers' `BertTokenizer` sets it.
fn bert_normalizer(cfg: &TokenizerConfig) -> BertNormalizer {
    BertNormalizer::new(true, cfg.tokenize_chinese_chars, cfg.strip_accents, cfg.do_lower_case.unwrap_or(true))
}

/// RoBERTa's ByteLevel pre-tokenizer with tokenizer_config.json's options.
fn byte_level(cfg: &TokenizerConfig) -> tokenizers::pre_tokenizers::byte_level::ByteLevel {
    tokenizers::pre_tokenizers::byte_level::ByteLevel::new(
        cfg.add_prefix_space.unwrap_or(false),
        cfg.trim_offsets,
        true,
    )
}

/// The pair length limit: the smaller of `model_max_length` and the positions a sequence may
/// use, and whether longer pairs are cut (not where the limit is zeroshot's own bound on a model
/// without a position table). A limit that leaves no room for a token of text beside the special
/// tokens is refused.
fn max_len(model_max_length: Option<f64>, config: &Config, specials: usize) -> Result<(usize, bool)> {
    let positions = config.max_tokens();
    let (limit, file, field, claimed) = match model_max_length {
        Some(m) if m < positions as f64 => (m.max(0.0) as usize, "tokenizer_config.json", "model_max_length", m),
        _ => (positions, "config.json", "max_position_embeddings", positions as f64),
    };
    // transformers cuts at model_max_length whenever it has one that a text can reach.
    let cuts = config.absolute_positions || model_max_length.is_some_and(|m| m <= positions as f64);
    if limit < specials + 2 {
        return Err(Error::Field {
            file,
            field,
            reason: format!(
                "is {claimed}; a pair needs {specials} special tokens plus at least one token of text and one of hypothesis"
            ),
        });
    }
    Ok((limit, cuts))
}

/// How the tokenizer's own post-processor lays out a pair, read by encoding probe pairs: the
/// special ids before, between and after the two texts, and each part's token type. A layout
/// the probes do not confirm, or one that does not start with a special token for the
/// classifier to read, is refused.
fn pair_layout(tokenizer: &Tokenizer) -> Result<PairLayout> {
    let fail = |e: tokenizers::Error| Error::Tokenizer(format!("cannot encode a probe pair: {e}"));
    let bare = |t: &str| tokenizer.encode_fast(t, false).map(|e| e.get_ids().to_vec()).map_err(fail);
    let pair = |a: &str, b: &str| {
        let e = tokenizer.encode_fast((a, b), true).map_err(fail)?;
        Ok::<_, Error>((e.get_ids().to_vec(), e.get_type_ids().to_vec()))
    };
    let (a, b) = (bare("a")?, bare("b")?);
    let (ids, types) = pair("a", "b")?;
    let layout = split_pair(&ids, &types, &a, &b);
    // A second probe with other lengths confirms the layout is a template, not a coincidence.
    let (c, d) = (bare("c d e")?, bare("f")?);
    let confirmed = layout.as_ref().filter(|l| pair("c d e", "f").ok() == Some(assemble(l, &c, &d)));
    match confirmed {
        Some(l) if !l.prefix.is_empty() && !a.is_empty() && !b.is_empty() => Ok(l.clone()),
        _ => Err(Error::Field {
            file: "tokenizer.json",
            field: "post_processor",
            reason: format!(
                "must put a pair as special tokens, A, special tokens, B, special tokens, starting with one \
                 ([CLS] or <s>) for the classifier to read; the probe pair a/b gave ids {ids:?} from a={a:?}, b={b:?}"
            ),
        }),
    }
}

/// `ids` split as prefix, `a`, middle, `b`, suffix (the first split that fits), with the type of
/// each part; `None` where no split fits or a part's types differ.
fn split_pair(ids: &[u32], types: &[u32], a: &[u32], b: &[u32]) -> Option<PairLayout> {
    let i = (0..ids.len()).find(|&i| ids[i..].starts_with(a))?;
    let j = (i + a.len()..ids.len()).find(|&j| ids[j..].starts_with(b))?;
    let bounds = [0, i, i + a.len(), j, j + b.len(), ids.len()];
    let mut part_types = [0; 5];
    for (k, t) in part_types.iter_mut().enumerate() {
        let part = types.get(bounds[k]..bounds[k + 1])?;
        *t = part.first().copied().unwrap_or(0);
        if part.iter().any(|x| x != t) {
            return None;
        }
    }
    let layout = PairLayout {
        prefix: ids[..i].to_vec(),
        middle: ids[i + a.len()..j].to_vec(),
        suffix: ids[j + b.len()..].to_vec(),
        types: part_types,
    };
    (assemble(&layout, a, b).0 == ids).then_some(layout)
}

/// The ids and types of `a`, `b` laid out as `layout` says.
fn assemble(layout: &PairLayout, a: &[u32], b: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let parts = [&layout.prefix[..], a, &layout.middle, b, &layout.suffix];
    let types = parts.iter().zip(layout.types).flat_map(|(p, t)| std::iter::repeat_n(t, p.len())).collect();
    (parts.concat(), types)
}

/// A tokenizer.json's WordPiece must have its unk token and a bounded word length.
fn check_word_limit(tokenizer: &Tokenizer) -> Result<()> {
    let ModelWrapper::WordPiece(wp) = tokenizer.get_model() else { return Ok(()) };
    if wp.token_to_id(&wp.unk_token).is_none() {
        return Err(Error::Field {
            file: "tokenizer.json",
            field: "model.unk_token",
            reason: format!("{:?} is not in the vocabulary", wp.unk_token),
        });
    }
    if wp.max_input_chars_per_word > MAX_INPUT_CHARS_PER_WORD {
        return Err(Error::Field {
            file: "tokenizer.json",
            field: "model.max_input_chars_per_word",
            reason: format!(
                "is {}; above {MAX_INPUT_CHARS_PER_WORD} one long word costs seconds (WordPiece is cubic in word length; BERT uses 100)",
                wp.max_input_chars_per_word
            ),
        });
    }
    Ok(())
}

/// The BERT uncased pipeline that transformers builds from a `vocab.txt`: BertNormalizer,
/// BertPreTokenizer, WordPiece (`##` continuation, 100-char words), `[CLS] A [SEP] B [SEP]`.
fn bert_from_vocab(vocab_txt: &[u8], cfg: &TokenizerConfig) -> Result<Tokenizer> {
    let text = std::str::from_utf8(vocab_txt).map_err(|e| Error::Tokenizer(format!("vocab.txt is not UTF-8: {e}")))?;
    // One token per line, id = line number (a repeated token keeps its last line, as in transformers).
    let vocab: AHashMap<String, u32> = text.lines().enumerate().map(|(i, t)| (t.to_string(), i as u32)).collect();
    let unk = TokenName::or(&cfg.unk_token, "[UNK]");
    let id_of =
        |name: &str| vocab.get(name).copied().ok_or_else(|| Error::Tokenizer(format!("vocab.txt has no {name} token")));
    let (cls, sep) = (TokenName::or(&cfg.cls_token, "[CLS]"), TokenName::or(&cfg.sep_token, "[SEP]"));
    let processor = BertProcessing::new((sep.clone(), id_of(&sep)?), (cls.clone(), id_of(&cls)?));
    id_of(&unk)?;
    let specials: Vec<AddedToken> =
        [TokenName::or(&cfg.pad_token, "[PAD]"), unk.clone(), cls, sep, TokenName::or(&cfg.mask_token, "[MASK]")]
            .into_iter()
            .filter(|t| vocab.contains_key(t))
            .map(|t| AddedToken::from(t, true))
            .collect();
    let model = WordPiece::builder()
        .vocab(vocab)
        .unk_token(unk)
        .continuing_subword_prefix("##".into())
        .max_input_chars_per_word(100)
        .build()
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer
        .with_normalizer(Some(bert_normalizer(cfg)))
        .map_err(|e| Error::Tokenizer(e.to_string()))?
        .with_pre_tokenizer(Some(BertPreTokenizer))
        .with_post_processor(Some(processor));
    tokenizer.add_special_tokens(specials).map_err(|e| Error::Tokenizer(e.to_string()))?;
    Ok(tokenizer)
}

/// RoBERTa's byte-level BPE as transformers builds it from `vocab.json` and `merges.txt`
/// (`RobertaTokenizer`): ByteLevel pre-tokenizer and decoder, no unknown token, the special
/// tokens matched before BPE, `<s> A </s></s> B </s>`.
fn roberta_from_bpe(vocab_json: &[u8], merges_txt: &[u8], cfg: &TokenizerConfig) -> Result<Tokenizer> {
    let vocab: AHashMap<String, u32> =
        serde_json::from_slice(vocab_json).map_err(|e| Error::Json { file: "vocab.json", message: e.to_string() })?;
    let merges = std::str::from_utf8(merges_txt)
        .map_err(|e| Error::Tokenizer(format!("merges.txt is not UTF-8: {e}")))?
        .lines()
        .filter(|l| !l.starts_with("#version") && !l.is_empty())
        .enumerate()
        .map(|(i, line)| match line.split(' ').collect::<Vec<_>>()[..] {
            [a, b] => Ok((a.to_string(), b.to_string())),
            _ => Err(Error::Tokenizer(format!("merges.txt line {} is not two tokens: {line:?}", i + 1))),
        })
        .collect::<Result<Vec<_>>>()?;
    let id_of = |name: &str| {
        vocab.get(name).copied().ok_or_else(|| Error::Tokenizer(format!("vocab.json has no {name} token")))
    };
    let (cls, sep) = (TokenName::or(&cfg.cls_token, "<s>"), TokenName::or(&cfg.sep_token, "</s>"));
    let processor = RobertaProcessing::new((sep.clone(), id_of(&sep)?), (cls.clone(), id_of(&cls)?))
        .trim_offsets(cfg.trim_offsets)
        .add_prefix_space(cfg.add_prefix_space.unwrap_or(false));
    // transformers (5.x) adds them plain: `<mask>` does not take the space before it.
    let names = [
        TokenName::or(&cfg.pad_token, "<pad>"),
        TokenName::or(&cfg.unk_token, "<unk>"),
        cls,
        sep,
        TokenName::or(&cfg.mask_token, "<mask>"),
    ];
    let specials: Vec<AddedToken> =
        names.into_iter().filter(|t| vocab.contains_key(t)).map(|t| AddedToken::from(t, true)).collect();
    let model = BPE::builder().vocab_and_merges(vocab, merges).build().map_err(|e| Error::Tokenizer(e.to_string()))?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer
        .with_pre_tokenizer(Some(byte_level(cfg)))
        .with_decoder(Some(ByteLevel::default()))
        .with_post_processor(Some(processor));
    tokenizer.add_special_tokens(specials).map_err(|e| Error::Tokenizer(e.to_string()))?;
    Ok(tokenizer)
}
