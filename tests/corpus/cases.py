"""The corpus table: every malformed input, the builder that makes it, and the behaviour it must get.

outcome:
  excluded  the file is not used and the exclusion is recorded with `expect` as its reason (images: the
            ImageDecodeError.reason and the reason `runner.sample.sampler.check_file` records)
  loads     the input is fine after all (or must be read correctly): no error, a finite [0, 1] image
  counted   the row stays in the index and is dropped by a counted filter step (label policy or view filter)
  error     a clear error (DataError / CardError / ResultError) whose message contains `expect`
  refused   `runner submit` refuses it: exit code `exit_code`, message containing `expect`
  filed     `runner submit` accepts it (exit 0) and the site renders its strings inert
  observed  (area scenario) a hostile situation run end to end: what the user is told contains `expect`

`forbid`: text that must never appear in the message (the content of a file that was refused).

docs/reliability.md's table is this list; `python -m tests.corpus.cases` prints it as Markdown.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    id: str
    area: str  # dicom | image | metadata | card | card-copy | result | scenario
    builder: str  # function name in tests/corpus/build.py
    outcome: str
    expect: str
    exit_code: int | None = None  # for CLI-level cases: `runner validate` / `runner sample` / `runner submit`
    behaviour: str = ""
    forbid: str = ""  # never in the message (issue 13: refused files' content is not echoed)
    issue: int = 0  # 13: added by issue 13 (hostile input, verified submission); 25: by issue 25 item 8


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
    Case("meta-feature-not-finite", "metadata", "meta_feature_not_finite", "loads", "missing",
         behaviour="a numeric metadata feature of inf, -inf, 1e999 or text: missing (NaN) for the metadata baseline, "
                   "never Infinity; every row stays indexed", issue=15),
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
    Case("card-derive-two-sources", "card", "card_derive_two_sources", "error", "/derive/relpath", 2,
         behaviour="a table card's derived column with both `from` and `template`: CardError; exit 2"),
    Case("card-reads-zero-readers", "card", "card_reads_zero_readers", "error", "/reads/positive_min", 2,
         behaviour="reads.positive_min 0 (every image positive): CardError; exit 2"),
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
    Case("result-forged-card-hash", "result", "result_forged_card_hash", "refused", "changed behaviour since", 1,
         behaviour="task behaviour hash not the current card's: refused; exit 1"),
    Case("result-forged-encoder-hash", "result", "result_forged_encoder_hash", "refused", "changed behaviour since",
         1, behaviour="encoder behaviour hash not the current card's: refused; exit 1"),
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

# ================================================================== issue 13: hostile input, verified submission
SECRET = "SECRET-TOKEN"
I13: list[Case] = [
    # ------------------------------------------------------------------ cards
    Case("card-billion-laughs", "card", "card_billion_laughs", "error", "YAML alias", 2, forbid=SECRET,
         behaviour="9 levels x 9 aliases (387 million leaves): refused on the composed node graph (linear); exit 2"),
    Case("card-single-alias", "card", "card_single_alias", "error", "YAML alias (*name) is not allowed", 2,
         behaviour="any &anchor/*alias: refused (cards need none), with its line; exit 2"),
    Case("card-symlink-dev-zero", "card", "card_symlink_dev_zero", "error", "outside the registry", 2,
         behaviour="tasks/zero.yaml -> /dev/zero: refused without reading; exit 2"),
    Case("card-is-dev-zero", "card", "card_is_dev_zero", "error", "not a regular file", 2,
         behaviour="`runner validate /dev/zero`: stat before open, refused; exit 2"),
    Case("card-fifo", "card", "card_fifo", "error", "not a regular file", 2,
         behaviour="a FIFO named .yaml: refused without opening it (would block forever); exit 2"),
    Case("card-too-large", "card", "card_too_large", "error", "the most a card may have", 2,
         behaviour="1.1 MB card: at most 1,000,001 bytes read, refused; exit 2"),
    Case("card-symlink-outside", "card", "card_symlink_outside", "error", "outside the registry", 2,
         behaviour="a valid card symlinked from outside the registry: refused; exit 2"),
    Case("card-extends-outside", "card", "card_extends_outside", "error", "leaves the registry", 2,
         behaviour="extends: ../../outside/_defaults.yaml: refused; exit 2"),
    Case("card-extends-absolute", "card", "card_extends_absolute", "error", "leaves the registry", 2, forbid=SECRET,
         behaviour="extends: /abs/secret.txt: refused, the file is not read; exit 2"),
    Case("card-extends-symlink-outside", "card", "card_extends_symlink_outside", "error", "leaves the registry", 2,
         forbid=SECRET, behaviour="extends: _linked.yaml, a symlink to a file outside: refused; exit 2"),
    Case("card-id-newline", "card", "card_id_newline", "error", "does not match", 2,
         behaviour='id: "newline\\n": refused (JSON Schema `$` matched before a final newline in Python); exit 2'),
    Case("card-fallback-folder-dotdot", "card", "card_fallback_folder_dotdot", "error", "leaves the package", 2,
         behaviour="fallback_package.folder: ../../../../etc: refused; exit 2"),
    Case("card-files-nul", "card", "card_files_nul", "error", "leaves the data root", 2,
         behaviour="a NUL byte in a dataset card's files path: refused; exit 2"),
    Case("card-weights-file-dotdot", "card", "card_weights_file_dotdot", "error", "leaves the weights folder", 2,
         behaviour="encoder weights.files: ../../../.ssh/id_rsa: refused; exit 2"),
    Case("card-invalid-yaml-hides-content", "card", "card_invalid_yaml_hides_content", "error", "not valid YAML", 2,
         forbid=SECRET, behaviour="broken YAML holding a secret: the message names file and line, not the content"),
    Case("card-seed-negative", "card", "card_seed_negative", "error", "less than the minimum", 2,
         behaviour="sampling.seed: -1: refused by the schema; exit 2"),
    Case("card-seed-huge", "card", "card_seed_huge", "error", "greater than the maximum", 2,
         behaviour="split.seed: 2^64 (NumPy/scikit-learn take 0..2^32-1): refused; exit 2"),
    Case("card-budget-out-of-range", "card", "card_budget_out_of_range", "error", "greater than the maximum", 2,
         behaviour="sampling.max_excluded_fraction: 1.5: refused; exit 2"),
    # ------------------------------------------------------------------ images: decompression bombs
    Case("dicom-declared-huge", "dicom", "dicom_declared_huge", "excluded", "too-many-pixels",
         behaviour="Rows x Columns 60,000 x 60,000 declared: excluded before decoding or allocating"),
    Case("png-declared-huge", "image", "png_declared_huge", "excluded", "too-many-pixels",
         behaviour="PNG header 8,000 x 8,000 (64 MP > 50 MP): excluded from the header, before decoding"),
    Case("png-pillow-bomb", "image", "png_pillow_bomb", "excluded", "too-many-pixels",
         behaviour="PNG header 40,000 x 40,000: Pillow's DecompressionBombError becomes the same exclusion"),
    Case("dicom-deflate-bomb", "scenario", "scenario_deflate_bomb_bounded", "observed", "decompression-bomb",
         behaviour="deflated DICOM (70 KB -> 72 MB): inflated in bounded steps and refused past the card's bound"),
    Case("dataset-card-pixel-bound", "scenario", "scenario_dataset_card_pixel_bound", "observed", "too-many-pixels",
         behaviour="dataset card max_image_megapixels: 0.001 reaches the sampler: every 48 x 48 file excluded, counted"),
    Case("decode-out-of-memory", "scenario", "scenario_oom_decode", "observed", "transient: out of memory",
         behaviour="MemoryError decoding one image: that image excluded, the run goes on, never cached as a failure"),
    Case("decode-eio", "scenario", "scenario_eio_read", "observed", "transient: OSError (Input/output error)",
         behaviour="EIO reading one image: excluded this run, not remembered; the next run embeds it"),
    Case("decode-timeout", "scenario", "scenario_timeout_read", "observed", "transient: TimeoutError",
         behaviour="a storage timeout: excluded this run, not remembered"),
    Case("decode-permanent-remembered", "scenario", "scenario_permanent_failure_is_remembered", "observed",
         "decode-failed: no-pixel-data (remembered)", behaviour="the control: a file cut to 300 bytes is remembered, not decoded again"),
    # ------------------------------------------------------------------ metadata
    Case("meta-same-file-two-ids", "metadata", "meta_same_file_two_ids", "error", "is listed under 2 image ids", 2,
         behaviour="one image file under two image ids: DataError naming the file and ids (a fold leak); exit 2"),
    Case("meta-same-file-two-patients", "metadata", "meta_same_file_two_patients", "error", "is listed under 2", 2,
         behaviour="./files/img0.dcm under another patient too (paths normalised): DataError; exit 2"),
    Case("meta-table-symlink-outside", "metadata", "meta_table_symlink_outside", "error", "outside", 2,
         forbid=SECRET, behaviour="metadata.csv is a symlink out of the data root: refused, not read; exit 2"),
    Case("meta-parse-error-hides-content", "metadata", "meta_parse_error_hides_content", "error", "cannot read", 2,
         forbid=SECRET, behaviour="a malformed row holding a secret: the parser's quote of the row is cut; exit 2"),
    Case("meta-path-nul", "scenario", "scenario_nul_byte_path", "observed", "embedding: invalid-path; sampling: invalid-path",
         behaviour="a NUL byte in a metadata path: that image excluded (reason invalid-path), the run goes on"),
    # ------------------------------------------------------------------ HuggingFace reader
    Case("hf-stored-path-outside", "scenario", "scenario_hf_stored_path_outside", "observed", "outside the data root",
         forbid=SECRET, behaviour="an item stored by absolute path outside the data root: DataError, not read"),
    Case("hf-stored-path-dotdot", "scenario", "scenario_hf_stored_path_dotdot", "observed", "outside the data root",
         forbid=SECRET, behaviour="an item stored at ../outside/secret.txt: DataError, not read"),
    Case("hf-ids-collide-case", "scenario", "scenario_hf_ids_collide_case", "observed", "both become the file",
         behaviour="ids img-A and img-a (one file on a case-folding file system): DataError"),
    Case("hf-ids-collide-row-name", "scenario", "scenario_hf_ids_collide_row_name", "observed", "both become the file",
         behaviour="an unsafe id made file-safe as row00000001 collides with a real id row00000001: DataError"),
    Case("hf-changed-bytes", "scenario", "scenario_hf_changed_bytes_rewritten", "observed", "rewritten",
         behaviour="an item's bytes changed (same size): the written file is re-written, not reused"),
    # ------------------------------------------------------------------ embedding cache
    Case("cache-npy-truncated", "scenario", "scenario_cache_npy_truncated", "observed", "is corrupt",
         behaviour="a torn shard .npy: named on stderr, moved to quarantine/, its embeddings recomputed"),
    Case("cache-keys-garbage", "scenario", "scenario_cache_keys_garbage", "observed", "unreadable keys file",
         behaviour="a shard keys file that is not JSON: named, quarantined, recomputed (was: silently ignored)"),
    Case("cache-rows-mismatch", "scenario", "scenario_cache_rows_mismatch", "observed", "for 5 keys",
         behaviour="keys and rows disagree: named, quarantined, recomputed (would misalign embeddings)"),
    Case("cache-npy-pickle", "scenario", "scenario_cache_npy_pickle", "observed", "is corrupt",
         behaviour="a shard replaced by a pickled object array: np.load(allow_pickle=False) refuses; quarantined"),
    Case("cache-failed-record-garbage", "scenario", "scenario_cache_failed_record_garbage", "observed",
         "unreadable failure record", behaviour="a corrupt failed-*.json: named and quarantined"),
    # ------------------------------------------------------------------ runs bound to their data
    Case("manifest-other-data-root", "scenario", "scenario_manifest_other_root", "observed", "3 of 4 image(s) missing",
         behaviour="a manifest checked against a data root lacking its images: the difference is named"),
    Case("manifest-table-changed", "scenario", "scenario_manifest_table_changed", "observed",
         "metadata table(s) differ", behaviour="the metadata table changed since sampling: named"),
    Case("manifest-image-bytes-changed", "scenario", "scenario_manifest_image_bytes_changed", "observed",
         "1 of 4 image(s) changed", behaviour="same size, other bytes: the content hash recorded at sampling tells"),
    Case("manifest-touched-file", "scenario", "scenario_manifest_touched_only", "observed", "matches",
         behaviour="only the mtime changed, same bytes: still the same data (no needless resample)"),
    # ------------------------------------------------------------------ seeds on the command line
    Case("cli-sample-seed-negative", "scenario", "scenario_cli_sample_seed_negative", "observed", "exit 2",
         behaviour="`runner sample --seed -1`: typer's range check, exit 2, no traceback"),
    Case("cli-sample-seed-huge", "scenario", "scenario_cli_sample_seed_huge", "observed", "exit 2",
         behaviour="`runner sample --seed 2^64`: exit 2, no traceback"),
    # ------------------------------------------------------------------ leaderboard build --out
    Case("site-out-nonempty", "scenario", "scenario_site_out_nonempty", "observed", "not empty", forbid="built",
         behaviour="--out a folder with someone's files and no site marker: refused, nothing deleted"),
    Case("site-out-repo-root", "scenario", "scenario_site_out_repo_root", "observed", "holds the registry",
         behaviour="--out . in the repo: refused (was: deleted tasks/ and encoders/)"),
    Case("site-out-inside-registry", "scenario", "scenario_site_out_inside_registry", "observed",
         "inside the registry's tasks/", behaviour="--out tasks/: refused"),
    Case("site-out-symlinked-subfolder", "scenario", "scenario_site_out_symlinked_subfolder", "observed",
         "symbolic link", behaviour="--out DIR whose tasks/ is a symlink (to anywhere): refused"),
    Case("site-tex-markup", "scenario", "scenario_site_tex_markup_in_titles", "observed", "plot drawn",
         behaviour="`$\\frac{$` in an encoder title: escaped for matplotlib, the ROC plot is drawn"),
    # ------------------------------------------------------------------ signals
    Case("sigterm-during-eval", "scenario", "scenario_sigterm_during_eval", "observed", "exit 130: interrupted (SIGTERM)",
         behaviour="SIGTERM while embedding: one line 'interrupted', exit 130, no traceback, no temp or result file"),
    Case("sigint-during-eval", "scenario", "scenario_sigint_during_eval", "observed", "exit 130: interrupted (SIGINT)",
         behaviour="Ctrl-C while embedding (workers ignore it): one line, exit 130, no partial file"),
    # ------------------------------------------------------------------ results: verified submission
    Case("result-deep-analyses", "result", "result_deep_analyses", "refused", "nested deeper than 32", 2,
         behaviour="400-deep nesting inside analyses (schema-open): refused before any rendering; exit 2"),
    Case("result-edited-auroc", "result", "result_edited_auroc", "refused", "submission says 0.999, recomputed", 1,
         behaviour="AUROC edited to 0.999: recomputed from the predictions, refused; exit 1"),
    Case("result-swapped-predictions", "result", "result_swapped_predictions", "refused", "predictions_sha256", 1,
         behaviour="perfectly separating predictions swapped in: sha256 and every metric differ; exit 1"),
    Case("result-forged-n-images", "result", "result_forged_n_images", "refused", "submission says 2000", 1,
         behaviour="manifest.n_images forged: the manifest found one folder up says otherwise; exit 1"),
    Case("result-no-predictions", "result", "result_no_predictions", "refused", "no predictions file", 1,
         behaviour="a reproduced result without its predictions or embeddings: nothing to verify, refused; exit 1"),
    Case("result-predictions-extra-row", "result", "result_predictions_extra_row", "refused",
         "not test rows of the manifest", 1, behaviour="a prediction for an image not in the manifest; exit 1"),
    Case("result-over-budget", "result", "result_over_budget", "refused", "max_excluded_fraction", 1,
         behaviour="10 of 300 images excluded at embedding (> the card's 2%): refused; exit 1"),
    Case("result-manifest-tampered", "result", "result_manifest_tampered", "refused", "cannot be used", 1,
         behaviour="a label flipped in manifest.parquet: its content hash no longer matches, refused; exit 1"),
    Case("result-seed-negative", "result", "result_seed_negative", "refused", "less than the minimum", 2,
         behaviour="seeds.sampling -1: refused by the schema; exit 2"),
    Case("result-reported-made-up", "result", "result_reported_made_up", "refused", "not what publication", 1,
         behaviour="a reported AUROC not printed in the cited publication: refused; exit 1"),
    Case("result-reported-unknown-publication", "result", "result_reported_unknown_publication", "refused",
         "is not one", 1, behaviour="citing a publication id with no record in leaderboard/publications/; exit 1"),
    Case("result-reported-wrong-cell", "result", "result_reported_wrong_cell", "refused", "not what publication", 1,
         behaviour="another encoder's printed number filed under this one: refused; exit 1"),
    # an earlier result in the run folder, which a rerun of the same pair keeps only while it still fits (runner.results.reuse)
    Case("earlier-result-truncated", "scenario", "scenario_earlier_result_truncated", "observed",
         "computed again: the earlier result is unreadable", behaviour="result.json cut in half: computed again, no traceback"),
    Case("earlier-result-huge", "scenario", "scenario_earlier_result_huge", "observed",
         "computed again: the earlier result is unreadable", behaviour="a 200 MB result.json: refused by size before reading"),
    Case("earlier-result-other-inputs", "scenario", "scenario_earlier_result_other_inputs", "observed",
         "computed again: the earlier result was computed from other inputs",
         behaviour="the control: another inputs_sha256 (a card, manifest, embedding, code file or package changed)"),
    Case("earlier-result-off-schema", "scenario", "scenario_earlier_result_off_schema", "observed",
         "computed again: the earlier result does not pass the result schema",
         behaviour="fingerprint intact, AUROC 7.0: computed again"),
    Case("earlier-result-predictions-swapped", "scenario", "scenario_earlier_result_predictions_swapped", "observed",
         "computed again: the earlier predictions file is missing or not the one the result records",
         behaviour="predictions.parquet replaced by the labels: computed again"),
    Case("earlier-result-figure-missing", "scenario", "scenario_earlier_result_figure_missing", "observed",
         "computed again: a figure of the earlier result is missing (umap.png) | computed again: a figure of the "
         "earlier result is missing (label_efficiency.png)",
         behaviour="a figure the result names (clustering's or label efficiency's) is gone: computed again"),
    Case("earlier-result-forged-metric", "scenario", "scenario_earlier_result_forged_metric", "observed",
         "submission says 0.999, recomputed",
         behaviour="fingerprint intact, AUROC edited to 0.999: runner eval keeps its owner's file (staleness, not "
         "forgery, is what reuse guards); runner submit recomputes from the predictions and refuses it"),
]
for _case in I13:
    CASES.append(Case(**{**_case.__dict__, "issue": 13}))

# Verification is regeneration (issue 25): forged runs whose every hash and number was recomputed by the forger.
CASES += [
    # ------------------------------------------------------------------ results: verification is regeneration (issue 25)
    Case("result-cherry-picked-folds", "result", "result_cherry_picked_folds", "refused",
         "eval_folds is [0], the task card says [0, 1, 2, 3, 4]", 1, issue=25,
         behaviour="only the best fold evaluated, hash and numbers recomputed: the pinned eval_folds are checked "
                   "against the card; exit 1"),
    Case("result-manifest-without-task", "result", "result_manifest_without_task", "refused",
         "task_id is None, the task card says 'effusion-demo'", 1, issue=25,
         behaviour="a manifest without task_id (another task's labels passed off): refused; exit 1"),
    Case("result-hand-picked-subset", "result", "result_hand_picked_subset", "refused",
         "negatives in the rows, the task card samples 150", 1, issue=25,
         behaviour="a third of the negatives dropped, every hash and number recomputed: the class sizes are checked "
                   "against the card's sampling; exit 1"),
    Case("result-made-up-predictions", "result", "result_made_up_predictions", "refused",
         "not what the task's classifier gives on the submitted embeddings", 1, issue=25,
         behaviour="predictions 0.9 x label + 0.05 with every number recomputed, the genuine embeddings filed: the "
                   "registry refits and the predictions differ; exit 1"),
    Case("result-made-up-predictions-only", "result", "result_made_up_predictions_only", "refused",
         "min_tier embeddings", 1, issue=25,
         behaviour="the same, without embeddings: this registry files reproduced results only as its own refit; "
                   "exit 1"),
    Case("result-scores-outside-unit", "result", "result_scores_outside_unit", "refused",
         "not a probability in [0, 1]", 1, issue=25,
         behaviour="scores x 10 (AUROC unchanged), every number recomputed: refused; exit 1"),
    Case("result-edited-analysis", "result", "result_edited_subgroup_gap", "refused", "/analyses/within_view", 1,
         issue=25, behaviour="an analysis the registry recomputes from the predictions, edited: refused; exit 1"),
    Case("result-manifest-of-committed-task", "result", "result_manifest_of_committed_task", "refused",
         "is scored on its committed manifest", 1, issue=25,
         behaviour="a hand-made sample of a task whose manifest is committed, consistent in every number: refused; "
                   "exit 1"),
    Case("result-reported-made-up-folds", "result", "result_reported_with_made_up_folds", "refused",
         "not what publication", 1, issue=25,
         behaviour="a reported result with the printed means but made-up per-fold values, ROC and subgroups: a "
                   "reported result carries only what the publication prints; exit 1"),
]

# Verification is regeneration (issue 25), the forgeries that take several steps: run end to end.
CASES += [
    Case("forged-labels-flipped-after-pin", "scenario", "scenario_labels_flipped_after_pin", "observed",
         "with another label", issue=25,
         behaviour="every label flipped, hash and numbers recomputed, after a genuine first filing pinned the task: "
                   "refused naming the difference (was: filed at AUROC 1.000); exit 1"),
    Case("later-submission-keeps-earlier-files", "scenario", "scenario_later_submission_keeps_earlier_files",
         "observed", "changed: none; first result: []", issue=25,
         behaviour="a second submission on the same task: the first filing's manifest and predictions untouched, it "
                   "still regenerates (was: the shared manifest.json overwritten, earlier results failing)"),
    Case("interrupted-replace", "scenario", "scenario_interrupted_replace", "observed",
         "old result unchanged; it regenerates: yes", issue=25,
         behaviour="`runner submit --replace` killed between storing the new predictions and writing the result: "
                   "the old result stands with its own files (was: a mixed, failing pair)"),
    Case("planted-forged-number", "scenario", "scenario_planted_forged_number", "observed",
         "numbers differ from those the registry recomputes", issue=25,
         behaviour="an AUROC edited in the results folder: shown marked, `leaderboard build --strict` exits 1"),
    Case("forged-verification-block", "scenario", "scenario_forged_verification_block", "observed",
         "filed: tier embeddings; not verified [('stability', \"needs the run's embeddings", issue=25,
         behaviour="a run writing the registry's verification block (tier audited, made-up analyses left out): the "
                   "registry files its own tier; only analyses the runner knows are listed, with its own reason"),
    Case("planted-truncated-result", "scenario", "scenario_planted_truncated_result", "observed", "(not shown)",
         issue=25, behaviour="a filed result truncated: `--strict` exits 1 (was: left off the site, exit 0)"),
    Case("planted-result-of-deleted-card", "scenario", "scenario_planted_result_of_deleted_card", "observed",
         "(not shown)", issue=25,
         behaviour="a filed result whose task card is gone: `--strict` exits 1 (was: left off the site, exit 0)"),
    Case("false-exclusion-claim", "scenario", "scenario_false_exclusion_claim", "observed", "decodes under",
         issue=25, behaviour="two negatives claimed undecodable at embedding, within the budget, numbers "
                             "recomputed: `runner submit --data-root` reads them again and refuses the claim; exit 1"),
]

# ================================================================== issue 25 item 8: the rest of the review's list
I25: list[Case] = [
    # ------------------------------------------------------------------ `runner submit` on malformed manifests
    Case("result-manifest-json-list", "result", "result_manifest_json_list", "refused",
         "manifest.json must hold a JSON object", 2,
         behaviour="the run's manifest.json is a JSON list: refused naming the file (was an AttributeError traceback)"),
    Case("result-manifest-nan-label", "result", "result_manifest_nan_label", "refused", "not 0 or 1", 2,
         behaviour="a NaN label in manifest.parquet: refused naming the image (was an IntCastingNaNError traceback)"),
    Case("result-predictions-nan-label", "result", "result_predictions_nan_label", "refused",
         "label that is not 0 or 1", 1,
         behaviour="a NaN label in predictions.parquet: refused naming the image (was `np.float64(nan) vs "
                   "np.int64(0)`)"),
    Case("site-filed-manifest-list", "scenario", "scenario_site_filed_manifest_list", "observed",
         "manifest.json must hold a JSON object", behaviour="`leaderboard build` on a filed manifest.json that is a JSON list: the "
         "result is marked not verified (was an AttributeError traceback)"),
    # ------------------------------------------------------------------ Hugging Face reader
    Case("hf-path-nul", "scenario", "scenario_hf_path_nul", "observed", "b: usable; c: missing-file",
         behaviour="an item's stored path with a NUL byte: with bytes, the bytes name the type and the row is used; "
                   "without, the row is a counted missing-file exclusion (was a ValueError traceback)"),
    Case("hf-path-long-suffix", "scenario", "scenario_hf_path_long_suffix", "observed", "b: usable; c: missing-file",
         behaviour="a 300-character suffix: not used as a file name (the bytes name the type); an item without bytes "
                   "is a counted exclusion (was: the whole data set failed, File name too long)"),
    Case("hf-images-symlink-outside", "scenario", "scenario_hf_images_symlink_outside", "observed",
         "outside the data root", behaviour="hf-images/ a symlink to a folder outside the data root: DataError, "
         "nothing written there (was: images written through the link)"),
    # ------------------------------------------------------------------ `runner demo-data --out`
    Case("demo-data-out-dot", "scenario", "scenario_demo_data_out_dot", "observed", "the folder you are in",
         behaviour="`runner demo-data --out .`: exit 2, one line (was a ValueError traceback)"),
    Case("demo-data-foreign-files", "scenario", "scenario_demo_data_foreign_files", "observed",
         "did not write", behaviour="--out DIR holding demo_data.json and a user's file: refused naming the file, "
                                    "nothing deleted (was: the folder deleted)"),
    Case("demo-data-killed-partial", "scenario", "scenario_demo_data_killed_partial", "observed",
         "left by an interrupted run", behaviour="a `demo-data` killed with SIGKILL leaves .NAME.partial-PID: the "
         "next run removes it and says so (was: left forever)"),
    # ------------------------------------------------------------------ `runner leaderboard build --out`
    Case("site-user-file-in-results", "scenario", "scenario_site_user_file_in_results", "observed",
         "notes.txt kept", behaviour="a user's file in SITE/results/: a rebuild keeps it (was: rmtree of results/)"),
    Case("site-killed-build", "scenario", "scenario_site_killed_build", "observed", "left by an interrupted build",
         behaviour="a build killed half way into a new --out: the next build removes what it had written and says "
                   "so (was: refused, the folder not empty and unmarked)"),
    # ------------------------------------------------------------------ --workers
    Case("workers-bounded-by-work", "scenario", "scenario_workers_bounded_by_work", "observed",
         "embedding: 2 processes for 2 chunks; sampling: 8 processes for 8 files",
         behaviour="--workers 40 for 2 chunks (and 8 files to check): as many processes as pieces of work "
                   "(was: 40 processes)"),
    Case("cli-workers-absurd", "scenario", "scenario_cli_workers_absurd", "observed", "exit 2: error: --workers 100000",
         behaviour="`runner eval --workers 100000`: refused naming the bound (4 per core) (was: hung starting "
                   "processes)"),
    # ------------------------------------------------------------------ DICOM tags pydicom reads but int() refuses
    Case("dicom-rows-two-values", "dicom", "dicom_rows_two_values", "excluded", "bad-header",
         behaviour="Rows with two values: excluded naming the tag (was a TypeError that failed the whole pair)"),
    Case("dicom-samples-two-values", "dicom", "dicom_samples_two_values", "excluded", "bad-header",
         behaviour="SamplesPerPixel with two values: excluded (was a TypeError)"),
    Case("dicom-frames-not-number", "dicom", "dicom_frames_not_number", "excluded", "bad-header",
         behaviour='NumberOfFrames "ab": excluded (was a ValueError that failed the whole pair)'),
    Case("dicom-rescale-slope-zero", "dicom", "dicom_rescale_slope_zero", "excluded", "bad-rescale",
         behaviour="RescaleSlope 0 (every pixel the intercept): excluded (was: embedded as a blank image)"),
    # ------------------------------------------------------------------ PNG
    Case("png-one-pixel", "image", "png_one_pixel", "excluded", "bad-dimensions",
         behaviour="a 1 x 1 PNG: excluded, fewer than MIN_IMAGE_SIDE (2) pixels a side, the DICOM rule "
                   "(runner.data.imaging) (was: embedded)"),
    Case("png-16bit-rgb", "image", "png_16bit_rgb", "excluded", "16-bit-colour",
         behaviour="a 16-bit RGB PNG (Pillow reads colour at 8 bits a channel): excluded (was: cut to 8 bits "
                   "silently)"),
    Case("image-symlink-outside", "scenario", "scenario_image_symlink_outside", "observed",
         "embedding: outside-data-root; sampling: outside-data-root",
         behaviour="an image that is a symlink to a file outside the data root: excluded at sampling and at "
                   "embedding (was: read and sampled)"),
    # ------------------------------------------------------------------ metadata
    Case("meta-duplicate-label-column", "metadata", "meta_duplicate_label_column", "error",
         "column 'effusion' appears 2 times", 2,
         behaviour="two 'effusion' columns: DataError naming the column (was: pandas renamed one effusion.1)"),
    # ------------------------------------------------------------------ embedding cache
    Case("cache-shard-wrong-width", "scenario", "scenario_cache_shard_wrong_width", "observed", "is corrupt",
         behaviour="a shard of width 19 for a 16-wide encoder: quarantined, recomputed (was: every later run failed)"),
    Case("cache-shard-nan", "scenario", "scenario_cache_shard_nan", "observed", "is corrupt",
         behaviour="a shard full of NaN: quarantined, recomputed (was: NaN embeddings reached the classifier)"),
    # ------------------------------------------------------------------ echoed user strings
    Case("cli-task-huge", "scenario", "scenario_cli_task_huge", "observed", "characters long",
         behaviour="`runner sample --task` of 100,000 characters: one short line (was: echoed whole)"),
]
for _case in I25:
    CASES.append(Case(**{**_case.__dict__, "issue": 25}))

# Every reuse is keyed by what made it (issue 25, item 6): the cache key follows the weights; shards carry checksums.
CASES += [
    Case("cache-rows-reversed", "scenario", "scenario_cache_rows_reversed", "observed", "checksum mismatch",
         issue=25, behaviour="a cache shard with its rows reversed (a valid file: AUROC 0.843 -> 0.508, no warning): "
                             "its checksum fails, named on stderr, quarantined, recomputed"),
    Case("cache-changed-checkpoint", "scenario", "scenario_cache_changed_checkpoint", "observed",
         "computed 4 of 4 again; embeddings changed", issue=25,
         behaviour="a timm card with local weights and no sha256 pin, another checkpoint at the same path: the cache "
                   "key holds the weights' sha256, every image is embedded again (was: the old embeddings, "
                   "identical numbers)"),
]

# ================================================================== issue 28: task types
CASES += [
    Case("card-type-unknown", "card", "card_type_unknown", "error", "did you mean 'retrieval'", 2,
         behaviour="type: retreival -> CardError listing the task types; exit 2", issue=28),
    Case("card-type-block-missing", "card", "card_type_block_missing", "error", "missing required field 'zero_shot'",
         2, behaviour="type: zero-shot without its prompts -> CardError; exit 2", issue=28),
    Case("card-multilabel-unknown-label", "card", "card_multilabel_unknown_label", "error",
         "label 'efusion' is not declared", 2,
         behaviour="a multi-label task naming a finding its data set lacks -> CardError with a did-you-mean", issue=28),
    Case("card-sampling-two-modes", "card", "card_sampling_two_modes", "error", "sampling", 2,
         behaviour="positives/negatives and images at once -> CardError (one sampling mode per card)", issue=28),
    Case("card-zero-shot-prompts-for-another-label", "card", "card_zero_shot_prompts_for_another_label", "error",
         "no prompts for the task's label 'effusion'", 2, behaviour="prompts only for edema on an effusion task", issue=28),
    # ------------------------------------------------------------------ card copies in a run or results folder (#29)
    # `runner eval --encoder path.yaml` copies the card into the run folder; submit, show and leaderboard build read
    # the copies back (runner.cli.run_cards). Each case: `runner leaderboard build --results-dir FOLDER` exits 2.
    Case("card-copy-edited-registry-card", "card-copy", "card_copy_edited_registry_card", "error",
         "is a copy of a card that differs from", 2, issue=29,
         behaviour="a copy named like a registry card (pixels) with other content: refused, both files named"),
    Case("card-copy-symlink", "card-copy", "card_copy_symlink", "error", "not a regular file", 2, forbid="root:",
         issue=29, behaviour="a link to /etc/passwd among the copies: refused unread"),
    Case("card-copy-id-not-file-name", "card-copy", "card_copy_id_not_file_name", "error",
         "differs from the file name", 2, issue=29, behaviour="mine.yaml holding id theirs: CardError"),
    Case("card-copy-wrong-kind", "card-copy", "card_copy_wrong_kind", "error", "adapter", 2, issue=29,
         behaviour="a task card among the encoder copies: read as an encoder card, refused by its schema"),
    Case("card-copy-alias-bomb", "card-copy", "card_copy_alias_bomb", "error", "YAML alias", 2, issue=29,
         behaviour="nine levels of nine aliases: refused before anything expands them"),
    Case("card-copy-extends-outside", "card-copy", "card_copy_extends_outside", "error", "`extends` target", 2,
         forbid="root:", issue=29, behaviour="a copy extending ../../etc/passwd: refused, the file unread"),
    Case("card-copy-not-yaml", "card-copy", "card_copy_not_yaml", "error", "not a card copy", 2, forbid="secret",
         issue=29, behaviour="notes.txt among the copies: refused, not read"),
    Case("card-copy-too-many", "card-copy", "card_copy_too_many", "error", "at most 64", 2, issue=29,
         behaviour="65 card copies in one folder: refused (a run uses five at most)"),
    # ------------------------------------------------------------------ card checks kept on disk (registry.card_memo)
    Case("card-memo-tampered", "scenario", "scenario_card_memo_tampered", "observed", "a miss",
         behaviour="a kept card check whose data was edited (seed changed, hash left): a miss, the card checked again"),
    Case("card-memo-garbage", "scenario", "scenario_card_memo_garbage", "observed", "a miss",
         behaviour="a kept card check that is not JSON: a miss, the card checked again, no traceback"),
    Case("card-memo-link", "scenario", "scenario_card_memo_link", "observed", "untouched",
         behaviour="a link among the kept code versions' folders: pruning old versions leaves it and what it points "
                   "to"),
    Case("layout-same-size-and-time", "scenario", "scenario_layout_same_size_and_time", "observed", "read again",
         behaviour="registry/benchmarks.yaml rewritten to the same length with its mtime put back: the new headings "
                   "are read, not the kept layout"),
    Case("layout-fifo", "scenario", "scenario_layout_fifo", "observed", "not a regular file",
         behaviour="registry/benchmarks.yaml is a FIFO: refused without opening it (before: passed over for the "
                   "project's file in silence, and the file was read unbounded ahead of its bounded parse)"),
    Case("floors-fifo", "scenario", "scenario_floors_fifo", "observed", "not a regular file",
         behaviour="leaderboard/floors.yaml is a FIFO: `file_floors` refuses it before evaluating anything (it was "
                   "read with read_text and waited for a writer forever)"),
]


def markdown_table() -> str:
    rows = ["| # | area | case | behaviour |", "| --- | --- | --- | --- |"]
    rows += [f"| {i} | {c.area} | `{c.id}` | {c.behaviour} |" for i, c in enumerate(CASES, 1)]
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
