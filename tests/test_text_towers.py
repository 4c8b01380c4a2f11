"""Text towers for zero-shot tasks: the real architectures with random or test-built weights, the real tokenizers
(CLIP's BPE as open_clip ships it; BERT WordPiece and CLIP BPE read from files by transformers), and a missing tokenizer
file as one line naming it. ELIXR-B's text side is tested with the CXR Foundation adapter (test_encoders_cxr_foundation)."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from registry.cards import load_registry
from runner.encoders import EncoderError, load_encoder

REG = load_registry()
PROMPTS = ["pleural effusion", "no pleural effusion", "Blunting of the costophrenic angle."]


def _unit(x):
    return np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


def test_clip_random_embeds_prompts_with_clips_own_tokenizer_in_the_image_space():
    from open_clip.tokenizer import SimpleTokenizer

    encoder = load_encoder(REG.encoders["clip-random"].data, device="cpu")
    text = encoder.embed_text(PROMPTS)
    image = encoder.embed(np.random.default_rng(0).random((2, 3, 224, 224)).astype(np.float32))
    assert text.shape == (3, 512) == (3, image.shape[1]) and np.isfinite(text).all()
    assert not np.allclose(text[0], text[1])  # the tokens reach the tower
    np.testing.assert_array_equal(load_encoder(REG.encoders["clip-random"].data, device="cpu").embed_text(PROMPTS), text)
    ids = encoder._tokenizer.tokenize(PROMPTS).ids
    np.testing.assert_array_equal(ids, SimpleTokenizer(context_length=77)(PROMPTS).numpy())


def _biomedclip_card(small: bool = True) -> dict:
    card = copy.deepcopy(REG.encoders["biomedclip-text-random"].data)
    if small:  # the same classes (timm ViT, open_clip HFTextEncoder on a BERT config), smaller for speed
        card["model"]["model_cfg"]["vision_cfg"] = {"timm_model_name": "vit_tiny_patch16_224",
                                                    "timm_model_pretrained": False, "timm_pool": "",
                                                    "timm_proj": "linear", "image_size": 224}
        card["text"]["model"]["hf_config"].update(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                                  intermediate_size=128)
    return card


def test_biomedclip_text_tower_reads_a_wordpiece_vocabulary_and_says_when_it_is_missing(tmp_path):
    card = _biomedclip_card()
    encoder = load_encoder(card, device="cpu")
    with pytest.raises(EncoderError, match="tokenizer file BiomedNLP-BiomedBERT-base-uncased-abstract/vocab.txt") \
            as caught:
        encoder.embed_text(PROMPTS)
    assert "\n" not in str(caught.value)
    folder = tmp_path / "BiomedNLP-BiomedBERT-base-uncased-abstract"
    folder.mkdir()
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "pleural", "effusion", "no", "##s", "angle"]
    (folder / "vocab.txt").write_text("".join(word + "\n" for word in words))
    encoder = load_encoder(card, device="cpu", weights_dir=tmp_path)
    text = encoder.embed_text(["Pleural effusions", "no effusion"])
    assert text.shape == (2, 512) and not np.allclose(text[0], text[1])
    tokens = encoder._tokenizer.tokenize(["Pleural effusions"])
    assert tokens.ids[0, :5].tolist() == [2, 5, 6, 8, 3] and tokens.mask[0].sum() == 5  # lower-cased WordPiece


def _clip_bpe_files(folder: Path) -> Path:
    """vocab.json and merges.txt written from the BPE merges open_clip ships, as CLIP builds its vocabulary (bytes,
    bytes + </w>, the merges, the two special tokens): a test-built copy of CLIP's tokenizer files."""
    from open_clip.tokenizer import SimpleTokenizer, default_bpe

    folder.mkdir(parents=True, exist_ok=True)
    simple = SimpleTokenizer()
    names = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}  # the special tokens' HF names
    (folder / "vocab.json").write_text(json.dumps({names.get(k, k): v for k, v in simple.encoder.items()}))
    with gzip.open(default_bpe(), "rt", encoding="utf-8") as handle:
        merges = handle.read().split("\n")[1:49152 - 256 - 2 + 1]
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return folder


