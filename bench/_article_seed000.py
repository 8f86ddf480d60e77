"""Seed 000's NumPy code path as the article runs it (bench baseline).

The article's own loops, kept statement for statement where it matters for speed: one-hot
encoding sample by sample, the target trained by per-sample backpropagation through diagonal
activation-derivative matrices (`np.diag`) and matrix products, the weights and test set pickled
and read back, the 5 x 5 activation images recorded one test pair at a time (rounded to 2
decimals) and saved with `np.savez`, and the convolutional probe trained per sample (frames cut
out position by position, 3 kernels of 2 x 2, max over kernels, tanh, 30-30 tanh layers with
dropout, three softmax heads, its kernel gradients formed from the same matrix products) on the
first 90% of the images and scored on the rest. Seeds and constants are the article's
(`np.random.seed(4)` and `np.random.seed(3)`, learning rates 1e-4 and 1e-3, stop when the epoch
error < 0.1). With today's NumPy the target's loop converges on iteration 56 (epoch error
0.0796, the same number the article's own code prints here), the probe's on about 14; the
article's text reports 13 for both.

Left out: the article's printing and its final kernel plots (the mechscope commands draw no
figures either unless asked with `--out`).
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np

MODULUS = 2
N_LAYERS = 7  # the target, counted with its input and output layers
N_TRAIN = N_TEST = 10_000


def _activ_func(x: np.ndarray, layer_type: int) -> np.ndarray:
    if layer_type == 1:
        return np.tanh(x)
    return np.exp(x) / np.exp(x).sum()


def _activ_deriv(x: np.ndarray, layer_type: int) -> np.ndarray:
    if layer_type == 1:
        return 1.0 - np.tanh(x) ** 2.0
    soft_max = np.exp(x) / np.exp(x).sum()
    return soft_max * (1.0 - soft_max)


def _target_setup() -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weights, then one-hot train and test sets, drawn from the global stream as the article does."""
    num_hidden, num_input, num_output = N_LAYERS - 2, 2 * MODULUS, MODULUS
    np.random.seed(4)
    weights_list = []
    for i in range(N_LAYERS - 1):
        if i == 0:
            weights = 2.0 * np.random.random((num_input, num_hidden))
        elif i == N_LAYERS - 2:
            weights = 2.0 * np.random.random((num_hidden, num_output)) - 1.0
        else:
            weights = 2.0 * np.random.random((num_hidden, num_hidden)) - 1.0
        weights_list.append(weights)
    xtrain_pre = np.random.randint(0, MODULUS, (N_TRAIN, 2))
    xtest_pre = np.random.randint(0, MODULUS, (N_TEST, 2))
    ytrain_pre = np.mod(xtrain_pre[:, 0] + xtrain_pre[:, 1], MODULUS)
    ytest_pre = np.mod(xtest_pre[:, 0] + xtest_pre[:, 1], MODULUS)
    xtrain, xtest = np.zeros((N_TRAIN, num_input)), np.zeros((N_TEST, num_input))
    for i in range(N_TRAIN):
        xtrain[i, xtrain_pre[i, 0]] = 1.0
        xtrain[i, xtrain_pre[i, 1] + MODULUS] = 1.0
    for i in range(N_TEST):
        xtest[i, xtest_pre[i, 0]] = 1.0
        xtest[i, xtest_pre[i, 1] + MODULUS] = 1.0
    ytrain, ytest = np.zeros((N_TRAIN, MODULUS)), np.zeros((N_TEST, MODULUS))
    for i in range(N_TRAIN):
        ytrain[i, ytrain_pre[i]] = 1.0
    for i in range(N_TEST):
        ytest[i, ytest_pre[i]] = 1.0
    return weights_list, xtrain, ytrain, xtest, ytest


