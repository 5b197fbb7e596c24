"""The run report: one folder per run, for people (Markdown, HTML, SVG pictures) and tools (JSON).

Python API::

    from harness.report import RunReport, write_report
    index = write_report(run_dir / "report", RunReport(
        pipeline=result.to_json(),                    # harness.pipeline.PipelineResult
        state_machine=asl_dict, execution_arn=arn,
        execution_history=sfn.get_execution_history(executionArn=arn)["events"],
        training_log=log_text, registry_item=item, sample_answers=answers,
        details={"api_url": url, "endpoint": name},
    ))

Pictures are written by this package's own small SVG code (`svg.py`): the state machine's path with
each state's status (`statemachine.py`, laid out by Graphviz's `dot`, which the console uses too), the
training loss curve (`metrics.py`), the stage timeline (`timeline.py`). Output is deterministic: the
same inputs give the same bytes.
"""

from harness.report.metrics import final_metrics, loss_curve_svg, loss_points, parse_metric_lines
from harness.report.statemachine import render_svg, state_graph, state_statuses
from harness.report.timeline import timeline_rows, timeline_svg
from harness.report.writer import RunReport, write_report

__all__ = [
    "RunReport",
    "final_metrics",
    "loss_curve_svg",
    "loss_points",
    "parse_metric_lines",
    "render_svg",
    "state_graph",
    "state_statuses",
    "timeline_rows",
    "timeline_svg",
    "write_report",
]
