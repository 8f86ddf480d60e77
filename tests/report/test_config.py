from __future__ import annotations

import pytest

from mechscope.errors import ConfigError
from mechscope.report import ReportConfig


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2GB"])
def test_report_config_max_memory_is_a_positive_byte_count_or_none(value):
    assert ReportConfig().max_memory is None
    assert ReportConfig(max_memory=2 << 30).max_memory == 2 << 30
    with pytest.raises(ConfigError, match=r"^ReportConfig\.max_memory must be a positive number of bytes or None "
                                          rf"\(no budget\), got {value!r}\.$"):
        ReportConfig(max_memory=value)
