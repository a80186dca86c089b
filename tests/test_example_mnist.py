"""The README's training command, on a slice of MNIST: it runs end to end and reports a test accuracy."""


import pytest

from dlgpu.examples import mnist


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_example_trains_and_reports(model, tmp_path, capsys, real_mnist_root):
    path = tmp_path / "m.dlgpu"
    accuracy = mnist.main(["--model", model, "--epochs", "1", "--samples", "3000", "--device", "cpu",
                           "--save", str(path)])
    out = capsys.readouterr().out
    assert "test accuracy" in out and path.exists()
    # 2700 training images (validation takes 10 %), one epoch; measured over seeds 0 and 1:
    # MLP 0.777-0.809, CNN 0.823-0.838 test accuracy (chance is 0.1).
    assert accuracy > 0.7
