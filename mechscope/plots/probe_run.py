"""The figures of a probed activation image (`mechscope.probes.ProbeRun`), by file stem.

Example:
    >>> for stem, fig in probe_run_figures(run).items():
    ...     save_figure(fig, f"figures/{stem}.png")
"""

from __future__ import annotations

from mechscope.plots._style import Figure
from mechscope.plots.probes import plot_kernel_responses, plot_probe_kernels, plot_probe_report
from mechscope.probes.by_layer import ProbeRun
from mechscope.probes.conv import ConvProbe

__all__ = ["probe_run_figures"]


def probe_run_figures(run: ProbeRun, *, max_cases: int | None = 25) -> dict[str, Figure]:
    """Draw a probe run: `probe_accuracy` always, `kernels` and `kernel_responses` for a ConvProbe.

    `probe_accuracy` sets task against baseline, control task and untrained copy;
    `kernels` shows the learned kernels; `kernel_responses` each kernel's response to one
    example per case (rows = cases, columns = kernels).

    Args:
        run: A ProbeRun.
        max_cases: Show at most this many cases (None: all).

    Returns:
        File stem -> Figure, in that order.
    """
    figures = {"probe_accuracy": plot_probe_report(run.report)}
    if isinstance(run.probe, ConvProbe):
        height, width = run.image.images.shape[1:]
        figures["kernels"] = plot_probe_kernels(run.probe.kernels_)
        indices = run.case_indices if max_cases is None else run.case_indices[:max_cases]
        responses = run.probe.kernel_responses(run.image.images[indices])
        title = f"Kernel-filtered activation images ({height} layers x {width} units), one example per case"
        figures["kernel_responses"] = plot_kernel_responses(responses, run.case_titles[: len(indices)], title=title)
    return figures
