"""Typed, frozen specs of every card block, built once from the resolved card (defaults already filled in).

The card loader (`registry.cards.load_card`) fills every absent field that has a schema `default`, so the specs below
carry no defaults of their own: the JSON Schema is the one place a default is stated, and `tests/test_specs.py`
checks that every documented default reaches its spec. Downstream stages take these specs, never card dicts.

    spec = task_spec(card)            # TaskSpec from a registry Card (or its resolved dict)
    spec.sampling.positives, spec.split.folds, spec.classifier.params, spec.analyses.clustering.n_init
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from registry.schemas import fill_defaults


def _frozen(mapping) -> MappingProxyType:
    """A read-only view of a card mapping (model options, LightGBM params), deep for nested mappings."""
    return MappingProxyType({k: _frozen(v) if isinstance(v, dict) else v for k, v in (mapping or {}).items()})


def _data(card) -> dict:
    return card.data if hasattr(card, "data") else card


# ---------------------------------------------------------------------------------------------- task blocks


@dataclass(frozen=True)
class LabelSpec:
    id: str  # the dataset index column (effusion, ...); every result and table keys on it
    name: str  # display name


@dataclass(frozen=True)
class LabelPolicySpec:
    positive: tuple[float, ...]
    negative: tuple[float, ...]
    uncertain: str  # exclude | positive | negative
    blank: str  # exclude | negative
    negative_requires: str | None


@dataclass(frozen=True)
class MatchSpec:
    strata: tuple[str, ...]  # view | sex | age_band
    age_bands: tuple[float, ...]


@dataclass(frozen=True)
class SamplingSpec:
    positives: int | None  # binary-label sampling (None: images or patients)
    negatives: int | None
    seed: int
    verify: str  # decode | header | none
    verify_workers: int
    max_excluded_fraction: float  # the exclusion budget after sampling
    match: MatchSpec | None  # matched negatives (view-matched controls); None: drawn from the whole pool
    images: int | None = None  # multi-label, demographic: that many images from every candidate
    patients: int | None = None  # reidentification: that many patients with two or more images
    images_per_patient: int | None = None  # reidentification: at most this many of each (None: all)

    @property
    def mode(self) -> str:
        """binary | images | patients: which sampler draws the task (runner.sample)."""
        return "images" if self.images is not None else "patients" if self.patients is not None else "binary"


@dataclass(frozen=True)
class SplitSpec:
    method: str  # stratified-group-kfold | group-holdout
    seed: int
    folds: int | None  # k-fold only
    test_fraction: float | None  # holdout only

    def as_dict(self) -> dict:
        """The card's own form (manifest.json records it)."""
        extra = {"folds": self.folds} if self.method == "stratified-group-kfold" else {"test_fraction": self.test_fraction}
        return {"method": self.method, "seed": self.seed, **extra}


@dataclass(frozen=True)
class AugmentationViewSpec:
    op: str  # rotate | brightness | contrast
    min: float
    max: float
    signed: bool


@dataclass(frozen=True)
class AugmentationsSpec:
    seed: int
    views: tuple[AugmentationViewSpec, ...]


@dataclass(frozen=True)
class EarlyStoppingSpec:
    rounds: int
    inner_fraction: float
    min_inner_rows: int


@dataclass(frozen=True)
class ClassifierSpec:
    type: str  # lightgbm | logistic | knn (classifier-defs.schema.json)
    params: MappingProxyType  # the classifier's parameters as the card names them (LightGBM's or scikit-learn's)
    early_stopping: EarlyStoppingSpec | None  # LightGBM only
    augmented_training_rows: bool
    num_threads: int  # 0 = one per core (LightGBM; the scikit-learn probes fit in the calling process: 1)
    seed: int
    standardize: bool  # logistic: z-score the features with the training rows' statistics


@dataclass(frozen=True)
class MetricsSpec:
    threshold: float
    ci: str  # t-interval | cluster-bootstrap
    confidence: float
    bootstrap_n: int
    bootstrap_seed: int
    bootstrap_min_valid_replicates: int  # fewer computable replicates and no bootstrap CI is reported


@dataclass(frozen=True)
class UmapSpec:
    enabled: bool
    n_neighbors: int
    min_dist: float


@dataclass(frozen=True)
class ClusteringSpec:
    enabled: bool
    k_min: int
    k_max: int
    n_init: int
    seed: int
    umap: UmapSpec


@dataclass(frozen=True)
class SubgroupsSpec:
    enabled: bool
    attributes: tuple[str, ...]
    age_bands: tuple[float, ...]
    min_per_class: int


