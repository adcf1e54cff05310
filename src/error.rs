//! The crate's one error type: every failure a user can cause ends up here with a message that
//! says what was wrong and, where we know it, what to do about it.

/// Everything that can go wrong in zeroshot.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot read {path}: {reason}")]
    BadFile { path: String, reason: String },

    #[error("{file} is not valid JSON for this purpose: {message}")]
    Json { file: &'static str, message: String },

    #[error("model folder {dir} has no {file}")]
    MissingFile { dir: String, file: &'static str },

    #[error(
        "model folder {dir} has pytorch_model.bin but no model.safetensors; zeroshot reads only safetensors. \
         Convert it with `python -c \"from transformers import AutoModelForSequenceClassification as M; \
         M.from_pretrained('{dir}').save_pretrained('{dir}', safe_serialization=True)\"` or download the \
         repo's model.safetensors (for typeform/distilbert-base-uncased-mnli it is at revision refs/pr/3)"
    )]
    PytorchOnly { dir: String },

    #[error(
        "model folder {dir} has no tokenizer: it needs tokenizer.json, vocab.txt (BERT), or vocab.json and merges.txt (RoBERTa); XLM-R and DeBERTa need tokenizer.json"
    )]
    MissingTokenizer { dir: String },

    #[error(
        "config.json: model_type is {0:?}; zeroshot runs \"distilbert\", \"bert\", \"roberta\", \"xlm-roberta\" and \"deberta-v2\" (DeBERTa-v3) models"
    )]
    UnsupportedModelType(String),

    #[error("config.json: sinusoidal_pos_embds is true; only learned position embeddings are supported")]
    SinusoidalPositions,

    #[error(
        "config.json: activation {0:?} is not supported (\"gelu\", \"gelu_new\", \"gelu_pytorch_tanh\", \"relu\" and \"tanh\" are)"
    )]
    UnsupportedActivation(String),

    #[error("config.json: dim {dim} is not divisible by n_heads {n_heads}")]
    HeadsDontDivide { dim: usize, n_heads: usize },

    #[error("config.json: {field} must be at least 1")]
    ZeroSize { field: &'static str },

    #[error(
        "config.json: no label in label2id starts with \"entail\" (labels: {labels:?}); \
         a zero-shot classifier needs an NLI model with an entailment label"
    )]
    NoEntailmentLabel { labels: Vec<String> },

    #[error("config.json: label2id maps {label:?} to {id}, outside the model's {num_labels} labels")]
    LabelIdOutOfRange { label: String, id: i64, num_labels: usize },

    #[error("{file}: {field} {reason}")]
    Field { file: &'static str, field: &'static str, reason: String },

    #[error("model.safetensors is not a valid safetensors file: {0}")]
    Safetensors(String),

    #[error("model.safetensors has no tensor {name} (also looked for it without the model's prefix)")]
    MissingTensor { name: String },

    #[error("tensor {name} has shape {actual:?}, expected {expected:?} from config.json")]
    TensorShape { name: String, expected: Vec<usize>, actual: Vec<usize> },

    #[error(
        "tensor {name} has dtype {dtype}; supported are F32, F16 and BF16, and I8 with a {name}_scale tensor \
         for Linear weights and the word embedding"
    )]
    TensorDtype { name: String, dtype: String },

    #[error("tokenizer: {0}")]
    Tokenizer(String),

    #[error(
        "the hypothesis {hypothesis:?} takes {tokens} tokens with the special tokens around a pair; it must leave room for the \
         text within the model's {max_len}-token limit"
    )]
    HypothesisTooLong { hypothesis: String, tokens: usize, max_len: usize },

    #[error(
        "the text and hypothesis take {tokens} tokens, over the {max_len} zeroshot takes at once with this model; \
         transformers would not cut it there (its positions are relative, and its tokenizer's model_max_length is \
         unset or larger), so neither does zeroshot: split the text into parts"
    )]
    TextTooLong { tokens: usize, max_len: usize },

    #[error(
        "explaining this text takes {pairs} pairs, {rows} token rows in all (about one classification per word), \
         over the {max_rows} zeroshot explains at once: explain a shorter text or fewer labels"
    )]
    ExplanationTooLarge { pairs: usize, rows: usize, max_rows: usize },

    #[error("the text is empty; give at least one character to classify")]
    EmptyText,

    #[error("no candidate labels; give at least one (e.g. \"sports, politics\")")]
    NoLabels,

    #[error("hypothesis template {template:?}: {reason}")]
    BadTemplate { template: String, reason: String },

    #[error(
        "the model's logits for label {label:?} are not finite ({logits:?}): its weights or activations \
         overflow on this text, so no score can be given"
    )]
    NonFiniteLogits { label: String, logits: Vec<f32> },

    #[error("model.safetensors: tensor {name} holds a non-finite value ({value}) at index {index}")]
    NonFiniteWeight { name: String, index: usize, value: f32 },

    #[error("model.safetensors: int8 scale {name}[{index}] is {value}; a scale must be finite and not negative")]
    BadScale { name: String, index: usize, value: f32 },

    #[error("convert: {0}")]
    Convert(String),

    #[error("GPU: {0}")]
    Gpu(String),

    #[error("backend: {0}")]
    Backend(String),

    #[error("tokenizer produced id {id}, outside the model's vocabulary of {vocab_size}")]
    TokenIdOutOfRange { id: u32, vocab_size: usize },
}

/// Result with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
