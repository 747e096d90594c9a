"""Reports are dataclasses that round-trip through dicts; featurization reports add up across shards."""

from __future__ import annotations

import dataclasses
import json

import pytest

from nag_datasets.featurize.report import FeaturizeReport, sum_reports
from nag_datasets.selection.reports import RaySelectionReport, SelectionReport

pytestmark = pytest.mark.fast

A = FeaturizeReport(rows=5, featurized_rows=4, truncated_rows=1, null_rows=1, null_by_reason={"empty": 1}, tokens=60)
B = FeaturizeReport(rows=3, featurized_rows=1, truncated_rows=0, null_rows=2,
                    null_by_reason={"whitespace": 1, "empty": 1}, tokens=9)


def test_featurize_reports_add_up():
    total = A + B
    assert total == FeaturizeReport(rows=8, featurized_rows=5, truncated_rows=1, null_rows=3,
                                    null_by_reason={"empty": 2, "whitespace": 1}, tokens=69)
    assert sum([A, B], FeaturizeReport.empty()) == total
    assert A + FeaturizeReport.empty() == A


def test_featurize_report_round_trips_through_json():
    assert FeaturizeReport.from_dict(json.loads(json.dumps(A.to_dict()))) == A


def test_sharded_summary_sums_like_the_dataclass():
    assert sum_reports([A.to_dict(), B.to_dict()]) == (A + B).to_dict()
    assert sum_reports([]) == FeaturizeReport.empty().to_dict()


def test_ray_selection_report_is_a_dataclass_read_like_a_dict():
    fields = {f.name: i for i, f in enumerate(dataclasses.fields(RaySelectionReport))}
    report = RaySelectionReport(**{name: i for name, i in fields.items()})
    assert RaySelectionReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report
    assert report["documents_selected"] == report.documents_selected == fields["documents_selected"]
    assert report == json.loads(json.dumps(report.to_dict())) and report != {**report.to_dict(), "method": "x"}
    assert set(report.keys()) == set(fields)
    with pytest.raises(KeyError):
        report["nope"]


def test_selection_report_round_trips():
    fields = [f.name for f in dataclasses.fields(SelectionReport)]
    report = SelectionReport.from_dict({name: None for name in fields} | {"documents_selected": 3})
    assert SelectionReport.from_dict(report.to_dict()) == report
