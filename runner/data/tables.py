"""What every dataset reader shares: finding and reading metadata tables, reading labels, finishing the index.

All dataset facts (file names, column names, label values) come from the dataset card; this module only
knows how to apply them.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from registry.errors import RegistryError
from registry.hashing import file_sha256, recall, remember

INDEX_COLUMNS = ["image_id", "patient_id", "study_id", "path", "view"]
OPTIONAL_COLUMNS = ["sex", "age"]
METADATA_PREFIX = "meta_"  # index/manifest columns of the card's metadata_features: meta_<name>


class DataError(RegistryError):
    """A data set cannot be read as its card says. str() is the one-line human message."""

    exit_code = 2


def leaves_root(path) -> bool:
    """True for a path that is absolute (POSIX or Windows drive), contains '..', or is blank: not under the data root."""
    from pathlib import PurePosixPath

    if path is None or (isinstance(path, float) and math.isnan(path)):
        return True
    text = str(path).strip().replace("\\", "/")
    return not text or PurePosixPath(text).is_absolute() or ".." in PurePosixPath(text).parts or text[1:2] == ":"


OUTSIDE_ROOT = "outside-data-root"  # exclusion reason: the file is reached through a link that leaves the root


class RootGuard:
    """Whether an image path under the data root leads outside it through a symbolic link (the file itself, or a
    folder on its way). The sampler and the embedding stage exclude such a file (reason OUTSIDE_ROOT): a run reads
    only what lies under the data root it names. One lstat per file; each folder is resolved once."""

    def __init__(self, root: str | Path):
        self.root = str(root)
        self.real = os.path.realpath(root)
        self._folders: dict[str, bool] = {}

    def _inside(self, real: str) -> bool:
        return real == self.real or real.startswith(self.real.rstrip(os.sep) + os.sep)

    def outside(self, rel_path: str) -> bool:
        path = os.path.join(self.root, rel_path)
        folder = os.path.dirname(path)
        if folder not in self._folders:
            self._folders[folder] = self._inside(os.path.realpath(folder))
        if not self._folders[folder]:
            return True
        return os.path.islink(path) and not self._inside(os.path.realpath(path))


def paths_leaving_root(paths: pd.Series) -> pd.Series:
    """`leaves_root` of every path, vectorised: only paths that could leave the root (a leading '/' or drive, a '..'
    part, blank) are checked one by one (per-row PurePosixPath takes seconds on 223k rows)."""
    text = paths.astype("string").str.strip().str.replace("\\", "/", regex=False)
    maybe = (text.isna() | (text == "") | text.str.startswith("/") | (text.str[1:2] == ":")
             | text.str.contains(r"(?:^|/)\.\.(?:/|$)", regex=True)).fillna(True).astype(bool)
    out = pd.Series(False, index=paths.index)
    out[maybe] = paths[maybe].map(leaves_root)
    return out


def access_hint(card: dict) -> str:
    return f"How to get the data set: {card.get('access', 'see its dataset card')}"


def _variants(name: str) -> list[str]:
    """`X.csv` also matches `X.csv.gz`, and the reverse: both are common copies of the same table."""
    if name.endswith(".csv"):
        return [name, name + ".gz"]
    if name.endswith(".csv.gz"):
        return [name, name[: -len(".gz")]]
    return [name]


def _locate(folder: Path, name: str) -> Path | None:
    found = next((folder / v for v in _variants(name) if (folder / v).is_file()), None)
    if found is not None and not found.resolve().is_relative_to(folder.resolve()):
        raise DataError(f"{found} is a link to a file outside {folder}: a metadata table must lie inside the data "
                        "root (or the package that ships it)")
    return found


def package_folder(card: dict, table: str) -> Path | None:
    fallback = card.get("fallback_package")
    if not fallback or table not in fallback.get("tables", []):
        return None
    spec = importlib.util.find_spec(fallback["name"])
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / fallback["folder"]


def read_csv(path: Path, usecols: list[str] | None = None, optional: list[str] = ()) -> pd.DataFrame:
    """Every column as text (ids keep their leading zeros; labels are parsed by `label_column`); blank -> NaN.

    `optional` columns are read too when the table has them (metadata features: their absence costs only the
    `metadata` baseline, which then says the feature is not available)."""
    try:
        header = list(pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0])
        # pandas renames a repeated column (effusion, effusion.1) without a word: which one is the label?
        wanted = set(header) if usecols is None else {*usecols, *optional}
        repeated = [c for c in dict.fromkeys(header) if header.count(c) > 1 and c in wanted]
        if repeated:
            raise DataError(f"column {str(repeated[0])[:80]!r} appears {header.count(repeated[0])} times in {path}: "
                            "which one to read is ambiguous; rename or remove the extra column(s)")
        if usecols is not None:
            missing = [c for c in usecols if c not in header]
            if missing:
                raise DataError(f"column {missing[0]!r} not found in {path} (it has: {', '.join(header)})")
            usecols = list(dict.fromkeys([*usecols, *(c for c in optional if c in header)]))
        try:
            return pd.read_csv(path, dtype=str, usecols=usecols, engine="pyarrow")
        except (pa.ArrowInvalid, pd.errors.ParserError) as exc:
            if "newlines_in_values" not in str(exc):
                raise
            # quoted cells spanning lines (PadChest's reports): the C parser reads those
            return pd.read_csv(path, dtype=str, usecols=usecols, engine="c")
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {without_content(exc)}") from None


def without_content(exc: BaseException) -> str:
    """A parser's message without the file content it quotes (pyarrow's "Expected 6 columns, got 1: <the row>"):
    a refused file's bytes are never echoed (it may be a secret a card or a symlink pointed at)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = re.sub(r"(got \d+)\s*:.*", r"\1", text)
    text = re.sub(r"(row|line|value)\s*[:=]\s*['\"]?.*", r"\1 (content not shown)", text, flags=re.IGNORECASE)
    return text[:200]