@dataclass(frozen=True)
class TransferAnalysisSpec:
    enabled: bool
    targets: tuple[str, ...] | None  # None: the transfer tasks that train on this task


@dataclass(frozen=True)
class LabelEfficiencySpec:
    enabled: bool
    positives_per_class: tuple[int, ...]
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class PairedSpec:
    enabled: bool
    alpha: float
    test: str  # patient-bootstrap | fold-t | corrected-fold-t (runner.analysis.paired TIE_TESTS)


@dataclass(frozen=True)
class StabilitySpec:
    enabled: bool


@dataclass(frozen=True)
class AnalysesSpec:
    stability: StabilitySpec
    clustering: ClusteringSpec
    subgroups: SubgroupsSpec
    transfer: TransferAnalysisSpec
    label_efficiency: LabelEfficiencySpec
    paired: PairedSpec

    NAMES = ("stability", "clustering", "subgroups", "transfer", "label_efficiency", "paired")

    def enabled(self) -> list[str]:
        """The analyses the card turns on, in the order they run."""
        return [name for name in self.NAMES if getattr(self, name).enabled]


@dataclass(frozen=True)
class TargetSpec:
    attribute: str  # sex | view | age
    age_bands: tuple[float, ...]


@dataclass(frozen=True)
class FewShotSpec:
    shots: tuple[int, ...]
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class RetrievalSpec:
    k: tuple[int, ...]


@dataclass(frozen=True)
class ClustersSpec:
    n_init: int
    seed: int


@dataclass(frozen=True)
class PromptsSpec:
    positive: tuple[str, ...]
    negative: tuple[str, ...]


@dataclass(frozen=True)
class LeaderboardSpec:
    disease: str | None
    dataset_label: str | None
    order: int


@dataclass(frozen=True)
class TaskSpec:
    id: str
    title: str
    type: str  # a task type of registry/plugins.py `task_type` (classification, transfer, multi-label, ...)
    transfer_train_task: str | None
    dataset: str
    label: LabelSpec
    label_policy: LabelPolicySpec
    views: tuple[str, ...]
    sampling: SamplingSpec
    split: SplitSpec
    augmentations: AugmentationsSpec | None
    classifier: ClassifierSpec
    metrics: MetricsSpec
    analyses: AnalysesSpec
    leaderboard: LeaderboardSpec
    benchmarks: tuple[str, ...]  # registry/benchmarks.yaml ids
    # the blocks of the other task types (None / () where the card has none)
    labels: tuple[LabelSpec, ...] = ()  # multi-label
    target: TargetSpec | None = None  # demographic, clustering by attribute
    few_shot: FewShotSpec | None = None
    retrieval: RetrievalSpec | None = None  # retrieval, reidentification
    clusters: ClustersSpec | None = None  # clustering
    prompts: MappingProxyType | None = None  # zero-shot: label id -> PromptsSpec


def task_spec(card) -> TaskSpec:
    """The TaskSpec of a resolved task card (a registry Card or its `data`)."""
    d = _data(card)
    policy, sampling, split, clf, metrics, an = (d["label_policy"], d["sampling"], d["split"], d["classifier"],
                                                 d["metrics"], d["analyses"])
    aug = d.get("augmentations")
    board = d["leaderboard"]
    return TaskSpec(
        id=d["id"], title=d["title"], type=d["type"],
        transfer_train_task=(d.get("transfer") or {}).get("train_task"),
        dataset=d["dataset"],
        label=LabelSpec(d["label"]["id"], d["label"]["name"]),
        label_policy=LabelPolicySpec(tuple(policy["positive"]), tuple(policy["negative"]), policy["uncertain"],
                                     policy["blank"], policy["negative_requires"]),
        views=tuple(d["views"]),
        sampling=SamplingSpec(sampling.get("positives"), sampling.get("negatives"), sampling["seed"], sampling["verify"],
                              sampling["verify_workers"], float(sampling["max_excluded_fraction"]),
                              None if sampling["match"] is None else MatchSpec(
                                  tuple(sampling["match"]["strata"]),
                                  tuple(float(b) for b in sampling["match"]["age_bands"])),
                              sampling.get("images"), sampling.get("patients"), sampling.get("images_per_patient")),
        split=SplitSpec(split["method"], split["seed"], split.get("folds"), split.get("test_fraction")),
        augmentations=None if aug is None else AugmentationsSpec(
            aug["seed"], tuple(AugmentationViewSpec(v["op"], float(v["min"]), float(v["max"]), v["signed"])
                               for v in aug["views"])),
        classifier=classifier_spec(clf),
        metrics=metrics_spec(metrics),
        analyses=analyses_spec(an),
        leaderboard=LeaderboardSpec(board.get("disease"), board.get("dataset_label"), board["order"]),
        benchmarks=tuple(d["benchmarks"]),
        labels=tuple(LabelSpec(x["id"], x["name"]) for x in d.get("labels") or ()),
        target=None if "target" not in d else TargetSpec(d["target"]["attribute"],
                                                         tuple(float(b) for b in d["target"]["age_bands"])),
        few_shot=None if "few_shot" not in d else FewShotSpec(tuple(d["few_shot"]["shots"]),
                                                               tuple(d["few_shot"]["seeds"])),
        retrieval=None if "retrieval" not in d else RetrievalSpec(tuple(d["retrieval"]["k"])),
        clusters=None if "clusters" not in d else ClustersSpec(d["clusters"]["n_init"], d["clusters"]["seed"]),
        prompts=None if "zero_shot" not in d else MappingProxyType({
            label: PromptsSpec(tuple(p["positive"]), tuple(p["negative"]))
            for label, p in d["zero_shot"]["prompts"].items()}),
    )


