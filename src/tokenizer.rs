//! Premise/hypothesis pairs to token ids, as transformers' zero-shot pipeline makes them:
//! `[CLS] premise [SEP] hypothesis [SEP]`, truncated `only_first` to the model's length limit.
//!
//! The premise is tokenized once per text and cut here, not by the tokenizer: `tokenizers`'
//! truncation builds every overflow piece of a long text (stride 0), about 1 GB per label for a
//! 200 KB text, only to tell us it was cut. The pair is then assembled from the two token lists
//! and the `[CLS]`/`[SEP]` ids, which load checks against the tokenizer's own post-processor.

use ahash::AHashMap;
use serde::Deserialize;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{AddedToken, Model, ModelWrapper, Tokenizer};

use crate::config::Config;
use crate::error::{Error, Result};

/// `[CLS]`, `[SEP]`, `[SEP]` around a pair.
const PAIR_SPECIAL_TOKENS: usize = 3;

/// WordPiece's greedy longest-match costs about n³/6 lookups for an n-character word, so the
/// longest word it may try is bounded (100 is BERT's own value, which [`bert_from_vocab`] uses; a
/// 200 KB text of 100-letter words takes about 2 s).
pub const MAX_INPUT_CHARS_PER_WORD: usize = 100;

/// A text tokenized once, without special tokens, to pair with every label's hypothesis.
pub struct Premise {
    ids: Vec<u32>,
}

/// One encoded premise/hypothesis pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairEncoding {
    /// `[CLS] premise [SEP] hypothesis [SEP]`, at most the tokenizer's `max_len` ids.
    pub ids: Vec<u32>,
    /// Whether the premise was cut to fit.
    pub truncated: bool,
}

/// A BERT WordPiece tokenizer with our truncation applied.
pub struct NliTokenizer {
    inner: Tokenizer,
    max_len: usize,
    vocab_size: usize,
    /// The ids the post-processor puts around a pair: `[CLS] A [SEP] B [SEP]`.
    cls: u32,
    sep: u32,
}

/// The parts of `tokenizer_config.json` that change tokenization, with transformers' defaults.
#[derive(Deserialize)]
struct TokenizerConfig {
    model_max_length: Option<f64>,
    #[serde(default = "yes")]
    do_lower_case: bool,
    #[serde(default = "yes")]
    tokenize_chinese_chars: bool,
    strip_accents: Option<bool>,
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
    /// Builds the tokenizer from `tokenizer.json` when given, else from `vocab.txt`; either way
    /// `tokenizer_config.json` (optional) sets the length limit.
    pub fn new(
        tokenizer_json: Option<&[u8]>,
        vocab_txt: Option<&[u8]>,
        tokenizer_config: Option<&[u8]>,
        config: &Config,
    ) -> Result<Self> {
        let tok_config: TokenizerConfig = serde_json::from_slice(tokenizer_config.unwrap_or(b"{}"))
            .map_err(|e| Error::Json { file: "tokenizer_config.json", message: e.to_string() })?;
        let mut inner = match (tokenizer_json, vocab_txt) {
            (Some(json), _) => {
                Tokenizer::from_bytes(json).map_err(|e| Error::Tokenizer(format!("tokenizer.json: {e}")))?
            }
            (None, Some(vocab)) => bert_from_vocab(vocab, &tok_config)?,
            (None, None) => {
                return Err(Error::Tokenizer("neither tokenizer.json nor vocab.txt was given".into()));
            }
        };
        check_word_limit(&inner)?;
        let max_len = max_len(tok_config.model_max_length, config)?;
        // Our own truncation replaces the file's (often to 128), and nothing is padded.
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| Error::Tokenizer(e.to_string()))?;
        let (cls, sep) = pair_specials(&inner)?;
        Ok(NliTokenizer { inner, max_len, vocab_size: config.vocab_size, cls, sep })
    }

    /// The most ids one pair may have.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Encodes `[CLS] premise [SEP] hypothesis [SEP]`, cutting the premise if needed.
    pub fn encode_pair(&self, premise: &str, hypothesis: &str) -> Result<PairEncoding> {
        self.pair(&self.premise(premise)?, hypothesis)
    }

    /// Tokenizes a text once, for [`Self::pair`] with each hypothesis.
    pub fn premise(&self, text: &str) -> Result<Premise> {
        Ok(Premise { ids: self.ids(text)? })
    }

    /// `[CLS] premise [SEP] hypothesis [SEP]`, the premise cut to fit as `only_first` truncation
    /// does: it keeps the premise's first `max_len - 3 - hypothesis` tokens, and fails when that
    /// leaves none.
    pub fn pair(&self, premise: &Premise, hypothesis: &str) -> Result<PairEncoding> {
        let h = self.ids(hypothesis)?;
        let total = premise.ids.len() + h.len() + PAIR_SPECIAL_TOKENS;
        let room = self.max_len.saturating_sub(h.len() + PAIR_SPECIAL_TOKENS);
        if total > self.max_len && room == 0 {
            return Err(Error::HypothesisTooLong {
                hypothesis: hypothesis.to_string(),
                tokens: h.len() + PAIR_SPECIAL_TOKENS,
                max_len: self.max_len,
            });
        }
        let kept = &premise.ids[..premise.ids.len().min(room)];
        let mut ids = Vec::with_capacity(kept.len() + h.len() + PAIR_SPECIAL_TOKENS);
        ids.push(self.cls);
        ids.extend_from_slice(kept);
        ids.push(self.sep);
        ids.extend_from_slice(&h);
        ids.push(self.sep);
        Ok(PairEncoding { truncated: kept.len() < premise.ids.len(), ids })
    }

    /// One sequence's ids without special tokens, each checked against the model's vocabulary.
    fn ids(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self.inner.encode_fast(text, false).map_err(|e| Error::Tokenizer(e.to_string()))?;
        let ids = encoding.get_ids();
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= self.vocab_size) {
            return Err(Error::TokenIdOutOfRange { id, vocab_size: self.vocab_size });
        }
        Ok(ids.to_vec())
    }
}

