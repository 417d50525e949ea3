"""Our rows: the gate's own per-frame path (int8), and the same with the int8 detector at 300x300."""

from __future__ import annotations

from maskgate.bench.common import Row, Skipped, _file_bytes


def row_ours(cfg) -> Row:
    from maskgate.edge.model_files import build_analyzer, model_paths

    analyzer = build_analyzer(cfg)
    det, clf = model_paths(cfg)
    return Row("ours", analyzer.analyse, _file_bytes(det, clf), _models_detail(analyzer),
               faces=_classified, info={"analyzer": analyzer})


def row_ours_300(cfg) -> Row:
    """The gate's path with the reference-size int8 detector: what the doorway size buys."""
    from maskgate.edge.model_files import artifact_dir, build_analyzer, model_paths

    det = artifact_dir() / "face_detector_300x300_int8.tflite"
    if not det.is_file():
        raise Skipped(f"{det} not found")
    if model_paths(cfg)[0].resolve() == det.resolve():
        raise Skipped("the gate already runs the 300x300 detector (that is the ours row)")
    analyzer = build_analyzer(cfg, detector=det)
    clf = model_paths(cfg)[1]
    return Row("ours_300x300", analyzer.analyse, _file_bytes(det, clf), _models_detail(analyzer),
               faces=_classified)


def _classified(result) -> int:
    """Faces at the door plus the detections the classifier called "not a face" (the classifier's calls,
    less the weak extra faces the analyzer drops without counting them)."""
    return len(result.faces) + result.rejected


def _models_detail(analyzer) -> str:
    d, c = analyzer.detector.model, analyzer.classifier.model
    where = f" on {d.delegate}" if d.delegate else ""
    return (f"{d.path.name} {d.input_shape[2]}x{d.input_shape[1]} + {c.path.name} {c.input_shape[1]}x{c.input_shape[2]}"
            f" ({d.runtime}{where})")
