import numpy as np
import pytest

from asdcore.errors import ArtifactError
from asdcore.features import FeatureSet, load_features, save_features
from asdcore.interfaces import Scorer
from asdcore.submission import DECISIONS, SCORES, read_groups, write_groups


def read_scores(directory, test):
    return read_groups(directory, SCORES, Scorer(None).groups("fan", test), test.names)


def features():
    return FeatureSet(
        embedding=np.eye(4, 3),
        path=["fan/test/a.wav", "fan/test/b.wav", "fan/test/c.wav", "fan/test/d.wav"],
        section=[0, 0, 1, 1], domain=[0, 1, 0, 1], is_anomaly=[0, 1, 0, 1], attribute=["x", "", "y", ""],
    )


def test_round_trip_is_exact(tmp_path):
    test = features()
    scores = np.array([0.1, 1 / 3, np.pi, 1e-17])
    groups = Scorer(None).groups("fan", test)
    assert write_groups(tmp_path, SCORES, groups, test.names, scores) == [
        "anomaly_score_fan_section_00_test.csv", "anomaly_score_fan_section_01_test.csv"]
    assert (tmp_path / "anomaly_score_fan_section_00_test.csv").read_text() == "a.wav,0.1\nb.wav,0.3333333333333333\n"
    assert np.array_equal(read_scores(tmp_path, test), scores)


def test_rows_are_joined_by_name_not_order(tmp_path):
    (tmp_path / "anomaly_score_fan_section_00_test.csv").write_text("b.wav,2\na.wav,1\n")
    (tmp_path / "anomaly_score_fan_section_01_test.csv").write_text("d.wav,4\nc.wav,3\n")
    assert read_scores(tmp_path, features()).tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "text, message",
    [
        ("a.wav,1\n", r"section_00_test.csv: file names do not match .*missing: b.wav"),
        ("a.wav,1\nb.wav,2\nz.wav,3\n", r"unexpected: z.wav"),
        ("a.wav,1\na.wav,2\nb.wav,3\n", r"section_00_test.csv:2: duplicate file name 'a.wav'"),
        ("file,score\na.wav,1\nb.wav,2\n", r"section_00_test.csv:1: 'score' is not a number \(these files have no header row\)"),
        ("a.wav,1\nb.wav,high\n", r"section_00_test.csv:2: 'high' is not a number"),
        ("a.wav,1\nb.wav,nan\n", r"section_00_test.csv:2: 'nan' is not finite"),
        ("a.wav;1\nb.wav;2\n", r"section_00_test.csv:1: expected 'file name,value'"),
    ],
)
def test_malformed_score_files(tmp_path, text, message):
    (tmp_path / "anomaly_score_fan_section_00_test.csv").write_text(text)
    (tmp_path / "anomaly_score_fan_section_01_test.csv").write_text("c.wav,3\nd.wav,4\n")
    with pytest.raises(ArtifactError, match=message):
        read_scores(tmp_path, features())


def test_missing_score_file(tmp_path):
    with pytest.raises(ArtifactError, match="section_00_test.csv: cannot read anomaly_score file"):
        read_scores(tmp_path, features())


def test_feature_set_h5_round_trip(tmp_path):
    test = features()
    test.frontend_score = np.array([1.0, 2.0, 3.0, 4.0])
    save_features(tmp_path / "features.h5", {"train": features(), "test": test})
    loaded = load_features(tmp_path / "features.h5", "test")
    assert loaded.embedding.dtype == np.float32 and np.array_equal(loaded.embedding, test.embedding)
    assert list(loaded.path) == list(test.path) and list(loaded.attribute) == ["x", "", "y", ""]
    assert loaded.frontend_score.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert load_features(tmp_path / "features.h5", "train").frontend_score is None
    with pytest.raises(ArtifactError, match="cannot read split 'valid'"):
        load_features(tmp_path / "features.h5", "valid")
    with pytest.raises(ValueError, match="section has 2 rows, embedding has 4"):
        FeatureSet(embedding=np.zeros((4, 2)), path=["a"] * 4, section=[0, 1], domain=[0] * 4,
                   is_anomaly=[0] * 4, attribute=[""] * 4)


def test_decision_files(tmp_path):
    test = features()
    groups = Scorer(None).groups("fan", test)
    write_groups(tmp_path, DECISIONS, groups, test.names, np.array([0, 1, 1, 0]))
    assert (tmp_path / "decision_result_fan_section_01_test.csv").read_text() == "c.wav,1\nd.wav,0\n"
    assert read_groups(tmp_path, DECISIONS, groups, test.names).tolist() == [0, 1, 1, 0]
    (tmp_path / "decision_result_fan_section_00_test.csv").write_text("a.wav,0\nb.wav,0.5\n")
    with pytest.raises(ArtifactError, match="section_00_test.csv:2: a decision must be 0 or 1"):
        read_groups(tmp_path, DECISIONS, groups, test.names)


def test_rename_maps_full_names_back(tmp_path):
    test = features()
    (tmp_path / "anomaly_score_fan_section_00_test.csv").write_text("full_a.wav,1\nb.wav,2\n")
    (tmp_path / "anomaly_score_fan_section_01_test.csv").write_text("c.wav,3\nd.wav,4\n")
    groups = Scorer(None).groups("fan", test)
    values = read_groups(tmp_path, SCORES, groups, test.names, rename={"full_a.wav": "a.wav"})
    assert values.tolist() == [1, 2, 3, 4]
