"""The `table` dataset kind (runner/data/table_kind.py): derived columns, several rows per image, readers, a label
table with its own id column, list-text labels, and the malformed and malicious cards/tables it must refuse."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from runner.data import read_index
from runner.data.tables import DataError


def card(**over) -> dict:
    base = {
        "id": "toy", "kind": "table", "title": "Toy", "synthetic": True, "access": "made by the test",
        "files": {"metadata": ["meta.csv"]},
        "derive": {"relpath": {"template": "imgs/{Dir}/{Name}"},
                   "patient": {"from": "Path", "extract": "^(p\\d+)/"},
                   "view": {"from": ["AP/PA", "Frontal/Lateral"], "map": {"Lateral": "LATERAL"}},
                   "year": {"from": "Date", "extract": "^(\\d{4})"},
                   "age": {"from": "year", "minus": "Birth"}},
        "columns": {"image_id": "Name", "patient_id": "patient", "path": "relpath", "view": "view", "age": "age"},
        "labels": {"effusion": {"column": "Effusion"},
                   "edema": {"column": "Findings", "contains": ["pulmonary edema", "edema"], "separator": ",",
                             "strip": "[]'"}},
    }
    for key, value in over.items():
        base[key] = value
    return base


ROWS = [  # Name, Dir, Path, AP/PA, Frontal/Lateral, Date, Birth, Effusion, Findings
    ("a.png", "0", "p1/s1/a.png", "PA", "Frontal", "20150101", "1950", "1.0", "['pulmonary edema', ' normal']"),
    ("b.png", "0", "p1/s2/b.png", "", "Lateral", "20160101", "1950", "-1.0", "['pericardial effusion']"),
    ("c.png", "1", "p2/s1/c.png", "AP", "Frontal", "20170101", "1980", "", "['normal']"),
    ("d.png", "1", "p3/s1/d.png", "AP", "Frontal", "20170101", "", "0.0", ""),
]
HEADER = ["Name", "Dir", "Path", "AP/PA", "Frontal/Lateral", "Date", "Birth", "Effusion", "Findings"]


def write(folder, name="meta.csv", rows=ROWS, header=HEADER):
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=header).to_csv(folder / name, index=False)
    return folder


def test_a_table_read_again_in_the_process_follows_its_bytes(tmp_path):
    """Tables and derived columns are remembered within a process by the bytes of their files (runner.data.tables
    .remembered): a second card over the same file reuses them; an edited file is read again, derived again."""
    from runner.data import tables

    root = write(tmp_path)
    first = read_index(card(), root).frame
    assert read_index(card(id="toy-again"), root).frame.equals(first)
    assert any(key[0] == "derive" for key in tables._REMEMBERED)  # the second read was served from memory
    edited = [("a.png", "0", "p9/s1/a.png", *ROWS[0][3:7], "0.0", ROWS[0][8]), *ROWS[1:]]
    again = read_index(card(), write(tmp_path, rows=edited)).frame.set_index("image_id")
    assert again.loc["a.png", "patient_id"] == "p9" and again.loc["a.png", "effusion"] == 0.0
    assert read_index(card(), write(tmp_path)).frame.equals(first)  # the first bytes again: as first read


def test_derived_columns_labels_and_lists(tmp_path):
    index = read_index(card(), write(tmp_path)).frame.set_index("image_id")
    assert index.loc["a.png", "path"] == "imgs/0/a.png"
    assert list(index["patient_id"]) == ["p1", "p1", "p2", "p3"]
    assert list(index["view"]) == ["PA", "LATERAL", "AP", "AP"]   # AP/PA, else Frontal/Lateral mapped
    assert index.loc["a.png", "age"] == 65.0 and np.isnan(index.loc["d.png", "age"])  # blank birth year: no age
    assert index["effusion"].tolist()[:2] == [1.0, -1.0] and np.isnan(index.loc["c.png", "effusion"])
    # list items match exactly: 'pericardial effusion' is not edema, 'normal' is not; blank list stays blank
    assert index.loc["a.png", "edema"] == 1.0 and index.loc["b.png", "edema"] == 0.0
    assert np.isnan(index.loc["d.png", "edema"])


def test_a_card_change_changes_the_index(tmp_path):
    """Each derive field does something: a different map, template or list term gives a different index."""
    root = write(tmp_path)
    other = card()
    other["derive"]["view"]["map"] = {"Lateral": "LL"}
    other["derive"]["relpath"]["template"] = "{Name}"
    other["labels"]["edema"]["contains"] = ["pericardial effusion"]
    index = read_index(other, root).frame.set_index("image_id")
    assert index.loc["b.png", "view"] == "LL" and index.loc["a.png", "path"] == "a.png"
    assert index.loc["b.png", "edema"] == 1.0 and index.loc["a.png", "edema"] == 0.0


def test_metadata_features_come_from_the_card(tmp_path):
    """metadata_features reach the index as meta_<name>: a table column, a derived column, a per-reader table's first
    row; a feature whose column the table lacks gets no column (the metadata baseline names it), and none declared
    gives none."""
    root = write(tmp_path)
    features = [{"name": "view", "column": "view", "type": "categorical"},        # derived
                {"name": "birth", "column": "Birth", "type": "numeric"},          # read only for the feature
                {"name": "scanner", "column": "Manufacturer", "type": "categorical"}]  # not in the table
    index = read_index(card(metadata_features=features), root).frame.set_index("image_id")
    assert list(index["meta_view"]) == ["PA", "LATERAL", "AP", "AP"]
    assert index.loc["a.png", "meta_birth"] == 1950.0 and np.isnan(index.loc["d.png", "meta_birth"])
    assert "meta_scanner" not in index.columns
    assert not [c for c in read_index(card(), root).frame.columns if c.startswith("meta_")]
    reads = read_index(reads_card(metadata_features=[{"name": "rater", "column": "rad_id", "type": "categorical"}]),
                       write(tmp_path / "reads", rows=READS, header=["image_id", "rad_id", "class_name"]))
    assert reads.frame.set_index("image_id")["meta_rater"].to_dict() == {"img1": "R1", "img2": "R1", "img3": "R1",
                                                                         "img4": "R1"}


READS = [("img1", "R1", "Effusion"), ("img1", "R2", "Effusion"), ("img1", "R3", "No finding"),
         ("img2", "R1", "Effusion"), ("img2", "R4", "No finding"), ("img2", "R5", "No finding"),
         ("img3", "R1", "No finding"), ("img3", "R2", "No finding"), ("img3", "R6", "No finding"),
         ("img4", "R1", "Effusion"), ("img4", "R1", "Effusion"), ("img4", "R2", "No finding")]  # one reader, 2 boxes


def reads_card(**over) -> dict:
    return card(derive={"relpath": {"template": "train/{image_id}.dicom"}, "view": {"value": "PA"}},
                columns={"image_id": "image_id", "patient_id": "image_id", "path": "relpath", "view": "view"},
                labels={"effusion": {"column": "class_name", "contains": "Effusion"}},
                **{"reads": {"rater_column": "rad_id", "positive_min": 2}, **over})


def test_reads_policy_counts_distinct_readers(tmp_path):
    root = write(tmp_path, rows=READS, header=["image_id", "rad_id", "class_name"])
    index = read_index(reads_card(), root).frame.set_index("image_id")
    assert index["effusion"].to_dict() == {"img1": 1.0, "img2": -1.0, "img3": 0.0, "img4": -1.0}
    assert set(index["view"]) == {"PA"} and index.loc["img1", "path"] == "train/img1.dicom"
    one = reads_card(reads={"rater_column": "rad_id", "positive_min": 1})
    assert read_index(one, root).frame.set_index("image_id")["effusion"].to_dict() == \
        {"img1": 1.0, "img2": 1.0, "img3": 0.0, "img4": 1.0}
    # without `reads`, rows combine as "any row positive"
    anyrow = reads_card()
    del anyrow["reads"]
    assert read_index(anyrow, root).frame.set_index("image_id")["effusion"].to_dict() == \
        {"img1": 1.0, "img2": 1.0, "img3": 0.0, "img4": 1.0}


def test_label_table_with_its_own_id_column_and_other_values(tmp_path):
    write(tmp_path, rows=[("x1", "PA"), ("x2", "AP"), ("x3", "AP")], header=["PatientID", "ViewPosition"])
    write(tmp_path, "labels.csv", rows=[("x1", "1"), ("x1", "1"), ("x2", "0")], header=["patientId", "Target"])
    toy = card(files={"metadata": ["meta.csv"], "labels": ["labels.csv"]}, label_table_image_id="patientId",
               derive={"relpath": {"template": "{PatientID}.dcm"}},
               columns={"image_id": "PatientID", "patient_id": "PatientID", "path": "relpath", "view": "ViewPosition"},
               labels={"opacity": {"table": "labels", "column": "Target"}})
    index = read_index(toy, tmp_path).frame.set_index("image_id")
    assert index["opacity"].iloc[:2].tolist() == [1.0, 0.0] and np.isnan(index.loc["x3", "opacity"])  # no rows: blank
    write(tmp_path, "labels.csv", rows=[("x1", "1 2 3 4"), ("x2", "-1")], header=["patientId", "Mask"])
    masks = copy.deepcopy(toy)
    masks["labels"] = {"opacity": {"table": "labels", "column": "Mask", "negative": ["-1"], "other_values": "positive"}}
    assert read_index(masks, tmp_path).frame.set_index("image_id")["opacity"].iloc[:2].tolist() == [1.0, 0.0]
    masks["labels"]["opacity"]["other_values"] = "error"
    with pytest.raises(DataError, match="values the card does not map"):
        read_index(masks, tmp_path)


# Malformed and malicious cards or tables: each a one-line DataError naming the problem, never a traceback.
BAD = [
    ("bad-regex", lambda c: c["derive"]["patient"].update(extract="(p\\d+"), "not a regular expression"),
    ("two-groups", lambda c: c["derive"]["patient"].update(extract="(p)(\\d+)"), "exactly one capture group"),
    ("unknown-source", lambda c: c["derive"]["patient"].update({"from": "Nope"}), "column 'Nope'"),
    ("replaces-column", lambda c: c["derive"].update(Name={"value": "x"}), "would replace the column 'Name'"),
    ("template-escapes", lambda c: c["derive"]["relpath"].update(template="../../{Name}"), "leave the data root"),
    ("template-absolute", lambda c: c["derive"]["relpath"].update(template="/etc/{Name}"), "leave the data root"),
    ("blank-path", lambda c: c["derive"]["relpath"].update(template="{Birth}"), "have no path"),
    ("no-path-column", lambda c: c["columns"].pop("path"), "must name its relative file path column"),
    ("blank-patient", lambda c: c["derive"]["patient"].update(extract="^(q\\d+)/"), "have no patient_id"),
]


@pytest.mark.parametrize("name,change,expect", BAD, ids=[b[0] for b in BAD])
def test_bad_cards_and_tables_are_one_line_errors(tmp_path, name, change, expect):
    bad = card()
    change(bad)
    with pytest.raises(DataError) as raised:
        read_index(bad, write(tmp_path))
    assert expect in str(raised.value) and "\n" not in str(raised.value)


def test_reader_refuses_missing_label_table_id(tmp_path):
    write(tmp_path, rows=[("x1", "PA")], header=["PatientID", "ViewPosition"])
    write(tmp_path, "labels.csv", rows=[("", "1")], header=["patientId", "Target"])
    toy = card(files={"metadata": ["meta.csv"], "labels": ["labels.csv"]}, label_table_image_id="patientId",
               derive={"relpath": {"template": "{PatientID}.dcm"}},
               columns={"image_id": "PatientID", "patient_id": "PatientID", "path": "relpath", "view": "ViewPosition"},
               labels={"opacity": {"table": "labels", "column": "Target"}})
    with pytest.raises(DataError, match="have no image id"):
        read_index(toy, tmp_path)
