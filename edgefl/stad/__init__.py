"""STAD — Small Target Aware Detector for hyperspectral anomaly detection.

J. Ma, W. Xie, Y. Li, "Exploring hyperspectral anomaly detection with human vision: A small target
aware detector", Neural Networks 184 (2025) 107036 (arXiv 2401.01093); re-implemented without the
official code (majitao-xd/STAD-HAD has no licence).

Modules: ``prep`` (band selection, normalisation), ``rx`` (global RX baseline), ``metrics`` (HAD metrics and
figures), ``stf`` (small target filter), ``blobs`` (pseudo-anomalies), ``config`` (StadSettings: defaults
and why), ``train`` (teacher training on anomaly-free data), ``distill`` (stage-wise distillation),
``scoregraph`` (forward-only device score), ``detect`` (anomaly maps), ``pipeline`` (training cubes,
save/load checkpoints), ``export`` (ONNX bundle of the device score graph), ``run`` (the library calls
behind `edgefl compress stad` and `edgefl detect`). Torch-dependent modules are imported on use. The two
networks are zoo models (``edgefl.models.stad_teacher``, ``edgefl.models.stad_student``), so loading a
checkpoint rebuilds them without the method.

As a registry method (``METHOD``): the data are HSI scenes; ``plan`` prepares the anomaly-free training
cubes, ``apply`` trains the teacher (unless one is given as the model) and distils the student; the
student is the compressed model, the teacher is in ``parts``. ``edgefl export`` routes its checkpoints
to ``export.export_bundle`` (``cube`` in, ``score`` out), not to the classifier exporter.

Choices against the paper and the official code (details in each module): Transformer teacher as in the
official code (not the paper's "fully connected" one) but with pre-norm layers; 3×3-conv student with
hidden width 16; first 10 bands; global min-max normalisation in both paths; STF with a
pseudo-inverse/ridge and no OpenCV; score = STF-weighted reconstruction error by default (the exact
input-gradient score is available everywhere, including the device graph).
"""

from edgefl.compress.method import CompressionResult, Method
from edgefl.stad.config import StadSettings
from edgefl.stad.export import export_bundle, is_stad_checkpoint


def plan(teacher, scenes: list, settings: StadSettings, progress=None) -> dict:
    """The training cubes: selected bands, global min-max, ground-truth anomalies in-painted away."""
    from edgefl.stad.pipeline import training_cubes

    return {"scenes": [s.name for s in scenes], "cubes": training_cubes(scenes, settings)}


def apply(teacher, scenes: list, plan: dict, settings: StadSettings, progress=None) -> CompressionResult:
    """Train the teacher on the planned cubes (unless ``teacher`` is given), then distil the student.

    Returns:
        CompressionResult: ``model`` = the student, ``parts`` = {"teacher", "history"}, totals =
        parameter counts, final losses and the teacher's blob restoration ratio; no per-layer rows.
    """
    from edgefl.compress.restore import compression_state
    from edgefl.stad.distill import distill_student
    from edgefl.stad.pipeline import parameter_count
    from edgefl.stad.train import blob_restoration, train_teacher

    cubes, cfg = plan["cubes"], settings
    tasks = {}
    if progress is not None:
        if teacher is None:
            tasks["teacher"] = progress.task("teacher (transformer)", total=cfg.teacher_steps)
        tasks["student"] = progress.task("student (distillation)", total=cfg.student_steps)

    def on_step(stage):
        return (lambda step, total, loss: tasks[stage].advance(loss=loss)) if stage in tasks else None

    if teacher is None:
        teacher, history = train_teacher(cubes, cfg, on_step("teacher"))
    else:
        history = {"teacher_loss": [], "blob_restoration": blob_restoration(teacher.eval(), cubes, cfg)}
    student, student_history = distill_student(teacher, cubes, cfg, on_step("student"))
    history = {**history, **student_history, "scenes": plan["scenes"]}
    totals = {
        "teacher_parameters": parameter_count(teacher),
        "student_parameters": parameter_count(student),
        "teacher_final_loss": history["teacher_loss"][-1] if history["teacher_loss"] else None,
        "student_final_loss": history["student_loss"][-1],
        "blob_restoration": history["blob_restoration"],
    }
    state = compression_state("stad", None, {}, settings=cfg.to_dict())
    return CompressionResult(student, state, [], totals, {}, {"teacher": teacher, "history": history})


METHOD = Method(
    name="stad",
    label="STAD distillation",
    settings=StadSettings,
    plan=plan,
    apply=apply,
    export=export_bundle,
    claims=is_stad_checkpoint,
)
