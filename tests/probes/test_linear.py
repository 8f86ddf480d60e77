from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mechscope.errors import ConfigError
from mechscope.probes import LinearProbe


def _planted(n: int = 2000, d: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gaussian activations plus label * direction: the planted linear feature."""
    g = torch.Generator().manual_seed(seed)
    direction = F.normalize(torch.randn(d, generator=g), dim=0)
    labels = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, d, generator=g) + 3.0 * labels[:, None] * direction
    return x, labels, direction


def test_linear_probe_recovers_planted_linear_feature():
    x, labels, direction = _planted()
    probe = LinearProbe().fit(x[:1500], labels[:1500])
    learned = probe.coef_[1] - probe.coef_[0]  # the log-odds direction of class 1
    assert float(F.cosine_similarity(learned, direction, dim=0)) > 0.95
    assert probe.score(x[1500:], labels[1500:]) > 0.9


def test_linear_probe_recovers_planted_continuous_feature():
    x, _, direction = _planted(seed=1)
    value = x @ (2.5 * direction) + 0.7
    probe = LinearProbe(alpha=0.0).fit(x, value)
    assert torch.allclose(probe.coef_[0], 2.5 * direction, atol=1e-4)
    assert abs(float(probe.intercept_[0]) - 0.7) < 1e-4


def test_linear_probe_ridge_matches_closed_form_oracle():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(200, 6, generator=g), torch.randn(200, 2, generator=g)
    alpha = 0.3
    probe = LinearProbe(alpha=alpha, standardize=False).fit(x, y)
    xn, yn = x.double().numpy(), y.double().numpy()
    xc, yc = xn - xn.mean(0), yn - yn.mean(0)
    coef = np.linalg.solve(xc.T @ xc / 200 + alpha * np.eye(6), xc.T @ yc / 200).T
    np.testing.assert_allclose(probe.coef_.numpy(), coef, atol=1e-5)
    np.testing.assert_allclose(probe.intercept_.numpy(), yn.mean(0) - coef @ xn.mean(0), atol=1e-5)


def test_linear_probe_softmax_matches_sklearn_oracle():
    from sklearn.linear_model import LogisticRegression

    g = torch.Generator().manual_seed(3)
    x = torch.randn(300, 4, generator=g)
    y = (x @ torch.randn(4, 3, generator=g) + 0.5 * torch.randn(300, 3, generator=g)).argmax(dim=1)
    alpha = 0.01
    ours = LinearProbe(alpha=alpha, standardize=False).fit(x, y).predict_proba(x)["y"].numpy()
    # scikit-learn minimises C * sum(loss) + ||w||^2 / 2, i.e. C = 1 / (alpha * n).
    reference = LogisticRegression(C=1.0 / (alpha * 300), tol=1e-10, max_iter=10_000).fit(x.numpy(), y.numpy())
    np.testing.assert_allclose(ours, reference.predict_proba(x.numpy()), atol=2e-3)


def test_linear_probe_repeated_rows_give_the_same_solution():
    x, labels, _ = _planted(n=300)
    once = LinearProbe().fit(x, labels)
    twice = LinearProbe().fit(torch.cat([x, x]), torch.cat([labels, labels]))
    assert torch.allclose(once.coef_, twice.coef_, atol=1e-4)


def test_linear_probe_decision_is_affine_in_input_units():
    x, labels, _ = _planted(n=200)
    probe = LinearProbe().fit(x, {"c": labels, "v": x[:, 0] * 2.0})
    assert torch.allclose(probe.decision_function(x), x @ probe.coef_.T + probe.intercept_, atol=1e-5)


def test_linear_probe_negative_alpha_raises():
    with pytest.raises(ConfigError, match="alpha must be a finite number >= 0, got -1"):
        LinearProbe(alpha=-1).fit(torch.randn(10, 2), torch.arange(10) % 2)
