"""Loading and converting model.tar.gz files: SageMaker's become Roost's with the same predictions."""

import subprocess
import sys
import tarfile

import numpy as np
import pytest

from roost.formats import artifact as artifact_format
from roost.formats.artifact import ArtifactError
from roost.models.artifact import import_sagemaker, load
from roost.serving.predictor import Predictor


@pytest.mark.slow
def test_import_sagemaker_keeps_predictions(mxnet_fixtures, tmp_path):
    src = mxnet_fixtures / "model" / "resnet164_3x28x28_bottleneck" / "model.tar.gz"
    out = import_sagemaker(src, tmp_path / "roost.tar.gz")
    with tarfile.open(out) as tar:
        names = sorted(tar.getnames())
    assert names == ["image-classification-0001.safetensors", "model-shapes.json", "roost-model.json"]
    _, meta = load(out)
    assert (meta.num_layers, meta.image_shape, meta.num_classes) == (164, [3, 28, 28], 4)
    img = (mxnet_fixtures / "model" / "test_2.png").read_bytes()
    a = Predictor.load(src).predict([img])[0].probabilities
    b = Predictor.load(out).predict([img])[0].probabilities
    np.testing.assert_allclose(a, b, atol=1e-6)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "roost",
            "import-sagemaker",
            str(tmp_path / "roost.tar.gz"),
            "-o",
            str(tmp_path / "x.tar.gz"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and "not a SageMaker image-classification artifact" in r.stderr


def _repack(src, out, replace=None, extra=None):
    """A copy of the artifact ``src`` with some members replaced and others added."""
    import io

    replace, extra = replace or {}, extra or {}
    with tarfile.open(src) as tin, tarfile.open(out, "w:gz") as tout:
        for m in tin.getmembers():
            data = replace.get(m.name, tin.extractfile(m).read())
            info = tarfile.TarInfo(m.name)
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))
        for name, data in extra.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))
    return out


@pytest.mark.parametrize("shapes", [b"{}", b"[]", b"[{}]", b'[{"shape": [1, 3, 28]}]', b"not json"])
def test_a_broken_model_shapes_file_is_a_clear_error(mxnet_fixtures, tmp_path, shapes):
    src = mxnet_fixtures / "model" / "resnet20_3x28x28" / "model.tar.gz"
    bad = _repack(src, tmp_path / "bad.tar.gz", replace={"model-shapes.json": shapes})
    with pytest.raises(ArtifactError, match="model-shapes.json"):
        load(bad)


def test_members_are_read_only_when_asked_and_within_limits(mxnet_fixtures, tmp_path, monkeypatch):
    """A junk member nobody reads costs nothing; one that is read is refused above the member limit."""
    monkeypatch.setattr(artifact_format, "MAX_MEMBER_BYTES", 3 * 1024 * 1024)
    src = mxnet_fixtures / "model" / "resnet20_3x28x28" / "model.tar.gz"
    padded = _repack(src, tmp_path / "padded.tar.gz", extra={"junk.bin": b"\0" * (8 * 1024 * 1024)})
    model, meta = load(padded)  # the 8 MB member is never read
    assert meta.num_classes == 4
    with pytest.raises(ArtifactError, match="junk.bin is 8,388,608 bytes, more than the 3,145,728"):
        artifact_format.read_members(padded)["junk.bin"]
    monkeypatch.setattr(artifact_format, "MAX_MEMBERS", 3)
    with pytest.raises(ArtifactError, match="more than 3 files in the archive"):
        artifact_format.read_members(padded)


def test_a_checkpoint_far_larger_than_its_network_is_refused(tmp_path):
    """roost-model.json names the checkpoint: a bomb in its place is refused before it is read."""
    from roost.formats.artifact import ModelMeta, pack_model_dir, serving_preprocessing
    from roost.models.artifact import save_checkpoint
    from roost.models.resnet import ResNet

    folder = tmp_path / "model"
    folder.mkdir()
    save_checkpoint(ResNet(2, 8, (3, 16, 16)), folder / "image-classification-0001.safetensors")
    meta = ModelMeta(
        num_classes=2,
        num_layers=8,
        image_shape=[3, 16, 16],
        hyperparameters={},
        checkpoints=[],
        model="image-classification-0001.safetensors",
        preprocessing=serving_preprocessing([3, 16, 16]),
    )
    (folder / "roost-model.json").write_text(meta.to_json())
    assert load(pack_model_dir(folder, tmp_path / "ok.tar.gz"))[1].num_layers == 8
    (folder / "image-classification-0001.safetensors").write_bytes(b"\0" * (4 * 1024 * 1024))
    with pytest.raises(ArtifactError, match="more than the .* a model file may have"):
        load(pack_model_dir(folder, tmp_path / "bomb.tar.gz"))
