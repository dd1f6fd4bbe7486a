"""The hyperparameter schema: SageMaker's names, defaults and rules, and the docs generated from it."""

import pytest

from helpers import REPO, generated_section
from roost.algorithm.hyperparameters import (
    HyperparameterError,
    HyperParameters,
    markdown_table,
    parse_hyperparameters,
    parse_key_values,
)

BASE = {"num_classes": "4", "num_training_samples": "322"}


# name: (default, [(valid string, parsed)], [invalid strings])
TABLE = {
    "augmentation_type": (
        None,
        [("crop", "crop"), ("crop_color", "crop_color"), ("crop_color_transform", "crop_color_transform")],
        ["flip", ""],
    ),
    "beta_1": (0.9, [("0.5", 0.5), ("0", 0.0), ("1", 1.0)], ["1.5", "-0.1", "abc"]),
    "beta_2": (0.999, [("0.99", 0.99)], ["2"]),
    "checkpoint_frequency": (None, [("5", 5)], ["0", "-1", "x", "1.5"]),
    "early_stopping": (False, [("True", True), ("False", False), ("true", True), ("1", True)], ["yes", "2"]),
    "early_stopping_min_epochs": (10, [("3", 3)], ["0"]),
    "early_stopping_patience": (5, [("2", 2)], ["0", "a"]),
    "early_stopping_tolerance": (0.0, [("0.01", 0.01)], ["1.1"]),
    "epochs": (30, [("12", 12), ("12.0", 12)], ["0", "12.5", "ten"]),
    "eps": (1e-8, [("1e-6", 1e-6)], ["2"]),
    "gamma": (0.9, [("0.95", 0.95)], ["-1"]),
    "image_shape": (
        (3, 224, 224),
        [("3,224,224", (3, 224, 224)), ("3, 180, 320", (3, 180, 320)), ("1,256,256", (1, 256, 256))],
        ["224,224", "3x224x224", "2,224,224", "3,0,224"],
    ),
    "kv_store": (None, [("dist_sync", "dist_sync"), ("dist_async", "dist_async")], ["device", "local"]),
    "learning_rate": (0.1, [("0.001", 0.001)], ["1.01", "fast"]),
    "lr_scheduler_factor": (0.1, [("0.5", 0.5)], ["3"]),
    "lr_scheduler_step": (
        None,
        [("10, 20", (10, 20)), ("5", (5,)), ("3,6,9", (3, 6, 9))],
        ["20,10", "10,10", "0,5", "a,b"],
    ),
    "mini_batch_size": (32, [("8", 8)], ["0", "-4"]),
    "momentum": (0.9, [("0", 0.0)], ["1.2"]),
    "multi_label": (0, [("1", 1), ("0", 0)], ["2", "maybe"]),
    "num_layers": (152, [("50", 50), ("101", 101)], ["0", "x"]),
    "optimizer": ("sgd", [("adam", "adam"), ("rmsprop", "rmsprop"), ("nag", "nag")], ["adagrad", "SGD"]),
    "precision_dtype": ("float32", [("float16", "float16")], ["bfloat16"]),
    "resize": (None, [("256", 256)], ["0", "big"]),
    "top_k": (None, [("2", 2), ("4", 4)], ["1", "0"]),
    "use_pretrained_model": (0, [("1", 1)], ["3"]),
    "use_weighted_loss": (0, [("1", 1)], ["-1"]),
    "weight_decay": (0.0001, [("0.0005", 0.0005)], ["5"]),
}


def test_table_covers_every_hyperparameter():
    assert set(TABLE) | {"num_classes", "num_training_samples", "model_prefix"} == set(HyperParameters.model_fields)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_default_valid_invalid(name):
    default, valid, invalid = TABLE[name]
    assert getattr(parse_hyperparameters(BASE), name) == default
    for text, parsed in valid:
        assert getattr(parse_hyperparameters({**BASE, name: text}), name) == parsed, text
    for text in invalid:
        with pytest.raises(HyperparameterError) as err:
            parse_hyperparameters({**BASE, name: text})
        msg = str(err.value)
        assert name in msg and (repr(text) in msg or text in msg), msg


def test_required():
    with pytest.raises(HyperparameterError, match="num_classes is required; num_training_samples is required"):
        parse_hyperparameters({})


def test_unknown_is_rejected_with_suggestion_and_sagemaker_keys_are_ignored():
    with pytest.raises(
        HyperparameterError, match="unknown hyperparameter 'learnig_rate'; did you mean 'learning_rate'"
    ):
        parse_hyperparameters({**BASE, "learnig_rate": "0.1"})
    hp = parse_hyperparameters({**BASE, "_tuning_objective_metric": "validation:accuracy", "sagemaker_region": "x"})
    assert hp.num_classes == 4