def metrics_spec(block) -> MetricsSpec:
    """The MetricsSpec of a `metrics:` block; absent fields take the schema's defaults. A MetricsSpec passes as is."""
    if isinstance(block, MetricsSpec):
        return block

    block = fill_defaults("analysis-defs", dict(block or {}), "metrics")
    return MetricsSpec(float(block["threshold"]), block["ci"], float(block["confidence"]),
                       int(block["bootstrap"]["n"]), int(block["bootstrap"]["seed"]),
                       int(block["bootstrap"]["min_valid_replicates"]))


def analyses_spec(block) -> AnalysesSpec:
    """The AnalysesSpec of an `analyses:` block; absent fields take the schema's defaults. A spec passes as is."""
    if isinstance(block, AnalysesSpec):
        return block

    an = fill_defaults("analysis-defs", dict(block or {}), "analyses")
    clustering, subgroups, efficiency = an["clustering"], an["subgroups"], an["label_efficiency"]
    return AnalysesSpec(
        stability=StabilitySpec(an["stability"]["enabled"]),
        clustering=ClusteringSpec(clustering["enabled"], clustering["k_min"], clustering["k_max"], clustering["n_init"],
                                  clustering["seed"], UmapSpec(clustering["umap"]["enabled"],
                                                               clustering["umap"]["n_neighbors"],
                                                               clustering["umap"]["min_dist"])),
        subgroups=SubgroupsSpec(subgroups["enabled"], tuple(subgroups["attributes"]),
                                tuple(float(b) for b in subgroups["age_bands"]), subgroups["min_per_class"]),
        transfer=TransferAnalysisSpec(an["transfer"]["enabled"],
                                      tuple(an["transfer"]["targets"]) if "targets" in an["transfer"] else None),
        label_efficiency=LabelEfficiencySpec(efficiency["enabled"], tuple(efficiency["positives_per_class"]),
                                             tuple(efficiency["seeds"])),
        paired=PairedSpec(an["paired"]["enabled"], an["paired"]["alpha"], an["paired"]["test"]),
    )


def classifier_spec(block) -> ClassifierSpec:
    """The ClassifierSpec of a `classifier:` block; absent fields take the schema's defaults. A spec passes as is."""
    if isinstance(block, ClassifierSpec):
        return block

    clf = fill_defaults("classifier-defs", dict(block or {"type": "lightgbm"}), "classifier")
    if clf["type"] != "lightgbm":  # the scikit-learn probes: fields LightGBM alone has are absent from their blocks
        return ClassifierSpec(clf["type"], _frozen(clf["params"]), None, clf["augmented_training_rows"], 1,
                              clf.get("seed", 0), clf.get("standardize", False))
    stopping = clf["early_stopping"]
    return ClassifierSpec(
        clf["type"], _frozen(clf["params"]),
        None if stopping is None else EarlyStoppingSpec(stopping["rounds"], stopping["inner_fraction"],
                                                             stopping["min_inner_rows"]),
        clf["augmented_training_rows"], clf["num_threads"], clf["seed"], False)


# ---------------------------------------------------------------------------------------------- encoder blocks