def test_medimageinsight_text_tower_is_the_unicl_transformer_on_clip_bpe(tmp_path):
    from open_clip.tokenizer import SimpleTokenizer

    card = copy.deepcopy(REG.encoders["medimageinsight-text-random"].data)
    card["model"]["davit"] = {"embed_dims": [16, 32, 64, 128], "depths": [1, 1, 2, 1], "num_heads": [2, 4, 8, 16],
                              "num_groups": [2, 4, 8, 16], "window_size": 12}
    card["text"]["model"].update(width=64, layers=2, heads=4)
    encoder = load_encoder(card, device="cpu")
    with pytest.raises(EncoderError, match="tokenizer file 2024.09.27/language_model/clip_tokenizer_4.16.2/vocab.json"):
        encoder.embed_text(PROMPTS)
    _clip_bpe_files(tmp_path / "2024.09.27" / "language_model" / "clip_tokenizer_4.16.2")
    encoder = load_encoder(card, device="cpu", weights_dir=tmp_path)
    text = encoder.embed_text(PROMPTS)
    assert text.shape == (3, 1024) and _unit(text)
    tokens = encoder._tokenizer.tokenize(PROMPTS)
    reference = SimpleTokenizer(context_length=77)(PROMPTS).numpy()
    np.testing.assert_array_equal(tokens.ids[tokens.mask == 1], reference[reference != 0])  # CLIP's ids
    assert (tokens.ids[tokens.mask == 0] == 49407).all()  # padded with end of text, as the package pads


def test_medimageinsight_checkpoint_text_keys_load_into_the_text_tower(tmp_path):
    from safetensors.torch import save_file

    from runner.encoders.davit import DaViTConfig
    from runner.encoders.medimageinsight import MedImageInsightTower, checkpoint_to_tower_keys
    from runner.encoders.unicl_text import UniCLTextConfig, encode_text

    small = {"embed_dims": [16, 32, 64, 128], "depths": [1, 1, 2, 1], "num_heads": [2, 4, 8, 16],
             "num_groups": [2, 4, 8, 16], "window_size": 12}
    text_cfg = {"width": 64, "layers": 2, "heads": 4}
    torch.manual_seed(3)
    source = MedImageInsightTower(DaViTConfig.from_dict(small), 1024, UniCLTextConfig.from_dict(text_cfg)).eval()
    legacy = {}
    for key, value in source.state_dict().items():  # the old names the package's _convert_old_weights maps
        key = "visual." + key[len("image_encoder."):] if key.startswith("image_encoder.") else key
        key = "text." + key[len("lang_encoder."):] if key.startswith("lang_encoder.") else key
        legacy[{"image_projection": "vision_projection", "lang_projection": "text_projection"}.get(key, key)] = value
    assert set(checkpoint_to_tower_keys(legacy, with_text=True)) == set(source.state_dict())
    assert not any(k.startswith("lang_") for k in checkpoint_to_tower_keys(legacy))  # image-only cards drop them
    card = copy.deepcopy(REG.encoders["medimageinsight-text"].data)
    for pins in ("sha256", "sizes"):  # small random towers saved under the real file name: its pins do not apply
        card["weights"].pop(pins, None)
    card["model"]["davit"], card["preprocess"]["size"] = small, 96
    card["text"]["model"].update(text_cfg)
    weights = tmp_path / card["weights"]["files"][0]
    weights.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in legacy.items()}, str(weights))
    _clip_bpe_files(tmp_path / "2024.09.27" / "language_model" / "clip_tokenizer_4.16.2")
    encoder = load_encoder(card, device="cpu", weights_dir=tmp_path)
    tokens = encoder.embed_text(PROMPTS)
    ids = torch.as_tensor(encoder._tokenizer.tokenize(PROMPTS).ids)
    mask = torch.as_tensor(encoder._tokenizer.tokenize(PROMPTS).mask)
    with torch.no_grad():
        expected = encode_text(source.lang_encoder, source.lang_projection, ids, mask).numpy()
    np.testing.assert_allclose(tokens, expected, atol=1e-6)