# Tables (and what is computed from them alone) already read by this process, by the bytes of their files: a dataset's
# table is read once when several tasks, or cards over the same files (chexpert, chexpert-findings), read it. Only in
# memory, never across processes; least recently used first, bounded. pandas' copy-on-write keeps a caller's changes
# to its own copy.
_REMEMBERED: OrderedDict[tuple, object] = OrderedDict()
REMEMBERED_MAX = 8


def content_key(paths: list) -> tuple:
    """(resolved path, sha256 of the bytes) of each file: what a remembered table is keyed by."""
    key = []
    for path in paths:
        try:
            key.append((str(Path(path).resolve()), file_sha256(path)))
        except OSError as exc:  # as read_csv says it
            raise DataError(f"cannot read {path}: {without_content(exc)}") from None
    return tuple(key)


def remembered(key: tuple, make):
    """make(), or what it gave for the same key earlier in this process (an exception is not remembered)."""
    if key in _REMEMBERED:
        return recall(_REMEMBERED, key)
    return remember(_REMEMBERED, key, make(), REMEMBERED_MAX)


def find_table(card: dict, root: Path, table: str, usecols: list[str] | None = None,
               optional: list[str] = ()) -> tuple[pd.DataFrame, list[str]]:
    """Read the first alternative of `card.files[table]` present under `root` (else in the fallback package).

    Returns the table (alternatives made of several files are concatenated) and the files read.
    """
    alternatives = card.get("files", {}).get(table)
    if not alternatives:
        raise DataError(f"dataset card {card['id']!r} declares no {table!r} table")
    paths = locate_table(card, root, table)
    if paths is not None:
        try:
            key = ("table", content_key(paths), None if usecols is None else tuple(usecols), tuple(optional))
            frame = remembered(key, lambda: pd.concat([read_csv(p, usecols, optional) for p in paths],
                                                      ignore_index=True))
        except DataError as exc:
            raise DataError(f"{card['id']}: {exc}. {access_hint(card)}") from None
        return frame, [str(p) for p in paths]
    wanted = " or ".join(" + ".join([a] if isinstance(a, str) else a) for a in alternatives)
    raise DataError(f"{card['id']}: {table} table not found: looked for {wanted} in {root}. {access_hint(card)}")


