"""Parameter specs, validation and the package's parameters file."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from headpose_ros.estimator.config import EstimatorConfig
from headpose_ros.ros import params
from headpose_ros.ros.params import SPECS, ParamError


def test_every_estimator_setting_is_a_parameter_with_the_same_default():
    fields = {f.name for f in dataclasses.fields(EstimatorConfig)}
    mapped = {s.estimator_field for s in SPECS.values() if s.estimator_field}
    assert mapped == fields
    assert params.estimator_config(params.defaults()) == EstimatorConfig()


def test_specs_are_complete_and_defaults_valid():
    for spec in SPECS.values():
        assert spec.description.strip(), spec.name
        assert isinstance(spec.default, spec.type), spec.name
        assert params.validate_value(spec.name, spec.default) == spec.default
        if spec.type in (int, float) and spec.min is not None:
            assert spec.min <= spec.default <= spec.max, spec.name
    assert params.validate_all({}) == params.defaults()


def test_package_yaml_documents_every_parameter_with_its_default():
    data = yaml.safe_load(params.SOURCE_CONFIG.read_text())
    flat = params.parameters_from_yaml(data)
    assert set(flat) == set(SPECS)
    assert flat == params.defaults()
    text = params.SOURCE_CONFIG.read_text()
    for spec in SPECS.values():  # each one has a comment line right above it
        key = spec.name.split(".")[-1] + ":"
        lines = text.splitlines()
        idx = next(i for i, line in enumerate(lines) if line.strip().startswith(key))
        assert lines[idx - 1].strip().startswith("#"), spec.name
    assert params.load_params_file(params.SOURCE_CONFIG) == params.defaults()


@pytest.mark.parametrize("name,value,match", [
    ("min_face_score", 1.5, r"\[0, 1\]"),
    ("min_face_score", "high", "must be a number"),
    ("max_faces", 0, r"\[1, 256\]"),
    ("max_faces", 2.0, "must be an integer"),
    ("max_faces", True, "must be an integer"),
    ("publish_tf", 1, "must be a boolean"),
    ("device", "tpu", "auto, cpu, gpu"),
    ("detector", "haar", "one of"),
    ("primary_face", "nearest", "largest, longest_tracked"),
    ("image_transport", "theora", "raw, compressed"),
    ("tf_prefix", "cam/1", "letters, digits"),
    ("detector_options", "[1, 2]", "YAML mapping"),
    ("detector_options", "{a: [", "not valid YAML"),
    ("model", "  ", "empty"),
    ("max_rate", float("nan"), "NaN"),
    ("max_rate", -1.0, r"\[0, 1000\]"),
    ("no_such_parameter", 1, "unknown parameter"),
])
def test_bad_values_are_refused_with_a_clear_message(name, value, match):
    with pytest.raises(ParamError, match=match):
        params.validate_value(name, value)


def test_int_is_widened_for_float_parameters():
    assert params.validate_value("max_rate", 5) == 5.0
    assert isinstance(params.validate_value("max_rate", 5), float)


def test_runtime_updates_refuse_startup_only_parameters_and_inconsistent_thresholds():
    current = params.defaults()
    assert params.validate_update(current, {"max_rate": 2.0})["max_rate"] == 2.0
    assert params.validate_update(current, {"use_sim_time": True}) == current  # ROS's own: ignored
    with pytest.raises(ParamError, match="cannot change while the node runs"):
        params.validate_update(current, {"device": "cpu"})
    assert params.validate_update(current, {"device": "auto"})["device"] == "auto"  # unchanged value is fine
    assert params.validate_update(current, {"device": "cpu"}, running=False)["device"] == "cpu"
    with pytest.raises(ParamError, match="latency_warn_ms .* must not exceed"):
        params.validate_update(current, {"diagnostics.latency_warn_ms": 3000.0})


def test_options_strings_become_backend_options():
    values = params.validate_all({"detector_options": "{models: full, min_score: 0.4}"})
    assert params.estimator_config(values).detector_options == {"models": "full", "min_score": 0.4}
    assert params.parse_options("keypoint_options", "") == {}


def test_parameter_files_node_sections_and_plain_mappings(tmp_path):
    ros_file = tmp_path / "p.yaml"
    ros_file.write_text(yaml.safe_dump({
        "/**": {"ros__parameters": {"max_faces": 3, "smoothing": {"enabled": True}}},
        "/robot/headpose_node": {"ros__parameters": {"max_faces": 4, "use_sim_time": True}},
        "other_node": {"ros__parameters": {"max_faces": 99}},
    }))
    values = params.load_params_file(ros_file)
    assert values["max_faces"] == 4 and values["smoothing.enabled"] is True
    plain = tmp_path / "plain.yaml"
    plain.write_text("device: cpu\ntracking:\n  max_missed: 2\n")
    assert params.load_params_file(plain)["tracking.max_missed"] == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("max_faces: 1000\n")
    with pytest.raises(ParamError, match=r"bad.yaml: parameter max_faces must lie in \[1, 256\]"):
        params.load_params_file(bad)
    with pytest.raises(ParamError, match="does not exist"):
        params.load_params_file(tmp_path / "missing.yaml")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("max_face: 3\n")
    with pytest.raises(ParamError, match="unknown parameter 'max_face'"):
        params.load_params_file(unknown)


def test_spec_table_rows():
    rows = params.spec_table()
    assert len(rows) == len(SPECS)
    assert {"name", "type", "default", "range", "runtime", "description"} <= set(rows[0])


def test_docs_parameter_table_lists_every_parameter_once():
    """docs/ros.md's parameter table and the node's parameters do not drift apart."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "ros.md").read_text(encoding="utf-8")
    section = text.split("\n## Parameters\n", 1)[1].split("\n## ", 1)[0]
    names = re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE)
    assert sorted(names) == sorted(SPECS)
