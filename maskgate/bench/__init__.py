"""How fast the gate is, side by side with what it replaces, measured in one run on the same frames.

Rows (see :data:`ROWS`):

* ``ours`` — the gate's per-frame path, :meth:`FrameAnalyzer.analyse` as ``maskgate run`` builds it
  (resize into the interpreter's input, int8 detector, decode/NMS, crops, int8 classifier);
* ``seeds`` — the tutorials' pipeline the project started from: cv2.dnn res10 in float at 300x300,
  threshold 0.5, then for each face a 224x224 RGB crop → Keras MobileNetV2 (alpha 1.0, untrained
  weights: only the cost matters) called with ``predict`` per face.  Needs the optional TensorFlow
  extra; TensorFlow is imported for this row only, after the other rows are timed;
* ``cv2_res10`` — cv2.dnn res10 alone, float, 300x300: the strongest off-the-shelf runtime for the
  same detector; ``cv2_res10_gate_size`` — the same at the gate's detector size, to separate what
  the smaller input buys from what the runtime and int8 buy;
* ``ours_300x300`` — the same path with the int8 detector at res10's reference size: what the
  doorway's smaller input buys;
* ``float_tflite`` — our float TFLite models through the same code path: what quantization buys.

How each number is measured: :data:`METHOD` (also in the JSON report and docs/performance.md).

One module per pipeline or measurement: :mod:`.ours`, :mod:`.seeds`, :mod:`.cv2_dnn`,
:mod:`.float_tflite` (the rows), :mod:`.timing` (side by side), :mod:`.processes` and
:mod:`.gate_runs` (peak RSS, the idle doorway), :mod:`.web_page` (the gate with its page open),
:mod:`.eval_rates`, :mod:`.report`; :mod:`.suite` runs them all.
"""

from maskgate.bench.common import (
    CLIP_FPS, EVAL_TARGET_POINTS, EXTRAS, GATE_RSS_TARGET_MB, IDLE_TARGET_PERCENT, METHOD, ROWS, SEEDS_INPUT,
    SEEDS_THRESHOLD, TARGETS, FrameSet, Row, Skipped, bench_config, detector_size, float_model_paths,
)
from maskgate.bench.cv2_dnn import row_cv2
from maskgate.bench.eval_rates import compare_int8_float, gate_rates, recorded_eval
from maskgate.bench.float_tflite import row_float
from maskgate.bench.gate_runs import gate_config, measure_gate_rss, measure_idle
from maskgate.bench.ours import row_ours, row_ours_300
from maskgate.bench.processes import Measured, child_main, peak_rss, python_measured
from maskgate.bench.report import _targets, format_report
from maskgate.bench.seeds import SeedsPipeline, row_seeds
from maskgate.bench.suite import BenchOptions, _add_ratios, build_row, machine_info, run_bench
from maskgate.bench.timing import stage_breakdown, summarise, time_rows

__all__ = [
    "CLIP_FPS", "EVAL_TARGET_POINTS", "EXTRAS", "GATE_RSS_TARGET_MB", "IDLE_TARGET_PERCENT", "METHOD", "ROWS",
    "SEEDS_INPUT", "SEEDS_THRESHOLD", "TARGETS", "FrameSet", "Row", "Skipped", "bench_config", "detector_size",
    "float_model_paths", "row_cv2", "compare_int8_float", "gate_rates", "recorded_eval", "row_float", "gate_config",
    "measure_gate_rss", "measure_idle", "row_ours", "row_ours_300", "Measured", "child_main", "peak_rss",
    "python_measured", "_targets", "format_report", "SeedsPipeline", "row_seeds", "BenchOptions", "_add_ratios",
    "build_row", "machine_info", "run_bench", "stage_breakdown", "summarise", "time_rows",
]