def locate_table(card: dict, root: Path, table: str) -> list[Path] | None:
    """The files of the first alternative of `card.files[table]` present under `root`, else in the fallback package;
    None when neither has one (nothing is read: `runner doctor` asks this too)."""
    folders = [root] + [f for f in [package_folder(card, table)] if f is not None]
    for folder in folders:
        for alternative in card.get("files", {}).get(table) or []:
            names = [alternative] if isinstance(alternative, str) else alternative
            paths = [_locate(folder, n) for n in names]
            if all(paths):
                return paths
    return None


def table_columns(card: dict, table: str, label_ids: list[str], extra: list[str] = ()) -> list[str]:
    """The columns of one table that the index needs (reading only those keeps a 377k-row CSV fast)."""
    wanted = list(extra)
    if table == "metadata":
        wanted += list(card["columns"].values())
    wanted += [card["labels"][x]["column"] for x in label_ids if card["labels"][x].get("table", "metadata") == table]
    return list(dict.fromkeys(wanted))


def feature_columns(card: dict, table: str = "metadata") -> list[str]:
    """Source columns of the card's `metadata_features` that live in `table` (read when present, see read_csv)."""
    return [f["column"] for f in card.get("metadata_features") or [] if f.get("table", "metadata") == table]


def add_metadata_features(index: pd.DataFrame, tables: dict[str, pd.DataFrame], card: dict) -> None:
    """One `meta_<name>` column per declared metadata feature whose source column was read (rows aligned with
    `index`): categorical as stripped text (blank -> None), numeric as float (unparseable or non-finite, e.g. "inf"
    or 1e999 -> NaN: the classifier treats NaN as missing but refuses Infinity). A feature whose
    column is absent gets no column; the `metadata` baseline names it as not available."""
    for feature in card.get("metadata_features") or []:
        table = tables.get(feature.get("table", "metadata"))
        if table is None or feature["column"] not in table.columns:
            continue
        raw = table[feature["column"]].reset_index(drop=True)
        if feature["type"] == "numeric":
            values = pd.to_numeric(raw, errors="coerce").astype("float64").to_numpy()
            index[METADATA_PREFIX + feature["name"]] = np.where(np.isfinite(values), values, np.nan)
        else:
            text = raw.astype("string").str.strip()
            index[METADATA_PREFIX + feature["name"]] = text.where(text.notna() & (text != ""), None).astype(object).to_numpy()


def require_columns(frame: pd.DataFrame, columns: list[str], where: str, card: dict) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{card['id']}: column {missing[0]!r} not found in {where} "
                        f"(it has: {', '.join(map(str, frame.columns))}). {access_hint(card)}")


