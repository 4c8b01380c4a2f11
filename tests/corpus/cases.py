"""The corpus table: every malformed input, the builder that makes it, and the behaviour it must get.

outcome:
  excluded  the file is not used and the exclusion is recorded with `expect` as its reason (images: the
            ImageDecodeError.reason and the reason `runner.sampling.check_file` records)
  loads     the input is fine after all (or must be read correctly): no error, a finite [0, 1] image
  counted   the row stays in the index and is dropped by a counted filter step (label policy or view filter)
  error     a clear error (DataError / CardError / ResultError) whose message contains `expect`
  refused   `runner submit` refuses it: exit code `exit_code`, message containing `expect`
  filed     `runner submit` accepts it (exit 0) and the site renders its strings inert

docs/reliability.md's table is this list; `python -m tests.corpus.cases` prints it as Markdown.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    id: str
    area: str  # dicom | image | metadata | card | result
    builder: str  # function name in tests/corpus/build.py
    outcome: str
    expect: str
    exit_code: int | None = None  # for CLI-level cases: `runner validate` / `runner sample` / `runner submit`
    behaviour: str = ""


CASES: list[Case] = [
    # ------------------------------------------------------------------ DICOM
    Case("dicom-truncated", "dicom", "dicom_truncated", "excluded", "truncated",
         behaviour="cut in the middle of PixelData: excluded, reason truncated"),
    Case("dicom-truncated-header", "dicom", "dicom_truncated_header", "excluded", "no-pixel-data",
         behaviour="cut inside the file meta header: excluded, reason no-pixel-data"),
    Case("dicom-zero-bytes", "dicom", "dicom_zero_bytes", "excluded", "zero-bytes", behaviour="excluded, zero-bytes"),
    Case("dicom-not-dicom", "dicom", "dicom_not_dicom", "excluded", "not-dicom",
         behaviour="a text file named .dcm: excluded, not-dicom"),
    Case("dicom-no-pixel-data", "dicom", "dicom_no_pixel_data", "excluded", "no-pixel-data",
         behaviour="header only: excluded, no-pixel-data"),
    Case("dicom-pixel-data-short", "dicom", "dicom_pixel_data_short", "excluded", "pixel-data-short",
         behaviour="PixelData a third of Rows x Columns x 2 bytes: excluded, pixel-data-short"),
    Case("dicom-bits-stored-gt-allocated", "dicom", "dicom_bits_stored_over_allocated", "excluded", "bad-bit-depth",
         behaviour="BitsStored 20 > BitsAllocated 16: excluded, bad-bit-depth"),
    Case("dicom-unknown-transfer-syntax", "dicom", "dicom_unknown_transfer_syntax", "excluded",
         "unsupported-transfer-syntax", behaviour="transfer syntax UID 1.2.3.4.5.6.7.8.9: excluded"),
    Case("dicom-rgb", "dicom", "dicom_rgb", "excluded", "not-grayscale",
         behaviour="RGB where greyscale is expected: excluded, not-grayscale"),
    Case("dicom-multi-frame", "dicom", "dicom_multi_frame", "excluded", "multi-frame",
         behaviour="3 frames: excluded, multi-frame"),
    Case("dicom-lateral", "dicom", "dicom_lateral", "excluded", "view-lateral",
         behaviour="valid LATERAL image: decodes, but the view filter excludes it (view-lateral, counted)"),
    Case("dicom-window-negative-width", "dicom", "dicom_absurd_window", "excluded", "bad-window",
         behaviour="WindowWidth -5, centre 1e30, slope 1e20: excluded, bad-window"),
    Case("dicom-window-huge", "dicom", "dicom_huge_window", "loads", "",
         behaviour="centre and width 1e30 (legal, absurd): loads as a finite [0, 1] image"),
    Case("dicom-rescale-overflow", "dicom", "dicom_overflowing_rescale", "excluded", "non-finite",
         behaviour="RescaleSlope 1e308 overflows to infinity: excluded, non-finite"),
    Case("dicom-rows-zero", "dicom", "dicom_rows_zero", "excluded", "bad-dimensions",
         behaviour="Rows = 0: excluded, bad-dimensions"),
    Case("dicom-flat-monochrome1", "dicom", "dicom_monochrome1_flat", "loads", "",
         behaviour="a constant MONOCHROME1 image: loads as zeros (no division by zero)"),
    # ------------------------------------------------------------------ PNG / JPEG
    Case("png-truncated", "image", "png_truncated", "excluded", "truncated", behaviour="excluded, truncated"),
    Case("jpeg-truncated", "image", "jpeg_truncated", "excluded", "truncated", behaviour="excluded, truncated"),
    Case("png-16bit", "image", "png_16bit", "loads", "",
         behaviour="16-bit greyscale PNG: loads as value / 65535 exactly (not cut to 8 bits)"),
    Case("png-named-dcm", "image", "png_named_dcm", "excluded", "not-dicom",
         behaviour="a PNG with a .dcm name: excluded, not-dicom"),
    Case("dicom-named-png", "image", "dicom_named_png", "excluded", "not-image",
         behaviour="a DICOM with a .png name: excluded, not-image"),
    Case("jpeg-named-png", "image", "jpeg_named_png", "loads", "",
         behaviour="a JPEG with a .png name: loads (Pillow reads the content)"),
    # ------------------------------------------------------------------ metadata (`csv` dataset kind)
    Case("meta-missing-column", "metadata", "meta_missing_column", "error", "column 'patient_id' not found", 2,
         behaviour="DataError naming the column and the columns present; exit 2"),
    Case("meta-missing-label-column", "metadata", "meta_missing_label_column", "error", "column 'effusion' not found",
         2, behaviour="DataError naming the label column; exit 2"),
    Case("meta-missing-file", "metadata", "meta_missing_file", "error", "metadata table not found", 2,
         behaviour="DataError naming the file looked for and how to get the data; exit 2"),
    Case("meta-blank-label", "metadata", "meta_blank_label", "counted", "label",
         behaviour="blank label cell: kept as NaN, dropped by the label policy step (counted)"),
    Case("meta-nan-label", "metadata", "meta_nan_label", "counted", "label",
         behaviour="'NaN' label cell: kept as NaN, dropped by the label policy step (counted)"),
    Case("meta-blank-view", "metadata", "meta_blank_view", "counted", "view",
         behaviour="blank view cell: view '', dropped by the view filter step (counted)"),
    Case("meta-duplicate-rows", "metadata", "meta_duplicate_rows", "error", "appears more than once", 2,
         behaviour="DataError naming the repeated image id; exit 2"),
    Case("meta-label-outside-policy", "metadata", "meta_label_outside_policy", "error", "holds 2.0", 2,
         behaviour="label value 2: DataError naming the value and the allowed ones; exit 2"),
    Case("meta-label-text", "metadata", "meta_label_text", "error", "holds 'maybe'", 2,
         behaviour="label value 'maybe': DataError; exit 2"),
    Case("meta-patient-missing", "metadata", "meta_patient_missing", "error", "have no patient_id", 2,
         behaviour="blank patient id: DataError with the row number; exit 2"),
    Case("meta-image-id-missing", "metadata", "meta_image_id_missing", "error", "have no image_id", 2,
         behaviour="blank image id: DataError with the row number; exit 2"),
    Case("meta-path-dotdot", "metadata", "meta_path_dotdot", "error", "leave the data root", 2,
         behaviour="path ../../etc/passwd: DataError; exit 2"),
    Case("meta-path-absolute", "metadata", "meta_path_absolute", "error", "leave the data root", 2,
         behaviour="path /etc/passwd: DataError; exit 2"),
    Case("meta-path-blank", "metadata", "meta_path_blank", "error", "blank path", 2,
         behaviour="blank path: DataError; exit 2"),
    Case("meta-not-utf8", "metadata", "meta_not_utf8", "error", "invalid UTF8", 2,
         behaviour="a 0xFF byte in the CSV: DataError naming the file; exit 2"),
    # ------------------------------------------------------------------ cards
    Case("card-duplicate-key", "card", "card_duplicate_key", "error", "duplicate key 'title'", 2,
         behaviour="CardError with both line numbers; exit 2"),
    Case("card-unknown-key", "card", "card_unknown_key", "error", "unknown field 'sampel_size'", 2,
         behaviour="CardError with a did-you-mean; exit 2"),
    Case("card-wrong-type", "card", "card_wrong_type", "error", "/sampling/positives: wrong type", 2,
         behaviour="positives: ten -> CardError expected integer; exit 2"),
    Case("card-extends-cycle", "card", "card_extends_cycle", "error", "`extends` cycle", 2,
         behaviour="_a -> _b -> _a: CardError showing the chain; exit 2"),
    Case("card-extends-self", "card", "card_extends_self", "error", "`extends` cycle", 2,
         behaviour="a card extending itself: CardError; exit 2"),
    Case("card-extends-nul", "card", "card_extends_nul", "error", "`extends` must name a file", 2,
         behaviour="extends with a NUL byte: CardError (was a ValueError traceback; fixed, found by the slow fuzz)"),
    Case("card-dataset-path-dotdot", "card", "card_dataset_path_dotdot", "error", "leaves the data root", 2,
         behaviour="dataset file ../../../etc/passwd: CardError; exit 2"),
    Case("card-dataset-path-absolute", "card", "card_dataset_path_absolute", "error", "leaves the data root", 2,
         behaviour="dataset file /etc/passwd: CardError; exit 2"),
    Case("card-huge-int", "card", "card_huge_number", "error", "is greater than the maximum", 2,
         behaviour="positives: a 400-digit number: CardError (message shortened); exit 2"),
    Case("card-huge-float", "card", "card_huge_float", "error", "learning_rate", 2,
         behaviour="learning_rate 1.0e+999 (= inf): CardError; exit 2"),
    Case("card-nan-number", "card", "card_nan_number", "error", "nan is not a usable number", 2,
         behaviour="metrics.threshold: .nan passes JSON Schema; CardError (was a ValueError traceback; fixed)"),
    Case("card-not-utf8", "card", "card_not_utf8", "error", "not UTF-8", 2,
         behaviour="latin-1 bytes: CardError naming the byte offset; exit 2"),
    Case("card-not-yaml", "card", "card_not_yaml", "error", "not valid YAML", 2,
         behaviour="unclosed bracket: CardError with the line; exit 2"),
    Case("card-top-level-list", "card", "card_top_level_list", "error", "top level is a list", 2,
         behaviour="CardError; exit 2"),
    Case("card-python-tag", "card", "card_yaml_python_tag", "error", "could not determine a constructor", 2,
         behaviour="!!python/object/apply: refused by the safe loader, nothing runs; exit 2"),
    Case("card-unknown-dataset", "card", "card_unknown_dataset", "error", "did you mean 'mimic-cxr'", 2,
         behaviour="dataset: mimic-cxx -> CardError with a did-you-mean; exit 2"),
    Case("card-deep-nesting", "card", "card_deep_nesting", "error", "nested too deeply", 2,
         behaviour="5,000 nested brackets: CardError (was a RecursionError traceback; fixed)"),
    Case("card-empty", "card", "card_empty", "error", "file is empty", 2, behaviour="CardError; exit 2"),
    Case("card-metadata-feature-type", "card", "card_metadata_feature_type", "error", "/metadata_features/0/type", 2,
         behaviour="a metadata feature of an unknown type ('text'): CardError at the field; exit 2"),
    Case("card-metadata-feature-name", "card", "card_metadata_feature_name", "error", "/metadata_features/0/name", 2,
         behaviour="a metadata feature named '../x' (it becomes a manifest column): CardError; exit 2"),
    Case("card-match-unknown-stratum", "card", "card_match_unknown_stratum", "error", "/sampling/match/strata/0", 2,
         behaviour="sampling.match on a stratum the sampler does not know ('colour'): CardError; exit 2"),
    Case("card-training-dataset-traversal", "card", "card_training_dataset_traversal", "error",
         "/training_datasets/0", 2, behaviour="training_datasets: ['../../etc']: CardError (not a dataset id); exit 2"),
    # ------------------------------------------------------------------ results (`runner submit`)
    Case("result-nan", "result", "result_nan", "refused", "NaN is not valid JSON", 2,
         behaviour="a bare NaN token: refused while parsing; exit 2"),
    Case("result-infinity", "result", "result_infinity", "refused", "Infinity is not valid JSON", 2,
         behaviour="a bare Infinity token: refused; exit 2"),
    Case("result-forged-card-hash", "result", "result_forged_card_hash", "refused", "changed since this result", 1,
         behaviour="task sha256 not the current card's: refused; exit 1"),
    Case("result-forged-encoder-hash", "result", "result_forged_encoder_hash", "refused", "changed since this result",
         1, behaviour="encoder sha256 not the current card's: refused; exit 1"),
    Case("result-forged-manifest-hash", "result", "result_forged_manifest_hash", "refused", "manifest sha256", 1,
         behaviour="manifest sha256 differs from manifest.json beside it: refused; exit 1"),
    Case("result-unknown-task", "result", "result_unknown_task", "refused", "unknown task 'effusion-mars'", 2,
         behaviour="refused; exit 2"),
    Case("result-html", "result", "result_html", "filed", "<script>", 0,
         behaviour="<script>/<img onerror> in encoder name, reason, notes: filed, rendered as text on the site"),
    Case("result-100mb", "result", "result_huge_file", "refused", "more than the", 2,
         behaviour="a 100 MB (sparse) file: refused by its size before any byte is parsed; exit 2"),
    Case("result-duplicate-key", "result", "result_duplicate_key", "refused", "duplicate key 'provenance'", 2,
         behaviour="a JSON key twice: refused; exit 2"),
    Case("result-deep-nesting", "result", "result_deep_nesting", "refused", "nested too deeply", 2,
         behaviour="100,000 nested brackets: refused (was a RecursionError traceback; fixed); exit 2"),
    Case("result-not-object", "result", "result_not_object", "refused", "must be a JSON object", 2,
         behaviour="a JSON list: refused; exit 2"),
    Case("result-not-json", "result", "result_not_json", "refused", "invalid JSON", 2,
         behaviour="single quotes: refused with line and column; exit 2"),
]


def markdown_table() -> str:
    rows = ["| # | area | case | behaviour |", "| --- | --- | --- | --- |"]
    rows += [f"| {i} | {c.area} | `{c.id}` | {c.behaviour} |" for i, c in enumerate(CASES, 1)]
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
