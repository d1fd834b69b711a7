"""Build the two small tokenizers the encoding tests use, from the built-in fact set's prompts:

- ``metaspace/``: SentencePiece-style (Metaspace, prepending a word marker to every text, as
  the Llama 2 and Mistral tokenizers do), adding a BOS token ``<s>``: a text that starts with a
  space (a target after its prompt) gets a marker piece of its own, and a blank line merges
  with the word before and after it.
- ``bos-bytelevel/``: byte-level BPE (as GPT-2, Llama 3 and SmolLM2 tokenizers are), adding a
  BOS token.

Rerun with ``python tests/data/tokenizers/build.py`` (deterministic given the fact set)."""

from pathlib import Path

from tokenizers import (Tokenizer, decoders, models, normalizers, pre_tokenizers, processors,
                        trainers)
from transformers import PreTrainedTokenizerFast

from knowshift.core.schema import format_exemplars
from knowshift.study.facts import load_facts

HERE = Path(__file__).parent
VOCAB = 1200


def corpus() -> list[str]:
    facts = load_facts("offline").sort_values("id")
    texts = []
    for _, group in facts.groupby("relation"):
        rows = group.head(400)
        texts += [format_exemplars(rows["question"][i:i + 5], rows["answer"][i:i + 5])
                  for i in range(0, len(rows), 5)]
    return texts


def save(tok: Tokenizer, folder: str, bos: str, eos: str, unk: str | None) -> None:
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos,
                                   unk_token=unk)
    fast.save_pretrained(HERE / folder)


def metaspace(texts: list[str]) -> None:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    # the legacy Llama / Mistral scheme: a marker before every text, spaces as markers
    tok.normalizer = normalizers.Prepend("\u2581")
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="never",
                                                 split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    save(tok, "metaspace", "<s>", "</s>", "<unk>")


def bytelevel(texts: list[str]) -> None:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bos = tok.token_to_id("<|endoftext|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|endoftext|> $A", pair="<|endoftext|> $A <|endoftext|> $B",
        special_tokens=[("<|endoftext|>", bos)])
    save(tok, "bos-bytelevel", "<|endoftext|>", "<|endoftext|>", None)


if __name__ == "__main__":
    texts = corpus()
    metaspace(texts)
    bytelevel(texts)