def label_column(raw: pd.Series, spec: dict, label_id: str) -> pd.Series:
    """One label as floats: 1.0 positive, 0.0 negative, -1.0 uncertain, NaN blank."""
    if "contains" in spec:
        findings = [spec["contains"]] if isinstance(spec["contains"], str) else list(spec["contains"])
        if spec.get("strip"):  # a list written as text, e.g. "['pleural effusion', ' cardiomegaly']": compare items
            return _list_items_contain(raw, findings, spec.get("separator", "|"), spec["strip"])
        sep = re.escape(spec.get("separator", "|"))
        names = "|".join(re.escape(f) for f in findings)
        pattern = f"(?:^|{sep})\\s*(?:{names})\\s*(?:$|{sep})"
        # each distinct text once, by pandas' own str.contains on the column's dtype, then back to the rows (a release
        # repeats the same few finding lists over ~100 k rows)
        codes, uniques = pd.factorize(raw, use_na_sentinel=True)
        found = pd.Series(uniques).str.contains(pattern, regex=True).astype("float64").to_numpy()
        return pd.Series(np.append(found, np.nan)[codes], index=raw.index, dtype="float64", name=raw.name)  # -1: blank
    if any(k in spec for k in ("positive", "negative", "uncertain")):
        mapping = {str(v): value for key, value in (("positive", 1.0), ("negative", 0.0), ("uncertain", -1.0))
                   for v in spec.get(key, [])}
        text = raw.astype("string").str.strip()
        unknown = sorted(set(text.dropna()) - set(mapping))
        other = spec.get("other_values", "error")
        if unknown and other != "error":  # e.g. SIIM: every run-length mask is a positive, only "-1" is listed
            mapping.update(dict.fromkeys(unknown, 1.0 if other == "positive" else 0.0))
        elif unknown:
            raise DataError(f"label {label_id!r}: column {spec['column']!r} has values the card does not map: "
                            f"{', '.join(map(repr, unknown[:5]))}")
        return text.map(mapping).astype("float64")
    values = pd.to_numeric(raw, errors="coerce")
    bad = raw[values.isna() & raw.notna() & (raw.astype("string").str.strip() != "")]
    bad_values = set(values.dropna().unique()) - {1.0, 0.0, -1.0}
    if len(bad) or bad_values:
        example = bad.iloc[0] if len(bad) else float(min(bad_values))
        raise DataError(f"label {label_id!r}: column {spec['column']!r} holds {example!r}; expected 1, 0, -1 or blank "
                        "(or map its values with positive/negative/uncertain in the dataset card)")
    return values.astype("float64")


def _list_items_contain(raw: pd.Series, findings: list[str], separator: str, strip: str) -> pd.Series:
    """1.0 where one of `findings` is an item of the list text, 0.0 where not, NaN where blank."""
    chars, wanted = strip + " \t", set(findings)

    def has(text) -> float:
        if not isinstance(text, str):
            return np.nan
        return float(any(item.strip(chars) in wanted for item in text.strip(chars).split(separator)))

    # each distinct text once (a release repeats the same few lists over many rows), then back to the rows
    codes, uniques = pd.factorize(raw.to_numpy(dtype=object), use_na_sentinel=True)
    found = np.array([has(v) for v in uniques] + [np.nan], dtype="float64")  # code -1 (missing): the NaN at the end
    return pd.Series(found[codes], index=raw.index, dtype="float64")


def add_labels(index: pd.DataFrame, tables: dict[str, pd.DataFrame], card: dict, label_ids: list[str]) -> None:
    """Add one float column per requested label; `tables` are aligned row by row with `index`."""
    for label_id in label_ids:
        spec = card["labels"][label_id]
        table = spec.get("table", "metadata")
        if table not in tables:
            raise DataError(f"{card['id']}: label {label_id!r} needs the {table!r} table, which was not read")
        require_columns(tables[table], [spec["column"]], f"the {table} table", card)
        index[label_id] = label_column(tables[table][spec["column"]], spec, label_id).to_numpy()


def wanted_labels(card: dict, label_ids: list[str] | None) -> list[str]:
    declared = card.get("labels", {})
    if label_ids is None:
        return list(declared)
    unknown = [x for x in label_ids if x not in declared]
    if unknown:
        raise DataError(f"{card['id']}: no label {unknown[0]!r} (declared: {', '.join(declared)})")
    return list(dict.fromkeys(label_ids))


def base_index(meta: pd.DataFrame, card: dict, where: str) -> pd.DataFrame:
    """image_id, patient_id, study_id, view, sex, age from the metadata columns the card names."""
    columns = card["columns"]
    needed = [columns[k] for k in ("image_id", "patient_id", "study_id", "view", "sex", "age", "path") if k in columns]
    require_columns(meta, needed, where, card)
    index = pd.DataFrame({"image_id": meta[columns["image_id"]].astype("string").str.strip().astype(str)})
    index["patient_id"] = meta[columns["patient_id"]].astype("string").str.strip().astype(str).to_numpy()
    index["study_id"] = (meta[columns["study_id"]].astype("string").str.strip().astype(str).to_numpy()
                         if "study_id" in columns else index["image_id"].to_numpy())
    index["view"] = (meta[columns["view"]].astype("string").fillna("").str.strip().str.upper().to_numpy()
                     if "view" in columns else "")
    if "sex" in columns:
        sex = meta[columns["sex"]].astype("string").str.strip().str.upper().str[:1]
        index["sex"] = sex.where(sex.isin(["M", "F"]), None).to_numpy()
    if "age" in columns:
        index["age"] = pd.to_numeric(meta[columns["age"]], errors="coerce").astype("float64").to_numpy()
    return index


