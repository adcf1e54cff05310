//! Premise/hypothesis pairs to token ids, as transformers' zero-shot pipeline makes them:
//! `[CLS] premise [SEP] hypothesis [SEP]`, truncated `only_first` to the model's length limit.

use ahash::AHashMap;
use serde::Deserialize;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{AddedToken, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::config::Config;
use crate::error::{Error, Result};

/// `[CLS]`, `[SEP]`, `[SEP]` around a pair.
const PAIR_SPECIAL_TOKENS: usize = 3;

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
        // The limit is the smaller of the tokenizer's and the position table's; a tokenizer.json's
        // own padding and truncation (often to 128) are replaced by ours.
        let max_len = match tok_config.model_max_length {
            Some(m) if m >= 1.0 && m < config.max_position_embeddings as f64 => m as usize,
            _ => config.max_position_embeddings,
        };
        let truncation = TruncationParams {
            direction: TruncationDirection::Right,
            max_length: max_len,
            strategy: TruncationStrategy::OnlyFirst,
            stride: 0,
        };
        inner.with_padding(None);
        inner.with_truncation(Some(truncation)).map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(NliTokenizer { inner, max_len, vocab_size: config.vocab_size })
    }

    /// The most ids one pair may have.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Encodes `[CLS] premise [SEP] hypothesis [SEP]`, cutting the premise if needed.
    pub fn encode_pair(&self, premise: &str, hypothesis: &str) -> Result<PairEncoding> {
        let encoding = match self.inner.encode_fast((premise, hypothesis), true) {
            Ok(encoding) => encoding,
            Err(e) => return Err(self.explain_failure(hypothesis, e)),
        };
        let ids = encoding.get_ids().to_vec();
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= self.vocab_size) {
            return Err(Error::TokenIdOutOfRange { id, vocab_size: self.vocab_size });
        }
        Ok(PairEncoding { truncated: !encoding.get_overflowing().is_empty(), ids })
    }

    /// `only_first` truncation fails when the hypothesis leaves no room for the premise.
    fn explain_failure(&self, hypothesis: &str, err: tokenizers::Error) -> Error {
        // Count the hypothesis untruncated; a clone is fine on this error path.
        let mut untruncated = self.inner.clone();
        if let Err(e) = untruncated.with_truncation(None) {
            return Error::Tokenizer(e.to_string());
        }
        match untruncated.encode_fast(hypothesis, false) {
            Ok(h) if h.len() + PAIR_SPECIAL_TOKENS >= self.max_len => Error::HypothesisTooLong {
                hypothesis: hypothesis.to_string(),
                tokens: h.len() + PAIR_SPECIAL_TOKENS,
                max_len: self.max_len,
            },
            _ => Error::Tokenizer(err.to_string()),
        }
    }
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
