"""Our float TFLite models through the same code path: what quantization buys."""

from __future__ import annotations

from maskgate.bench.common import Row, Skipped, _file_bytes, float_model_paths
from maskgate.bench.ours import _classified, _models_detail


def row_float(cfg) -> Row:
    from maskgate.edge.model_files import build_analyzer

    fdet, fclf = float_model_paths(cfg)
    missing = [p for p in (fdet, fclf) if not p.is_file()]
    if missing:
        raise Skipped(f"float models not found ({', '.join(map(str, missing))}); "
                      "`maskgate convert` makes them")
    analyzer = build_analyzer(cfg, detector=fdet, classifier=fclf)
    return Row("float_tflite", analyzer.analyse, _file_bytes(fdet, fclf), _models_detail(analyzer),
               faces=_classified, info={"analyzer": analyzer})
