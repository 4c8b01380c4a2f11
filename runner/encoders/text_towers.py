"""Text towers for zero-shot tasks: the tokenizers an encoder card's `text` block names, and the tokenized prompts.

An encoder card with a `text` block has a text tower in its image embeddings' space (runner.task_types.zero_shot):

    text:
      tokenizer: clip-bpe | wordpiece
      files: [vocab.txt]            # tokenizer files, found like weight files (--weights-dir, $<local_dir_env>, ...)
      context_length: 77
      model: {...}                  # the tower's architecture, adapter-specific

* clip-bpe: CLIP's byte-pair encoding. Without `files`, open_clip's SimpleTokenizer and the merges the open_clip wheel
  ships (bpe_simple_vocab_16e6.txt.gz): CLIP's own tokenizer, offline. With `files: [vocab.json, merges.txt]`,
  transformers' CLIPTokenizer on them (MedImageInsight's clip_tokenizer_v4162: pad = end of text, as its package pads).
* wordpiece: a BERT WordPiece vocabulary (vocab.txt), lower-cased (transformers' BertTokenizerFast): BiomedCLIP's
  BiomedBERT, and ELIXR-B's text side (TF Hub's bert_en_uncased_preprocess is WordPiece on the same kind of vocab.txt).

A tokenizer file that is not here stops the run with one line naming the file and how to get it. Adapters call
`tokenize(prompts)` -> TokenizedPrompts (ids and the attention mask, padded to the context length).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runner.encoders.base import EncoderError
from runner.encoders.weights import candidate_dirs


@dataclass(frozen=True)
class TokenizedPrompts:
    ids: np.ndarray  # (n, context_length) int64
    mask: np.ndarray  # (n, context_length) int64: 1 = a token, 0 = padding


class TokenizerFileMissing(EncoderError):
    """A tokenizer file of the card's `text.files` that is not on disk; str() names it."""


def text_block(card: dict) -> dict:
    """The card's `text` block ({} when it declares no text tower)."""
    return dict(card.get("text") or {})


def find_tokenizer_files(card: dict, weights_root: Path | None, weights_dir: Path | None) -> list[Path]:
    """The card's `text.files` on disk: beside the weights (their resolved folder), else where weight files are looked
    for (--weights-dir, $<local_dir_env>, $CXR_WEIGHTS_DIR/<id>); a missing file is one TokenizerFileMissing line."""
    text = text_block(card)
    roots = ([weights_root] if weights_root is not None else []) + [d for _, d in candidate_dirs(card, weights_dir)]
    found = []
    for name in text.get("files") or []:
        hit = next((root / name for root in roots if (root / name).is_file()), None)
        if hit is None:
            where = ", ".join(str(r) for r in roots) or "no folder given (--weights-dir DIR)"
            how = text.get("how_to_get") or "put it beside the weights (--weights-dir DIR)"
            raise TokenizerFileMissing(f"encoder {card['id']!r}: tokenizer file {name} not found (looked in {where}); "
                                       f"{how}")
        found.append(hit)
    return found


class Tokenizer:
    """The card's tokenizer: `tokenize(prompts) -> TokenizedPrompts`, padded/truncated to the context length."""

    def __init__(self, card: dict, files: list[Path]):
        text = text_block(card)
        self.kind = text.get("tokenizer")
        self.context_length = int(text.get("context_length") or 77)
        self.files = files
        if self.kind == "clip-bpe" and not files:
            from open_clip.tokenizer import SimpleTokenizer

            self._simple = SimpleTokenizer(context_length=self.context_length)
            self._hf = None
        elif self.kind == "clip-bpe":
            from transformers import CLIPTokenizer

            by_name = {f.name: f for f in files}
            if not {"vocab.json", "merges.txt"} <= set(by_name) or \
                    by_name["vocab.json"].parent != by_name["merges.txt"].parent:
                raise EncoderError(f"encoder {card['id']!r}: a clip-bpe tokenizer from files needs vocab.json and "
                                   f"merges.txt in one folder; the card names {', '.join(map(str, files))}")
            # from_pretrained on the folder: transformers 5 mis-reads the files given to the constructor
            self._hf = CLIPTokenizer.from_pretrained(str(by_name["vocab.json"].parent), local_files_only=True)
            self._hf.pad_token = "<|endoftext|>"  # MedImageInsight's clip_tokenizer_v4162 pads with end of text
        elif self.kind == "wordpiece":
            from transformers import BertTokenizerFast

            vocab = next((f for f in files if f.name == "vocab.txt"), None)
            if vocab is None:
                raise EncoderError(f"encoder {card['id']!r}: a wordpiece tokenizer needs vocab.txt in text.files")
            self._hf = BertTokenizerFast.from_pretrained(str(vocab.parent), local_files_only=True,
                                                         do_lower_case=bool(text.get("lowercase", True)))
        else:
            raise EncoderError(f"encoder {card['id']!r}: unknown text.tokenizer {self.kind!r}")

    @property
    def sep_id(self) -> int | None:
        """The separator token's id (WordPiece [SEP]); None for CLIP BPE."""
        return None if self._hf is None else self._hf.sep_token_id

    def tokenize(self, prompts: list[str]) -> TokenizedPrompts:
        if self._hf is None:
            ids = self._simple(list(prompts)).numpy().astype(np.int64)
            return TokenizedPrompts(ids, (ids != 0).astype(np.int64))
        out = self._hf(list(prompts), padding="max_length", truncation=True, max_length=self.context_length,
                       return_tensors="np")
        return TokenizedPrompts(out["input_ids"].astype(np.int64), out["attention_mask"].astype(np.int64))
