"""A batch `runner eval` (runner.evaluate.run_evaluations: every pair's folds queued in the fit processes before any
is read, the processes started while the first embeddings load) gives, pair by pair, the bytes of `run_evaluation`
run one pair at a time with its fits in this process."""

from __future__ import annotations

import json

import pytest

import runner.classify.fit_processes as fitpool
from runner import evaluate
from tests.support import SMALL_FITS, make_registry_root, tiny_task

TWO_THREADS = "num_threads: 2, " + SMALL_FITS  # side by side in two fit processes, whatever this machine's cores
TASKS = {
    "effusion-tiny": tiny_task(TWO_THREADS),
    "edema-tiny": tiny_task(TWO_THREADS).replace("effusion", "edema").replace("Effusion", "Edema").replace("70", "60"),
}
ENCODERS = ["pixels", "random-cnn"]
PAIRS = [(task, encoder) for task in TASKS for encoder in ENCODERS]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    from registry.cards import clear_cache, load_registry

    clear_cache()
    return load_registry(make_registry_root(tmp_path_factory.mktemp("reg"), TASKS))


def options(cache):
    return evaluate.EvalOptions(device="cpu", workers=0, cache_dir=cache, progress=False)


def same_numbers(result: dict) -> dict:
    """What a run computes (timings and the machine's facts left out)."""
    return {key: result[key] for key in ("metrics", "analyses", "predictions_sha256", "inputs_sha256", "exclusions")
            if key in result}


def test_a_batch_gives_each_pair_the_bytes_of_a_run_on_its_own(registry, tmp_path, demo_data_dir, monkeypatch):
    cache = tmp_path / "cache"
    fitpool._close_pool()
    one_by_one = {}
    for task, encoder in PAIRS:  # 5 small folds each: below MIN_POOL_CELLS, so fitted here, two threads per fit
        run = evaluate.run_evaluation(task, encoder, demo_data_dir, tmp_path / "alone", options(cache), registry)
        one_by_one[task, encoder] = run
    assert not fitpool._POOL

    events = []
    submit, finish, embed = evaluate.submit_many, evaluate._finish, evaluate.embed_task

    def submitted(designs, card):
        events.append("send")
        return submit(designs, card)

    def finished(prepared):
        events.append("read")
        return finish(prepared)

    def embedded(*args, **kwargs):
        events.append("embed, fit processes " + ("up" if 2 in fitpool._POOL else "not started"))
        return embed(*args, **kwargs)

    monkeypatch.setattr(evaluate, "submit_many", submitted)
    monkeypatch.setattr(evaluate, "_finish", finished)
    monkeypatch.setattr(evaluate, "embed_task", embedded)
    monkeypatch.setattr(fitpool, "MIN_POOL_CELLS", 1_500_000)  # one pair's ~0.3-0.6 M cells would not repay a start
    try:
        batch = list(evaluate.run_evaluations(PAIRS, demo_data_dir, tmp_path / "batch", options(cache), registry))
        assert list(fitpool._POOL) == [2]  # the folds were fitted side by side in two fit processes
    finally:
        fitpool._close_pool()

    # the processes start before the first embeddings load; every pair's folds are sent before any is read
    assert events[0] == "embed, fit processes up"
    assert events == [events[0], "send", *["embed, fit processes up", "send"] * 3, *["read"] * 4]
    assert [(done.task_id, done.encoder_id) for done in batch] == PAIRS
    for done in batch:
        alone = one_by_one[done.task_id, done.encoder_id]
        assert isinstance(done.outcome, evaluate.EvalRun), done.outcome
        assert same_numbers(done.outcome.result) == same_numbers(alone.result)
        assert json.dumps(done.outcome.result["metrics"]) == json.dumps(alone.result["metrics"])
        assert done.outcome.result_path.with_name("predictions.parquet").read_bytes() == \
            alone.result_path.with_name("predictions.parquet").read_bytes()


def test_a_failing_pair_is_its_own_outcome_and_the_others_run(registry, tmp_path, demo_data_dir, monkeypatch):
    from registry.errors import RegistryError

    def no_fits(designs, card):
        if designs[0].embeddings.shape[1] == 1024:  # the pixels encoder's pairs
            raise RegistryError("made-up classifier failure")
        return submit(designs, card)

    submit = evaluate.submit_many
    monkeypatch.setattr(evaluate, "submit_many", no_fits)
    pairs = [("effusion-tiny", "no-such-encoder"), *PAIRS[:2]]
    batch = list(evaluate.run_evaluations(pairs, demo_data_dir, tmp_path / "out", options(tmp_path / "cache"),
                                          registry))
    fitpool._close_pool()
    assert [(d.task_id, d.encoder_id) for d in batch] == pairs
    unknown, pixels, cnn = (d.outcome for d in batch)
    assert isinstance(unknown, evaluate.EvaluationError) and "no-such-encoder" in str(unknown)
    assert isinstance(pixels, evaluate.EvaluationError)
    assert str(pixels) == "effusion-tiny x pixels: made-up classifier failure"
    assert isinstance(cnn, evaluate.EvalRun) and cnn.result["metrics"]["auroc"]["mean"] is not None
