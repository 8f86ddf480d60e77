"""The attribution section runs one task per method; joined, the tasks equal one call over every method."""

from __future__ import annotations

import torch

from mechscope.attribution import cascading_randomization, faithfulness
from mechscope.attribution.registry import build_method
from mechscope.report.sections.attribution import _joined_faithfulness, _joined_sanity, _method_task, _MethodJob
from mechscope.serialize import to_json
from tests.zoo import TinyResNet


def test_method_tasks_join_into_the_one_call_result() -> None:
    torch.manual_seed(0)
    model = TinyResNet().eval()  # in-place ReLUs, `out += identity`, a ReLU module called twice
    x = torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    names = ["saliency", "grad-cam"]
    job = _MethodJob(model, x[:3], model(x[:3]).argmax(dim=1), x, x[:2], None)
    parts = [_method_task(job, (name, i == 0)) for i, name in enumerate(names)]
    methods = {m.label: m for m in (build_method(name, model) for name in names)}
    whole_faith = faithfulness(model, methods, x, n_steps=32)
    whole_sanity = cascading_randomization(model, methods, x[:2])
    assert to_json(_joined_faithfulness([p.faithfulness for p in parts])) == to_json(whole_faith)
    assert to_json(_joined_sanity([p.sanity for p in parts])) == to_json(whole_sanity)
    assert list(whole_faith.deletion)[-1] == "random" and len(whole_faith.deletion) == 3
    for part, (label, method) in zip(parts, methods.items()):
        assert part.label == label
        assert torch.equal(part.maps, method.attribute(x[:3], job.predicted))