def _train_target(weights_list: list[np.ndarray], xtrain: np.ndarray, ytrain: np.ndarray,
                  max_iter: int) -> tuple[int, float]:
    """The article's training loop; returns (iterations, last epoch error)."""
    num_layers, alpha, err_tol = N_LAYERS, 0.0001, 0.1
    layers_list: list[np.ndarray] = [np.zeros(1)] * num_layers
    weight_corrects_list: list[np.ndarray] = [np.zeros(1)] * (num_layers - 1)
    iter_num, err = 0, 1.0e5
    while iter_num < max_iter and err > err_tol:
        err = 0.0
        for i in range(xtrain.shape[0]):
            layers_list[0] = xtrain[i]
            for j in range(1, num_layers - 1):
                layers_list[j] = _activ_func(np.matmul(layers_list[j - 1], weights_list[j - 1]), 1)
            layers_list[num_layers - 1] = _activ_func(
                np.matmul(layers_list[num_layers - 2], weights_list[num_layers - 2]), 2)
            delta = layers_list[num_layers - 1] - ytrain[i]
            delta = delta.reshape(1, ytrain.shape[1])
            diag_activs = []
            for j in range(1, num_layers - 1):
                diag_activs.append(np.diag(_activ_deriv(layers_list[j], 1)))
            diag_activs.append(np.diag(_activ_deriv(layers_list[num_layers - 1], 2)))
            mat_prods = [np.matmul(delta, diag_activs[num_layers - 2])]
            for j in range(num_layers - 2):
                new_mat = np.matmul(weights_list[num_layers - 2 - j].T, diag_activs[num_layers - 3 - j])
                mat_prods.append(np.matmul(mat_prods[j], new_mat))
            for j in range(len(weights_list)):
                weight_corrects_list[j] = -alpha * np.outer(layers_list[num_layers - 2 - j], mat_prods[j])
                weights_list[num_layers - 2 - j] += weight_corrects_list[j]
            err += (delta**2.0).sum()
        err /= xtrain.shape[0]
        iter_num += 1
    return iter_num, float(err)


def _target_accuracy(weights_list: list[np.ndarray], xtest: np.ndarray, ytest: np.ndarray) -> float:
    """The article's out-of-sample check, one test pair at a time."""
    num_layers, num_correct = N_LAYERS, 0.0
    layers_list: list[np.ndarray] = [np.zeros(1)] * num_layers
    for i in range(xtest.shape[0]):
        layers_list[0] = xtest[i]
        for j in range(1, num_layers - 1):
            layers_list[j] = _activ_func(np.matmul(layers_list[j - 1], weights_list[j - 1]), 1)
        layers_list[num_layers - 1] = _activ_func(
            np.matmul(layers_list[num_layers - 2], weights_list[num_layers - 2]), 2)
        if layers_list[num_layers - 1].argmax() == ytest[i].argmax():
            num_correct += 1.0
    return num_correct / xtest.shape[0]


def _record(folder: Path) -> None:
    """Read the pickles back, record every test pair's activation image and outputs, save them."""
    with open(folder / "weights.pkl", "rb") as f:
        weights_list = pickle.load(f)
    with open(folder / "Xtest.pkl", "rb") as f:
        xtest = pickle.load(f)
    num_weights = len(weights_list)
    num_input, num_output = weights_list[0].shape[0], weights_list[num_weights - 1].shape[1]
    num_hidden, num_layers = weights_list[0].shape[1], num_weights + 1
    layers_list: list[np.ndarray] = [np.zeros(1)] * num_layers
    activ_mat = np.zeros((num_hidden, num_hidden))
    x_conv = np.zeros((xtest.shape[0], num_hidden, num_hidden))
    y_conv = np.zeros((xtest.shape[0], num_input + num_output))
    for i in range(xtest.shape[0]):
        layers_list[0] = xtest[i]
        for j in range(1, num_layers - 1):
            layers_list[j] = _activ_func(np.matmul(layers_list[j - 1], weights_list[j - 1]), 1).round(decimals=2)
        layers_list[num_layers - 1] = _activ_func(
            np.matmul(layers_list[num_layers - 2], weights_list[num_layers - 2]), 2).round(decimals=2)
        y_conv[i, 0:num_input] = xtest[i]
        y_conv[i, num_input:num_input + num_output] = layers_list[num_layers - 1]
        for j in range(num_hidden):
            activ_mat[j] = layers_list[j + 1]
        x_conv[i] = activ_mat
    np.savez(folder / "X_conv", np.asanyarray(x_conv, dtype=object))
    np.savez(folder / "y_conv", np.asanyarray(y_conv, dtype=object))


def _capture_frames(image: np.ndarray, frame_rows: int, frame_cols: int) -> np.ndarray:
    image_rows, image_cols = image.shape[0], image.shape[1]
    frame_pos_horz, frame_pos_vert = image_cols - frame_cols + 1, image_rows - frame_rows + 1
    captured_frames = np.zeros((frame_pos_horz * frame_pos_vert, frame_rows, frame_cols))
    for i in range(frame_pos_horz):
        for j in range(frame_pos_vert):
            captured_frames[frame_pos_vert * i + j, :, :] = image[i:i + frame_rows, j:j + frame_cols]
    return captured_frames.reshape(frame_pos_horz * frame_pos_vert, frame_rows * frame_cols).T


