//! The encoder families zeroshot runs, and what tells them apart: their `model_type`, their
//! checkpoint tensor names, how positions are counted, whether token types are read, and the
//! classification head's activation. They share one forward ([`crate::model::Encoder`]): a
//! post-LayerNorm encoder, then dense + activation on [CLS], then the classifier. DeBERTa-v2/v3
//! adds relative positions to its attention scores (see [`crate::relative`]) and may leave the
//! absolute ones out. Everything here is data; nothing in the forward asks which family runs.

use crate::config::Activation;

/// A `*ForSequenceClassification` architecture of transformers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    DistilBert,
    Bert,
    Roberta,
    XlmRoberta,
    /// `deberta-v2`, which DeBERTa-v3 and mDeBERTa-v3 checkpoints use.
    DebertaV2,
}

/// Tensor names of one family's checkpoints. Backbone names are relative to `backbone`
/// (`bert.`, say), block names to `{backbone}.{layers}.{i}`.
pub struct Names {
    /// Prefix of the encoder's tensors in a `*ForSequenceClassification` checkpoint; a bare
    /// encoder export (`DistilBertModel`) saves them without it.
    pub backbone: &'static str,
    pub word_embeddings: &'static str,
    pub position_embeddings: &'static str,
    /// `None` where the family has no token-type table (DistilBERT).
    pub token_type_embeddings: Option<&'static str>,
    pub embeddings_norm: &'static str,
    /// The blocks: `{layers}.{i}.…`.
    pub layers: &'static str,
    /// q, k and v projections.
    pub qkv: [&'static str; 3],
    pub attention_output: &'static str,
    pub attention_norm: &'static str,
    pub ffn_up: &'static str,
    pub ffn_down: &'static str,
    pub output_norm: &'static str,
    /// The dense layer on [CLS] before the classifier, and whether it sits inside the backbone
    /// (BERT's `bert.pooler.dense`) or beside it (`pre_classifier`, `classifier.dense`).
    pub pooler: &'static str,
    pub pooler_in_backbone: bool,
    pub classifier: &'static str,
    /// DeBERTa's relative-position tensors; `None` for the families of absolute positions only.
    pub relative: Option<RelativeNames>,
}

/// DeBERTa-v2's own tensors: relative to `backbone`, the block's relative to its prefix.
pub struct RelativeNames {
    /// `Linear(embedding_size, hidden_size, bias=False)`, where the two differ.
    pub embedding_projection: &'static str,
    /// The relative-position embeddings, [2 * span, dim].
    pub embeddings: &'static str,
    /// Their LayerNorm, where `norm_rel_ebd` says `layer_norm`.
    pub norm: &'static str,
    /// The block's own projections of the relative embeddings (without `share_att_key`).
    pub pos_query: &'static str,
    pub pos_key: &'static str,
}

const DISTILBERT: Names = Names {
    backbone: "distilbert",
    word_embeddings: "embeddings.word_embeddings",
    position_embeddings: "embeddings.position_embeddings",
    token_type_embeddings: None,
    embeddings_norm: "embeddings.LayerNorm",
    layers: "transformer.layer",
    qkv: ["attention.q_lin", "attention.k_lin", "attention.v_lin"],
    attention_output: "attention.out_lin",
    attention_norm: "sa_layer_norm",
    ffn_up: "ffn.lin1",
    ffn_down: "ffn.lin2",
    output_norm: "output_layer_norm",
    pooler: "pre_classifier",
    pooler_in_backbone: false,
    classifier: "classifier",
    relative: None,
};

/// BERT's encoder names, which RoBERTa and XLM-R keep under their own prefix.
const BERT: Names = Names {
    backbone: "bert",
    word_embeddings: "embeddings.word_embeddings",
    position_embeddings: "embeddings.position_embeddings",
    token_type_embeddings: Some("embeddings.token_type_embeddings"),
    embeddings_norm: "embeddings.LayerNorm",
    layers: "encoder.layer",
    qkv: ["attention.self.query", "attention.self.key", "attention.self.value"],
    attention_output: "attention.output.dense",
    attention_norm: "attention.output.LayerNorm",
    ffn_up: "intermediate.dense",
    ffn_down: "output.dense",
    output_norm: "output.LayerNorm",
    pooler: "pooler.dense",
    pooler_in_backbone: true,
    classifier: "classifier",
    relative: None,
};

/// `RobertaClassificationHead`: `classifier.dense` + tanh, then `classifier.out_proj`.
const ROBERTA: Names = Names {
    backbone: "roberta",
    pooler: "classifier.dense",
    pooler_in_backbone: false,
    classifier: "classifier.out_proj",
    ..BERT
};

/// `DebertaV2ForSequenceClassification`: BERT's block names but for the attention's projections,
/// and the `ContextPooler` (`pooler.dense`) beside the backbone.
const DEBERTA_V2: Names = Names {
    backbone: "deberta",
    qkv: ["attention.self.query_proj", "attention.self.key_proj", "attention.self.value_proj"],
    pooler: "pooler.dense",
    pooler_in_backbone: false,
    classifier: "classifier",
    relative: Some(RelativeNames {
        embedding_projection: "embeddings.embed_proj",
        embeddings: "encoder.rel_embeddings",
        norm: "encoder.LayerNorm",
        pos_query: "attention.self.pos_query_proj",
        pos_key: "attention.self.pos_key_proj",
    }),
    ..BERT
};

impl Family {
    /// Every family, for error messages.
    pub const ALL: [Family; 5] =
        [Family::DistilBert, Family::Bert, Family::Roberta, Family::XlmRoberta, Family::DebertaV2];

