"""`huggingface` kind: an image data set on the Hugging Face Hub (repo id + pinned revision) or saved locally
with `Dataset.save_to_disk`, read with the `datasets` library.

The rest of the pipeline reads images from files, so the images are written once under `<data root>/hf-images/`
(bytes as stored: PNG, JPEG or DICOM) and the index points at them; files already there are kept.
"""

from __future__ import annotations

import re
from pathlib import Path

from runner.data import DatasetIndex
from runner.data.imaging import is_transient
from runner.data.tables import DataError, access_hint, add_labels, base_index, check_ids, wanted_labels

IMAGE_FOLDER = "hf-images"
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")
# A stored path's suffix names the file type only when it looks like one (".png", ".dcm", ".jpeg"): a NUL byte or a
# 300-character "suffix" cannot be part of a file name, and then the bytes name the type, as for an item without one.
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


def _open(card: dict, root: Path):
    import datasets

    local = (root / "dataset_info.json").is_file() or (root / "dataset_dict.json").is_file()
    split = card.get("hub", {}).get("split", "train")
    try:
        if local:
            loaded = datasets.load_from_disk(str(root))
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise DataError(f"{card['id']}: split {split!r} not in {root} (has: {', '.join(loaded)})")
                loaded = loaded[split]
            return loaded, str(root)
        hub = card.get("hub")
        if not hub:
            raise DataError(f"{card['id']}: {root} holds no save_to_disk data set and the card names no hub repo. "
                            f"{access_hint(card)}")
        loaded = datasets.load_dataset(hub["repo_id"], revision=hub["revision"], split=split,
                                       cache_dir=str(root / "hf-cache"))
        return loaded, f"hf://{hub['repo_id']}@{hub['revision']}"
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - the datasets library raises many types; all mean "cannot read it"
        raise DataError(f"{card['id']}: cannot load the data set ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}). {access_hint(card)}") from None


def _extension(data: bytes, stored_path: str | None) -> str:
    suffix = _stored_suffix(stored_path)
    if suffix:
        return suffix
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    if data[:2] == b"\xff\xd8":
        return ".jpg"
    if data[128:132] == b"DICM":
        return ".dcm"
    return ".bin"


def _stored_suffix(stored_path: str | None) -> str:
    """The stored path's suffix, lower case, when it can be a file type's ("" otherwise)."""
    try:
        suffix = Path(stored_path).suffix if stored_path else ""
    except (TypeError, ValueError):
        return ""
    return suffix.lower() if _SUFFIX.match(suffix) else ""


def _image_folder(root: Path) -> Path:
    """ROOT/hf-images, made if absent; refused when it (a link, say) leads outside the data root."""
    folder = root / IMAGE_FOLDER
    if folder.is_symlink() or (folder.exists() and not folder.resolve().is_relative_to(Path(root).resolve())):
        raise DataError(f"{folder} is a symbolic link (or leads outside the data root): the images of the data set "
                        "are written only inside the data root; remove the link")
    folder.mkdir(exist_ok=True)
    return folder


def _write_file(target: Path, data: bytes) -> None:
    """Write through a fresh temp file (O_EXCL: never through a link planted beside the target) renamed over the
    target, which replaces a link there instead of writing through it."""
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:60]}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_images(dataset, image_column: str, image_ids, root: Path) -> list[str]:
    """Write each row's image bytes to hf-images/<image id or row number><ext>; returns relative paths.

    A stored `path` (an image the data set references instead of embedding) must lie inside the data root; ids that
    become the same file name (case-insensitively: some file systems fold case) are an error; a file already there
    is kept only when its bytes are the item's bytes, else it is re-written."""
    import datasets

    if isinstance(dataset.features.get(image_column), datasets.Image):
        dataset = dataset.cast_column(image_column, datasets.Image(decode=False))
    _image_folder(root)
    paths, row, taken = [], 0, {}
    for batch in dataset.select_columns([image_column]).iter(batch_size=256):
        for item in batch[image_column]:
            data, stored = (item.get("bytes"), item.get("path")) if isinstance(item, dict) else (item, None)
            if data is None and stored:
                data = _read_stored(stored, root, image_ids[row])
            image_id = image_ids[row]
            stem = image_id if _SAFE.match(image_id) else f"row{row:08d}"
            relative = f"{IMAGE_FOLDER}/{stem}{_extension(data or b'', stored)}"
            if relative.lower() in taken:
                raise DataError(f"image ids {taken[relative.lower()]!r} and {image_id!r} both become the file "
                                f"{relative!r}: make the ids distinct (case-insensitively, after unsafe ids become "
                                "row numbers)")
            taken[relative.lower()] = image_id
            target = root / relative
            if data and (target.is_symlink() or not (target.is_file() and target.stat().st_size == len(data)
                                                     and target.read_bytes() == data)):
                _write_file(target, data)
            paths.append(relative)  # a row without bytes points at a missing file: recorded when sampled
            row += 1
    return paths


def _read_stored(stored: str, root: Path, image_id: str) -> bytes | None:
    """The bytes of an image the data set stores by path, refused when that path leaves the data root."""
    try:
        path = (root / stored) if not Path(stored).is_absolute() else Path(stored)
        resolved = path.resolve()
    except (OSError, ValueError):  # a NUL byte: no file can have that name
        return None
    if not resolved.is_relative_to(Path(root).resolve()):
        raise DataError(f"image {image_id[:80]!r}: the data set stores its image at a path outside the data root "
                        f"({stored[:200]!r}); refusing to read it")
    try:
        return resolved.read_bytes() if resolved.is_file() else None
    except OSError as exc:  # a name too long for the file system: the row's file is then missing (counted)
        if is_transient(exc):
            raise DataError(f"image {image_id[:80]!r}: {exc.strerror or type(exc).__name__} reading the file the "
                            "data set stores it in (a storage error, not the file's fault); run again") from None
        return None


def read(card: dict, root: Path, labels: list[str] | None) -> DatasetIndex:
    columns = card["columns"]
    if "image" not in columns:
        raise DataError(f"{card['id']}: a huggingface dataset card must name its image column (columns.image)")
    label_ids = wanted_labels(card, labels)
    dataset, source = _open(card, root)
    if columns["image"] not in dataset.column_names:
        raise DataError(f"{card['id']}: column {columns['image']!r} not found in {source} "
                        f"(it has: {', '.join(dataset.column_names)})")
    meta = dataset.remove_columns([columns["image"]]).to_pandas()
    for name in meta.columns:  # text like the CSV readers see it; booleans as 1/0
        meta[name] = (meta[name].astype("float64") if meta[name].dtype == bool else meta[name]).astype("string")
    index = base_index(meta, card, source)
    check_ids(index, card, source)
    add_labels(index, {"metadata": meta}, card, label_ids)
    index["path"] = _write_images(dataset, columns["image"], list(index["image_id"]), root)
    return DatasetIndex(card["id"], root, index, {"metadata": [source]}, files_found=None)