def _probe_activ_func(x: np.ndarray, layer_num: int) -> np.ndarray:
    if layer_num == 1:
        return np.tanh(x)
    n = int(x.shape[1] / 3)
    heads = [np.exp(x[0, h * n:(h + 1) * n]) / np.exp(x[0, h * n:(h + 1) * n]).sum() for h in range(3)]
    return np.concatenate([head.reshape(1, n) for head in heads], axis=1)


def _probe_activ_deriv(x: np.ndarray, layer_num: int) -> np.ndarray:
    if layer_num == 1:
        return 1.0 - np.tanh(x) ** 2.0
    soft_max = _probe_activ_func(x, 2)
    return soft_max * (1.0 - soft_max).reshape(1, x.shape[1])


class _Probe:
    """The article's convolutional probe: kernels, fully connected weights and their training loop."""

    frame_rows = frame_cols = 2
    num_kernels, num_layers, num_hidden = 3, 4, 30

    def __init__(self, image_shape: tuple[int, int], num_output: int) -> None:
        init_factor = 1.0
        self.frame_pos_horz = image_shape[1] - self.frame_cols + 1
        self.frame_pos_vert = image_shape[0] - self.frame_rows + 1
        self.kernels = init_factor * np.random.random((self.num_kernels, self.frame_rows * self.frame_cols)) \
            - init_factor / 2.0
        num_input = self.frame_pos_horz * self.frame_pos_vert
        self.weights_list = []
        for i in range(self.num_layers - 1):
            if i == 0:
                shape = (num_input, self.num_hidden)
            elif i == self.num_layers - 2:
                shape = (self.num_hidden, num_output)
            else:
                shape = (self.num_hidden, self.num_hidden)
            self.weights_list.append(init_factor * np.random.random(shape) - init_factor / 2.0)

    def _forward(self, image: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        image_frames = _capture_frames(image, self.frame_rows, self.frame_cols)
        layer_0_pre = np.zeros((self.num_kernels, image_frames.shape[1]))
        for k in range(self.num_kernels):
            layer_0_pre[k, :] = np.matmul(self.kernels[k].reshape(1, len(self.kernels[k])), image_frames)
        which_kernel = np.argmax(layer_0_pre, axis=0)
        layer_0 = np.max(layer_0_pre, axis=0).reshape(1, layer_0_pre.shape[1])
        return [layer_0], image_frames, which_kernel

    def train(self, xtrain: np.ndarray, ytrain: np.ndarray, max_iter: int) -> tuple[int, float]:
        """The article's probe training loop with dropout; returns (iterations, last epoch error)."""
        alpha, err_tol, num_layers, weights_list = 0.001, 0.1, self.num_layers, self.weights_list
        grad_kernel = np.zeros((self.num_kernels, self.frame_rows * self.frame_cols))
        layers_list: list[np.ndarray] = [np.zeros(1)] * num_layers
        weight_corrects_list: list[np.ndarray] = [np.zeros(1)] * (num_layers - 1)
        err, it = 1000.0, 0
        while it < max_iter and err > err_tol:
            err = 0.0
            for n in range(xtrain.shape[0]):
                (layer_0,), image_frames, which_kernel = self._forward(xtrain[n])
                layers_list[0] = _probe_activ_func(layer_0, 1)
                for j in range(1, num_layers - 1):
                    layers_list[j] = _probe_activ_func(np.matmul(layers_list[j - 1], weights_list[j - 1]), 1)
                layers_list[num_layers - 1] = _probe_activ_func(
                    np.matmul(layers_list[num_layers - 2], weights_list[num_layers - 2]), 2)
                mask_rows = num_layers - 2
                dropout_mask = np.random.randint(0, 2, (mask_rows, self.num_hidden))
                for m in range(1, mask_rows + 1):
                    layers_list[m] = 2.0 * dropout_mask[m - 1] * layers_list[m]
                delta = (layers_list[num_layers - 1] - ytrain[n]).reshape(1, ytrain.shape[1])
                diag_activs = [np.diag(_probe_activ_deriv(layers_list[j], 1).ravel()) for j in range(num_layers - 1)]
                diag_activs.append(np.diag(_probe_activ_deriv(layers_list[num_layers - 1], 2).ravel()))
                for m in range(1, mask_rows + 1):
                    diag_activs[m] = np.diag(dropout_mask[m - 1]) * diag_activs[m]
                mat_prods = [np.matmul(delta, diag_activs[num_layers - 1])]
                for j in range(num_layers - 2):
                    new_mat = np.matmul(weights_list[num_layers - 2 - j].T, diag_activs[num_layers - 2 - j])
                    mat_prods.append(np.matmul(mat_prods[j], new_mat))
                for j in range(len(weights_list)):
                    weight_corrects_list[j] = -alpha * np.outer(layers_list[num_layers - 2 - j], mat_prods[j])
                    weights_list[num_layers - 2 - j] += weight_corrects_list[j]
                np.indices(grad_kernel.shape)  # computed (and unused) by the article on every sample
                for k in range(self.num_kernels):
                    image_frames_masked = image_frames * (which_kernel == k).astype("int64")
                    mat_prod = np.matmul(weights_list[0].T, diag_activs[0])
                    for layer in range(1, len(diag_activs) - 1):
                        mat_prod = np.matmul(np.matmul(weights_list[layer].T, diag_activs[layer]), mat_prod)
                    mat_prod = np.matmul(mat_prod, image_frames_masked.T)
                    grad_kernel[k] = np.matmul(delta, mat_prod)
                self.kernels -= alpha * grad_kernel
                err += np.sum(delta**2.0)
            err /= xtrain.shape[0]
            it += 1
        return it, float(err)

    def all_heads_accuracy(self, xtest: np.ndarray, ytest: np.ndarray) -> float:
        """The article's out-of-sample check: all three heads right (its pooled layer skips the tanh here)."""
        num_layers, weights_list, num_correct = self.num_layers, self.weights_list, 0.0
        layers_list: list[np.ndarray] = [np.zeros(1)] * num_layers
        for n in range(xtest.shape[0]):
            (layer_0,), _, _ = self._forward(xtest[n])
            layers_list[0] = layer_0
            for j in range(1, num_layers - 1):
                layers_list[j] = _probe_activ_func(np.matmul(layers_list[j - 1], weights_list[j - 1]), 1)
            out = _probe_activ_func(np.matmul(layers_list[num_layers - 2], weights_list[num_layers - 2]), 2)
            n_soft = out.shape[1] // 3
            hits = [out[0, h * n_soft:(h + 1) * n_soft].argmax() == ytest[n][h * n_soft:(h + 1) * n_soft].argmax()
                    for h in range(3)]
            if all(hits):
                num_correct += 1.0
        return num_correct / xtest.shape[0]


def run(folder: Path, *, max_iter: int = 500) -> dict[str, float]:
    """The whole pipeline in `folder`; returns seconds per stage, iterations and accuracies.

    `max_iter` is the article's cap on each training loop.
    """
    folder = Path(folder)
    times: dict[str, float] = {}
    start = time.perf_counter()
    weights_list, xtrain, ytrain, xtest, ytest = _target_setup()
    target_iters, target_err = _train_target(weights_list, xtrain, ytrain, max_iter)
    target_accuracy = _target_accuracy(weights_list, xtest, ytest)
    for name, value in (("weights.pkl", weights_list), ("Xtest.pkl", xtest), ("ytest.pkl", ytest)):
        with open(folder / name, "wb") as f:
            pickle.dump(value, f)
    times["target_s"] = time.perf_counter() - start

    start = time.perf_counter()
    _record(folder)
    times["record_s"] = time.perf_counter() - start

    start = time.perf_counter()
    np.random.seed(3)
    xconv = np.load(folder / "X_conv.npz", allow_pickle=True)["arr_0"].astype("float64")
    yconv = np.load(folder / "y_conv.npz", allow_pickle=True)["arr_0"].astype("float64")
    n_soft = int(yconv.shape[1] / 3)
    for i in range(xconv.shape[0]):  # the output head becomes one-hot
        max_ind = yconv[i, 2 * n_soft:3 * n_soft].argmax()
        yconv[i, 2 * n_soft:3 * n_soft] = 0.0
        yconv[i, 2 * n_soft + max_ind] = 1.0
    num_train = int(np.round(xconv.shape[0] * 0.9))
    probe = _Probe(xconv[0].shape, yconv.shape[1])
    probe_iters, probe_err = probe.train(xconv[:num_train], yconv[:num_train], max_iter)
    probe_accuracy = probe.all_heads_accuracy(xconv[num_train:], yconv[num_train:])
    times["probe_s"] = time.perf_counter() - start
    return {
        **times, "target_iterations": target_iters, "target_error": target_err, "target_accuracy": target_accuracy,
        "probe_iterations": probe_iters, "probe_error": probe_err, "probe_accuracy": probe_accuracy,
    }