    /// The family of a config.json `model_type`.
    pub fn from_model_type(model_type: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.model_type() == model_type)
    }

    /// config.json's `model_type`.
    pub fn model_type(self) -> &'static str {
        match self {
            Family::DistilBert => "distilbert",
            Family::Bert => "bert",
            Family::Roberta => "roberta",
            Family::XlmRoberta => "xlm-roberta",
            Family::DebertaV2 => "deberta-v2",
        }
    }

    /// The one `architectures` entry whose weights this forward computes.
    pub fn architecture(self) -> &'static str {
        match self {
            Family::DistilBert => "DistilBertForSequenceClassification",
            Family::Bert => "BertForSequenceClassification",
            Family::Roberta => "RobertaForSequenceClassification",
            Family::XlmRoberta => "XLMRobertaForSequenceClassification",
            Family::DebertaV2 => "DebertaV2ForSequenceClassification",
        }
    }

    pub fn names(self) -> &'static Names {
        match self {
            Family::DistilBert => &DISTILBERT,
            Family::Bert => &BERT,
            Family::Roberta | Family::XlmRoberta => &ROBERTA,
            Family::DebertaV2 => &DEBERTA_V2,
        }
    }

    /// Position id of a sequence's first token. RoBERTa and XLM-R count from `pad_token_id + 1`
    /// (transformers' `create_position_ids_from_input_ids`; padding sits last here, so the real
    /// tokens' ids are just this plus their index); the others from 0.
    pub fn first_position(self, pad_token_id: usize) -> usize {
        match self {
            Family::DistilBert | Family::Bert | Family::DebertaV2 => 0,
            Family::Roberta | Family::XlmRoberta => pad_token_id.saturating_add(1),
        }
    }

    /// Whether the model reads the tokenizer's token types (BERT: 1 for the hypothesis; DeBERTa
    /// where `type_vocab_size` > 0). The others' tokenizers hand the model none, so every token
    /// has type 0.
    pub fn reads_token_types(self, type_vocab_size: usize) -> bool {
        match self {
            Family::Bert => true,
            Family::DebertaV2 => type_vocab_size > 0,
            Family::DistilBert | Family::Roberta | Family::XlmRoberta => false,
        }
    }

    /// The activation after the dense layer on [CLS]; DeBERTa's is its config's
    /// `pooler_hidden_act` (read by [`crate::config`]), `gelu` by default.
    pub fn head_activation(self) -> Activation {
        match self {
            Family::DistilBert => Activation::Relu,
            Family::Bert | Family::Roberta | Family::XlmRoberta => Activation::Tanh,
            Family::DebertaV2 => Activation::Gelu,
        }
    }
}
