"""Equivalence check of MedImageInsight's text tower port (runner/encoders/unicl_text.py) against the medimageinsights
0.1.1 package's own code: its LangEncoder Transformer + UniCLModel.encode_text and its shipped CLIP tokenizer files, on
the same random weights (a small config, and the real 16 x 1024 one). Not a test: the package is not a dependency.

    python3 -m venv /tmp/venv-mii && echo $SHARED_SITE_PACKAGES > /tmp/venv-mii/lib/python3.11/site-packages/s.pth
    /tmp/venv-mii/bin/pip install fvcore yacs mup einops        # what the package imports besides torch/transformers
    pip download medimageinsights==0.1.1 --no-deps -d /tmp/mii && tar xzf /tmp/mii/*.tar.gz -C /tmp/mii
    cd /tmp/mii/medimageinsights-0.1.1/MedImageInsights && MII=/tmp/mii/medimageinsights-0.1.1 \
        /tmp/venv-mii/bin/python PATH/TO/benchmarks/check_unicl_text.py

Last run (2-core dev box): tokenizer ids and masks equal; max |diff| 0 for both configs.
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, os.environ.get("MII", "/tmp/mii/medimageinsights-0.1.1"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from MedImageInsights.LangEncoder import build_tokenizer
from MedImageInsights.LangEncoder.transformer import Transformer as PackageTransformer

from runner.encoders.unicl_text import Transformer, UniCLTextConfig, encode_text

tok_dir = "v20240927/language_model/clip_tokenizer_v4162"
pkg_tok = build_tokenizer({"TOKENIZER": "clip", "PRETRAINED_TOKENIZER": tok_dir})
base = os.path.join(os.environ.get("MII", "/tmp/mii/medimageinsights-0.1.1"), "MedImageInsights", tok_dir)
from pathlib import Path

from runner.encoders.text_towers import Tokenizer

_t = Tokenizer({"id": "x", "text": {"tokenizer": "clip-bpe", "context_length": 77}}, [Path(base) / "vocab.json", Path(base) / "merges.txt"])
mine_tok = _t._hf
prompts = ["pleural effusion", "no pleural effusion", "Blunting of the costophrenic angle, small left effusion."]
a = pkg_tok(prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
b = mine_tok(prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["attention_mask"], b["attention_mask"]), "tokens"
# open_clip's shipped BPE gives the same ids up to the padding id (0 there, end-of-text here)
from open_clip.tokenizer import SimpleTokenizer

oc = SimpleTokenizer(context_length=77)(prompts)
assert torch.equal(oc[a["attention_mask"] == 1], a["input_ids"][a["attention_mask"] == 1]), "open_clip BPE"
print("tokenizer: package == CLIPTokenizer on its files (ids, mask); open_clip BPE == same ids on the tokens")
for width, layers, heads in ((64, 2, 4), (1024, 16, 16)):
    torch.manual_seed(0)
    pkg = PackageTransformer(context_length=77, vocab_size=pkg_tok.vocab_size, width=width, layers=layers, heads=heads,
                             autogressive=False).eval()
    mine = Transformer(UniCLTextConfig(77, pkg_tok.vocab_size, width, layers, heads, False)).eval()
    missing = mine.load_state_dict(pkg.state_dict(), strict=True)
    proj = torch.randn(width, 1024)
    with torch.no_grad():
        x = pkg(**a)["last_hidden_state"]
        x = x[torch.arange(x.size(0)), a["input_ids"].argmax(dim=-1)] @ proj
        ref = x / x.norm(dim=-1, keepdim=True)
        got = encode_text(mine, proj, b["input_ids"], b["attention_mask"])
    print(f"width {width} layers {layers}: state dict keys load strictly; max |diff| {float((ref - got).abs().max()):.3g}")
    assert torch.allclose(ref, got, atol=1e-5)
print("OK")
