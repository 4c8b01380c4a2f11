"""Benchmark (not a test): index + sample one task on a generated 377,000-row MIMIC-shaped data set.

    .venv/bin/python benchmarks/bench_sampling.py [--rows 377000] [--task effusion-mimic]

Writes MIMIC-shaped metadata, CheXpert and split CSVs (.csv.gz, as PhysioNet ships them) into a temporary folder,
then times `read_index` + `sample_task` with `verify: none` (no image files exist). The target is <= 5 s on a
2-core machine. `write_mimic_shaped` is also the MIMIC fixture of tests/test_data_mimic.py.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

CHEXPERT = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum", "Fracture",
            "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other", "Pneumonia",
            "Pneumothorax", "Support Devices"]
VIEWS = np.array(["PA", "AP", "LATERAL", "LL", ""], dtype=object)
VIEW_SHARE = [0.26, 0.40, 0.22, 0.10, 0.02]  # roughly MIMIC's mix (many AP, many laterals, a few blanks)


def write_mimic_shaped(root: Path, n_images: int, seed: int = 0, compress: bool = True) -> dict:
    """Write mimic-cxr-2.0.0-{metadata,chexpert,split}.csv[.gz] into `root`; ~1.65 images per study, ~5.8 per patient."""
    rng = np.random.default_rng(seed)
    n_studies = max(1, int(n_images / 1.65))
    n_patients = max(1, int(n_images / 5.8))
    subjects = rng.choice(np.arange(10_000_000, 20_000_000), n_patients, replace=False).astype(str)
    study_ids = rng.choice(np.arange(50_000_000, 60_000_000), n_studies, replace=False).astype(str)
    study_subject = subjects[rng.integers(0, n_patients, n_studies)]
    image_study = np.concatenate([np.arange(n_studies), rng.integers(0, n_studies, n_images - n_studies)])
    words = rng.integers(0, 2**32, size=(n_images, 5), dtype=np.uint64)
    dicom_ids = ["-".join(f"{w:08x}" for w in row) for row in words]
    metadata = pd.DataFrame({
        "dicom_id": dicom_ids,
        "subject_id": study_subject[image_study],
        "study_id": study_ids[image_study],
        "PerformedProcedureStepDescription": "CHEST (PA AND LAT)",
        "ViewPosition": rng.choice(VIEWS, n_images, p=VIEW_SHARE),
        "Rows": 3056, "Columns": 2544,
    })
    values = np.array([1.0, 0.0, -1.0, np.nan])
    normal = rng.random(n_studies) < 0.3  # 'No Finding' studies: no finding positive, some explicitly negated
    labels = pd.DataFrame({"subject_id": study_subject, "study_id": study_ids})
    for column in CHEXPERT:
        drawn = rng.choice(values, n_studies, p=[0.2, 0.15, 0.05, 0.6])
        labels[column] = np.where(normal, np.where(rng.random(n_studies) < 0.3, 0.0, np.nan), drawn)
    labels["No Finding"] = np.where(normal, 1.0, np.nan)
    split = metadata[["dicom_id", "study_id", "subject_id"]].assign(
        split=rng.choice(np.array(["train", "validate", "test"], dtype=object), n_images, p=[0.98, 0.01, 0.01]))
    suffix = ".csv.gz" if compress else ".csv"
    for name, frame in (("metadata", metadata), ("chexpert", labels), ("split", split)):
        frame.to_csv(root / f"mimic-cxr-2.0.0-{name}{suffix}", index=False)
    return {"images": n_images, "studies": n_studies, "patients": n_patients}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=377_000)
    parser.add_argument("--task", default="effusion-mimic")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from registry.cards import load_registry
    from runner.data import read_index
    from runner.sample.sampler import sample_task

    reg = load_registry()
    task = reg.tasks[args.task].data
    dataset = reg.datasets[task["dataset"]].data
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        started = time.perf_counter()
        shape = write_mimic_shaped(root, args.rows)
        print(f"generated {shape} in {time.perf_counter() - started:.1f} s (not timed)")
        timings = []
        for _ in range(args.repeat):
            started, cpu = time.perf_counter(), time.process_time()
            index = read_index(dataset, root, [task["label"]["id"]])
            indexed = time.perf_counter()
            result = sample_task(task, dataset, root, verify="none", index=index)
            done = time.perf_counter()
            timings.append((indexed - started, done - indexed, done - started, time.process_time() - cpu))
        best = min(timings, key=lambda t: t[2])
        print(f"{args.task}: {len(index.frame):,} rows indexed in {best[0]:.2f} s, sampled "
              f"{int((result.frame['label'] == 1).sum())}/{int((result.frame['label'] == 0).sum())} in {best[1]:.2f} s; "
              f"total {best[2]:.2f} s wall, {best[3]:.2f} s CPU (best of {args.repeat}; all: "
              f"{', '.join(f'{t[2]:.2f}' for t in timings)})")


if __name__ == "__main__":
    main()