def key_array(frame: pd.DataFrame, columns: list[str]) -> pa.Array:
    """One text key per row from one or more columns (hash joins in Arrow are ~10x faster than pandas merges here)."""
    parts = [_arrow_text(frame[c]) for c in columns]
    return parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "\x1f")


def _arrow_text(series: pd.Series) -> pa.Array:
    if hasattr(series.array, "__arrow_array__"):  # Arrow-backed text column: no copy through Python objects
        array = pa.array(series.array)
        array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
        return array if array.type == pa.string() else array.cast(pa.string())
    return pa.array(series.to_numpy(dtype=object), type=pa.string(), from_pandas=True)


def is_unique(keys: pa.Array) -> bool:
    return len(pc.unique(keys)) == len(keys)


def align(table: pd.DataFrame, table_keys: pa.Array, keys: pa.Array) -> pd.DataFrame:
    """Rows of `table` matching each key (first match); all-blank rows where a key is absent."""
    positions = pc.fill_null(pc.index_in(keys, value_set=table_keys), -1).to_numpy()
    found = table.iloc[np.where(positions < 0, 0, positions)].reset_index(drop=True) if len(table) else \
        pd.DataFrame(index=range(len(positions)), columns=table.columns)
    return found.where(pd.Series(positions >= 0), None) if (positions < 0).any() else found


def check_ids(index: pd.DataFrame, card: dict, where: str) -> None:
    for column in ("image_id", "patient_id"):
        blank = index[column].isna() | (index[column] == "")
        if blank.any():
            raise DataError(f"{card['id']}: {int(blank.sum())} rows of {where} have no {column} "
                            f"(column {card['columns'][column]!r}), e.g. row {int(np.flatnonzero(blank)[0]) + 2}")
    if is_unique(key_array(index, ["image_id"])):
        return
    duplicated = index["image_id"].duplicated()
    if duplicated.any():
        raise DataError(f"{card['id']}: image id {index['image_id'][duplicated].iloc[0]!r} appears more than once "
                        f"in {where} ({int(duplicated.sum())} duplicates); image ids must be unique")


def resolve_data_root(dataset_card: dict, data_root: Path | None) -> Path:
    """--data-root, else the dataset card's environment variable; a clear message when neither is there."""
    import os

    if data_root is not None:
        return Path(data_root)
    env = dataset_card.get("root_env")
    if env and os.environ.get(env):
        return Path(os.environ[env])
    raise DataError(f"no data root for dataset {dataset_card['id']!r}: pass --data-root DIR"
                    + (f" or set ${env}" if env else "") + f". {access_hint(dataset_card)}")


def check_paths_unique(index: pd.DataFrame, card: dict, where: str) -> None:
    """One image file listed under several image ids (or patients) would put the same picture in two folds."""
    if "path" not in index.columns:
        return
    paths = index["path"].astype(str).str.replace("\\", "/", regex=False).str.lstrip("./")
    repeated = paths.duplicated(keep=False) & index["path"].notna() & (paths != "")
    if repeated.any():
        first = paths[repeated].iloc[0]
        ids = index.loc[repeated & (paths == first), "image_id"].astype(str).tolist()
        raise DataError(f"{card['id']}: image file {first!r} is listed under {len(ids)} image ids "
                        f"({', '.join(map(repr, ids[:5]))}) in {where}; {int(repeated.sum())} rows share a file with "
                        "another row. One file must be one image (it would leak a picture across folds)")
