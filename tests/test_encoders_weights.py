"""Weight lookup: local dirs, env vars, the hub (offline), sha256 pins, and never unpickling."""

from __future__ import annotations

import hashlib

import pytest
import torch

from runner.encoders import EncoderError, WeightsNotFoundError
from runner.encoders.weights import load_state_dict, resolve_weights


def _card(**weights):
    return {"id": "toy", "adapter": "timm", "weights": {"files": ["sub/w.safetensors"], **weights}}


def _write(root, name="sub/w.safetensors", payload=b"weights"):
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


def test_weights_dir_wins_and_names_the_missing_file(tmp_path, monkeypatch):
    monkeypatch.delenv("CXR_WEIGHTS_DIR", raising=False)
    with pytest.raises(WeightsNotFoundError, match=r"sub/w\.safetensors.*not found in") as err:
        resolve_weights(_card(hf_repo="org/repo"), tmp_path)
    assert "--weights-dir" in str(err.value) and "hf download org/repo" in str(err.value)
    _write(tmp_path)
    found = resolve_weights(_card(), tmp_path)
    assert found.path() == tmp_path / "sub/w.safetensors" and found.source == f"local:{tmp_path}"


def test_env_var_and_registry_weights_dir(tmp_path, monkeypatch):
    _write(tmp_path / "a")
    monkeypatch.setenv("TOY_DIR", str(tmp_path / "a"))
    assert resolve_weights(_card(local_dir_env="TOY_DIR")).root == tmp_path / "a"
    monkeypatch.delenv("TOY_DIR")
    _write(tmp_path / "b" / "toy")
    monkeypatch.setenv("CXR_WEIGHTS_DIR", str(tmp_path / "b"))
    assert resolve_weights(_card(local_dir_env="TOY_DIR")).root == tmp_path / "b" / "toy"


def test_offline_hub_without_cache_is_a_clear_weights_error(tmp_path, monkeypatch):
    monkeypatch.delenv("CXR_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(WeightsNotFoundError, match="HF_HUB_OFFLINE=1") as err:
        resolve_weights(_card(hf_repo="org/repo", revision="abc123"))
    assert "--revision abc123" in str(err.value)


def test_sha256_pin_mismatch_stops(tmp_path):
    path = _write(tmp_path)
    good = hashlib.sha256(path.read_bytes()).hexdigest()
    assert resolve_weights(_card(sha256={"sub/w.safetensors": good}), tmp_path)
    with pytest.raises(EncoderError, match="sha256 mismatch"):
        resolve_weights(_card(sha256={"sub/w.safetensors": "0" * 64}), tmp_path)


def test_state_dicts_load_but_pickled_models_do_not(tmp_path):
    from safetensors.torch import save_file

    state = {"w": torch.arange(4.0)}
    save_file(state, tmp_path / "a.pt")  # a safetensors file under a .pt name, as MedImageInsight ships it
    assert torch.equal(load_state_dict(tmp_path / "a.pt")["w"], state["w"])
    torch.save({"state_dict": state}, tmp_path / "b.pth")
    assert torch.equal(load_state_dict(tmp_path / "b.pth")["w"], state["w"])
    torch.save(torch.nn.Linear(2, 2), tmp_path / "c.pt")  # a pickled module: must be refused, not executed
    with pytest.raises(EncoderError, match="never unpickled"):
        load_state_dict(tmp_path / "c.pt")


def test_size_pin_mismatch_stops_before_hashing_with_one_line(tmp_path, monkeypatch):
    from runner.encoders import weights

    path = _write(tmp_path)  # 7 bytes
    assert resolve_weights(_card(sizes={"sub/w.safetensors": 7}), tmp_path)
    monkeypatch.setattr(weights, "sha256_file", lambda p: pytest.fail("hashed although the size already differs"))
    with pytest.raises(EncoderError) as err:
        resolve_weights(_card(sizes={"sub/w.safetensors": 8}, sha256={"sub/w.safetensors": "0" * 64}), tmp_path)
    assert str(err.value).startswith(f"size mismatch for {path}: the card pins 8 bytes, the file has 7 ")
    assert "\n" not in str(err.value)


def _hub_error(name):
    from runner.encoders.weights import _hub_errors

    cls = getattr(_hub_errors(), name)
    exc = cls.__new__(cls)  # the real class, without an HTTP response to build it from
    Exception.__init__(exc, f"{name} from the hub")
    return exc


@pytest.mark.parametrize(("error", "says"), [
    ("GatedRepoError", "access not granted: org/repo is a gated repo"),
    ("RepositoryNotFoundError", "access refused: org/repo is not a repo this machine's Hugging Face token can see"),
    ("RevisionNotFoundError", "revision 'abc123' does not exist in org/repo"),
    ("RemoteEntryNotFoundError", "org/repo at revision abc123 does not hold a file the card lists"),
])
def test_hub_refusals_are_named_not_reported_as_missing_files(tmp_path, monkeypatch, error, says):
    import huggingface_hub

    from runner.encoders.weights import WeightsAccessError

    monkeypatch.delenv("CXR_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def refuse(**kwargs):
        raise _hub_error(error)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    with pytest.raises(WeightsAccessError) as err:
        resolve_weights(_card(hf_repo="org/repo", revision="abc123"))
    assert says in str(err.value) and "\n" not in str(err.value)
    assert isinstance(err.value, WeightsNotFoundError)  # `--encoder all` still leaves it out as "not here"


def test_offline_or_unreachable_hub_stays_a_missing_weights_error(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.delenv("CXR_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda **kw: (_ for _ in ()).throw(_hub_error("LocalEntryNotFoundError")))
    with pytest.raises(WeightsNotFoundError, match="missing weights") as err:
        resolve_weights(_card(hf_repo="org/repo"))
    assert "access" not in str(err.value)