@dataclass(frozen=True)
class PreprocessSpec:
    size: tuple[int, int] | None
    interpolation: str
    channels: int
    bit_depth: Any  # 8 | 16 | "float"
    normalize: Any  # name or {"mean": [...], "std": [...]}

    def as_dict(self) -> dict:
        """The card's own form: what the embedding cache namespaces by and workers receive."""
        size = None if self.size is None else list(self.size)
        normalize = dict(self.normalize) if isinstance(self.normalize, MappingProxyType) else self.normalize
        return {"size": size, "interpolation": self.interpolation, "channels": self.channels,
                "bit_depth": self.bit_depth, "normalize": normalize}


@dataclass(frozen=True)
class WeightsSpec:
    hf_repo: str | None
    revision: str | None
    files: tuple[str, ...]
    local_dir_env: str | None
    sha256: MappingProxyType
    random_init: bool
    how_to_get: str | None
    sizes: MappingProxyType  # file -> bytes


@dataclass(frozen=True)
class EmbeddingSpec:
    dim: int
    pooling: str
    output: str | None
    l2_normalize: bool


@dataclass(frozen=True)
class PrecisionSpec:
    bf16: bool
    channels_last: bool


@dataclass(frozen=True)
class EncoderSpec:
    id: str
    title: str
    adapter: str
    entrypoint: str | None
    model: MappingProxyType
    weights: WeightsSpec | None
    preprocess: PreprocessSpec | None  # None: reads no pixels (the metadata baseline)
    embedding: EmbeddingSpec | None  # None: the width is set by the data set (the metadata baseline)
    precision: PrecisionSpec
    batch_size: int
    seed: int
    parameters: int | None
    control: bool
    training_datasets: tuple[str, ...] | None  # dataset ids the weights saw; None: unknown


def preprocess_spec(block: dict) -> PreprocessSpec:
    """The PreprocessSpec of a (defaults-filled) `preprocess:` block; `size` as (h, w) or None."""
    size = block["size"]
    if isinstance(size, int):
        size = (size, size)
    elif size is not None:
        size = (int(size[0]), int(size[1]))
    normalize = block["normalize"]
    return PreprocessSpec(size, block["interpolation"], block["channels"], block["bit_depth"],
                          _frozen(normalize) if isinstance(normalize, dict) else normalize)


def encoder_spec(card) -> EncoderSpec:
    """The EncoderSpec of a resolved encoder card (a registry Card or its `data`)."""
    d = _data(card)
    w = d.get("weights")
    weights = None if w is None else WeightsSpec(
        w.get("hf_repo"), w.get("revision"), tuple(w["files"]), w.get("local_dir_env"), _frozen(w["sha256"]),
        w["random_init"], w.get("how_to_get"), _frozen(w["sizes"]))
    e = d.get("embedding")
    return EncoderSpec(
        id=d["id"], title=d["title"], adapter=d["adapter"], entrypoint=d.get("entrypoint"), model=_frozen(d["model"]),
        weights=weights, preprocess=preprocess_spec(d["preprocess"]) if "preprocess" in d else None,
        embedding=None if e is None else EmbeddingSpec(int(e["dim"]), e["pooling"], e.get("output"), e["l2_normalize"]),
        precision=PrecisionSpec(d["precision"]["bf16"], d["precision"]["channels_last"]),
        batch_size=d["batch_size"], seed=d["seed"], parameters=d.get("parameters"), control=d["control"],
        training_datasets=None if d["training_datasets"] is None else tuple(d["training_datasets"]),
    )


# ---------------------------------------------------------------------------------------------- dataset card


@dataclass(frozen=True)
class SyntheticDataSpec:
    """How `runner demo` makes a synthetic data set (runner.data.synthetic.make_demo_dataset) and where under --out."""

    seed: int
    patients: int
    site: str
    image_size: int
    folder: str


@dataclass(frozen=True)
class DatasetSpec:
    """What the runner needs of a dataset card beyond its reader (which reads the card's own mapping)."""

    id: str
    kind: str
    title: str
    synthetic: bool
    root_env: str | None
    access: str
    labels: tuple[str, ...]
    synthetic_data: SyntheticDataSpec | None


def dataset_spec(card) -> DatasetSpec:
    d = _data(card)
    made = d.get("synthetic_data")
    return DatasetSpec(d["id"], d["kind"], d["title"], d["synthetic"], d.get("root_env"), d["access"],
                       tuple(d["labels"]), None if made is None else SyntheticDataSpec(
                           made["seed"], made["patients"], made["site"], made["image_size"], made["folder"]))
