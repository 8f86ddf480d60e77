"""Reading a transformer's residual stream: logit lens, direct logit attribution, attention patterns."""

from mechscope.lens.attention import attention_patterns, pattern_layers
from mechscope.lens.direct import LogitAttribution, direct_logit_attribution
from mechscope.lens.logit_lens import LogitLens, logit_lens
from mechscope.lens.unembed import Readout, readout

__all__ = [
    "LogitAttribution",
    "LogitLens",
    "Readout",
    "attention_patterns",
    "direct_logit_attribution",
    "logit_lens",
    "pattern_layers",
    "readout",
]