@pytest.mark.parametrize(
    "extra,message",
    [
        ({"checkpoint_frequency": "40"}, "checkpoint_frequency=40 is larger than epochs=30"),
        ({"top_k": "5"}, "top_k=5 is larger than num_classes=4"),
        ({"num_training_samples": "16"}, "mini_batch_size=32 is larger than num_training_samples=16"),
        ({"image_shape": "3,28,28", "num_layers": "102"}, "num_layers=102 with image_shape=3,28,28"),
        ({"image_shape": "3,28,28", "num_layers": "17"}, "use 6n\\+2 below 164"),
        ({"image_shape": "3,64,64", "num_layers": "20"}, "use one of 18, 34, 50, 101, 152, 200, 269"),
        ({"resize": "200"}, "resize=200 is smaller than the image_shape 224x224"),
    ],
)
def test_cross_field_rules(extra, message):
    with pytest.raises(HyperparameterError, match=message):
        parse_hyperparameters({**BASE, **extra})


@pytest.mark.parametrize(
    "name,value,message",
    [
        ("num_classes", "1e12", "expected an integer <= 100000"),
        ("image_shape", "3,20000,20000", "at most 4096 pixels"),
        ("num_layers", "9000002", "expected an integer <= 1001"),
        ("resize", "1e9", "expected an integer <= 8192"),
        ("epochs", "1e12", "expected an integer <= 100000"),
        ("mini_batch_size", "100000", "expected an integer <= 8192"),
        ("num_training_samples", str(2**40), "expected an integer <= 2147483647"),
        ("lr_scheduler_step", "10, 1000000000", "epoch numbers from 1 to 100000"),
    ],
)
def test_runaway_values_are_refused_before_any_work(name, value, message):
    with pytest.raises(HyperparameterError) as err:
        parse_hyperparameters({**BASE, name: value})
    assert f"{name}={value!r} is not valid: " in str(err.value) and message in str(err.value)


def test_cross_field_valid_combinations():
    assert parse_hyperparameters({**BASE, "image_shape": "3,28,28", "num_layers": "20"}).num_layers == 20
    assert parse_hyperparameters({**BASE, "image_shape": "3,32,32", "num_layers": "18"}).num_layers == 18
    assert parse_hyperparameters({**BASE, "image_shape": "3,28,28", "num_layers": "18"}).num_layers == 18  # seed 002
    assert parse_hyperparameters({**BASE, "resize": "224"}).resize == 224
    assert parse_hyperparameters({**BASE, "epochs": "2", "checkpoint_frequency": "2"}).checkpoint_frequency == 2


def test_native_python_values_and_string_roundtrip():
    hp = parse_hyperparameters(
        {
            "num_classes": 10,
            "num_training_samples": 100,
            "image_shape": (3, 32, 32),
            "num_layers": 20 + 0 * 1,
            "early_stopping": True,
            "lr_scheduler_step": [2, 4],
        }
        | {"image_shape": "3,28,28"}
    )
    again = parse_hyperparameters(hp.to_strings())
    assert again == hp
    assert hp.to_strings()["lr_scheduler_step"] == "2,4" and hp.to_strings()["early_stopping"] == "True"


def test_key_values_and_docs_table():
    assert parse_key_values(["epochs=3", "image_shape=3,28,28"]) == {"epochs": "3", "image_shape": "3,28,28"}
    with pytest.raises(HyperparameterError, match="not key=value"):
        parse_key_values(["epochs"])
    table = markdown_table()
    assert "| `num_classes` | **required** |" in table and "| `image_shape` | `3,224,224` |" in table


def test_docs_table_is_up_to_date():

    generated = generated_section("hyperparameters.md", "hyperparameters")
    assert generated.strip() == markdown_table().strip(), "run scripts/generate-docs.py"


def test_compatibility_table_lists_every_hyperparameter():

    doc = (REPO / "docs" / "compatibility.md").read_text()
    for name in HyperParameters.model_fields:
        assert f"| `{name}` | supported |" in doc, name


def test_problems_are_also_kept_by_the_hyperparameter_they_concern():
    with pytest.raises(HyperparameterError) as caught:
        parse_hyperparameters({"num_classes": "3", "num_training_samples": "4", "mini_batch_size": "8", "epochs": "x"})
    assert set(caught.value.fields) == {"epochs"}  # the rule between two names waits for valid values
    with pytest.raises(HyperparameterError) as caught:
        parse_hyperparameters({"num_classes": "3", "num_training_samples": "4", "mini_batch_size": "8", "epohcs": "1"})
    fields = caught.value.fields
    assert "did you mean 'epochs'" in fields["epohcs"][0]
    assert "larger than num_training_samples=4" in fields["mini_batch_size"][0]
    assert sum(map(len, fields.values())) == len(caught.value.problems)
