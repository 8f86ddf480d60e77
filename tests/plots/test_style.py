from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest

from mechscope.errors import OutputError
from mechscope.plots import save_figure
from mechscope.plots._style import plt


def test_save_figure_writes_the_drawing_and_closes_the_figure(tmp_path):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.imshow(np.eye(4), cmap="gray")
    ax.set_axis_off()
    path = save_figure(fig, tmp_path / "nested" / "eye.png")
    assert path == tmp_path / "nested" / "eye.png" and not plt.fignum_exists(fig.number)
    picture = matplotlib.image.imread(path)
    assert picture.shape[0] > 50 and picture.shape[1] > 50
    assert picture[..., :3].min() == 0.0 and picture[..., :3].max() == 1.0  # black and white pixels both drawn


def test_save_figure_closes_the_figure_when_the_write_is_refused(tmp_path):
    (tmp_path / "user.png").write_bytes(b"\x89PNG\r\n\x1a\nmine")
    fig = plt.figure()
    with pytest.raises(OutputError, match="does not hold a figure"):
        save_figure(fig, tmp_path / "user.png")
    assert not plt.fignum_exists(fig.number)