/// The pair length limit: the smaller of `model_max_length` and the position table. A limit that
/// leaves no room for a token of text beside the three special tokens is refused.
fn max_len(model_max_length: Option<f64>, config: &Config) -> Result<usize> {
    let positions = config.max_position_embeddings;
    match model_max_length {
        None => Ok(positions),
        Some(m) if m >= positions as f64 => Ok(positions),
        Some(m) if m >= (PAIR_SPECIAL_TOKENS + 2) as f64 => Ok(m as usize),
        Some(m) => Err(Error::Field {
            file: "tokenizer_config.json",
            field: "model_max_length",
            reason: format!(
                "is {m}; a pair needs {PAIR_SPECIAL_TOKENS} special tokens plus at least one token of text and one of hypothesis"
            ),
        }),
    }
}

/// The ids around a pair, read from the tokenizer's own post-processor by encoding a probe pair:
/// it must give `[X] a [Y] b [Y]`, as BERT's does. Anything else (no post-processor, a template
/// with other tokens) would make our pairs differ from transformers', so it is refused.
fn pair_specials(tokenizer: &Tokenizer) -> Result<(u32, u32)> {
    let fail = |e: tokenizers::Error| Error::Tokenizer(format!("cannot encode a probe pair: {e}"));
    let (a, b) = ("a", "b");
    let bare = |t: &str| tokenizer.encode_fast(t, false).map(|e| e.get_ids().to_vec()).map_err(fail);
    let (a_ids, b_ids) = (bare(a)?, bare(b)?);
    let pair = tokenizer.encode_fast((a, b), true).map_err(fail)?.get_ids().to_vec();
    let (cls, sep) = (pair.first().copied(), pair.get(1 + a_ids.len()).copied());
    let rebuilt: Option<Vec<u32>> = cls.zip(sep).map(|(c, s)| [&[c][..], &a_ids, &[s], &b_ids, &[s]].concat());
    match (cls, sep) {
        (Some(c), Some(s)) if rebuilt.as_ref() == Some(&pair) && !a_ids.is_empty() => Ok((c, s)),
        _ => Err(Error::Field {
            file: "tokenizer.json",
            field: "post_processor",
            reason: format!(
                "must put pairs as [CLS] A [SEP] B [SEP] (BertProcessing); the probe pair a/b gave ids {pair:?} from a={a_ids:?}, b={b_ids:?}"
            ),
        }),
    }
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
    let normalizer = BertNormalizer::new(true, cfg.tokenize_chinese_chars, cfg.strip_accents, cfg.do_lower_case);
    let mut tokenizer = Tokenizer::new(model);
    tokenizer
        .with_normalizer(Some(normalizer))
        .map_err(|e| Error::Tokenizer(e.to_string()))?
        .with_pre_tokenizer(Some(BertPreTokenizer))
        .with_post_processor(Some(processor));
    tokenizer.add_special_tokens(specials).map_err(|e| Error::Tokenizer(e.to_string()))?;
    Ok(tokenizer)
}
