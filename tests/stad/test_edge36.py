"""The exported STAD bundle under the Python 3.6 edge stack (numpy 1.19, onnxruntime 1.10) gives the
torch map: the device path is `edgefl.runtime.engine.open_engine(bundle).infer({"cube": ...})`."""

import os
import subprocess
import textwrap

import numpy as np
import torch

import edgefl.runtime
from edgefl.data import load_hsi_scene
from edgefl.stad.detect import SCORE_PATHS
from edgefl.stad.pipeline import load_stad
from edgefl.stad.prep import chw_from_hwc, minmax_normalize, select_bands

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from edgefl.runtime.engine import open_engine
    engine = open_engine(sys.argv[1], backend="onnxruntime")
    cube = np.load(sys.argv[2])
    np.save(sys.argv[3], engine.infer({"cube": cube[None]})["score"][0])
    print(sys.version_info[:2], np.__version__)
    """
)


def edge_pythonpath(tmp_path):
    """A folder where `edgefl` holds only the runtime, as on the device."""
    pkg = tmp_path / "edge" / "edgefl"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    os.symlink(os.path.dirname(edgefl.runtime.__file__), str(pkg / "runtime"))
    return str(tmp_path / "edge")


def test_bundle_on_python36_matches_torch(tiny_stad, python36, tmp_path):
    torch.set_num_threads(1)
    out, _ = tiny_stad
    student, stad = load_stad(out / "student")
    for name in ("hydice", "pavia"):
        scene = load_hsi_scene(name)
        selected = select_bands(scene.cube, stad["channels"], stad["band_mode"])
        np.save(str(tmp_path / "cube.npy"), chw_from_hwc(selected))
        (tmp_path / "run.py").write_text(SCRIPT)
        r = subprocess.run(
            [
                python36,
                str(tmp_path / "run.py"),
                str(out / "bundle"),
                str(tmp_path / "cube.npy"),
                str(tmp_path / "score.npy"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
            env=dict(
                os.environ,
                PYTHONPATH=edge_pythonpath(tmp_path) if name == "hydice" else str(tmp_path / "edge"),
            ),
        )
        assert r.returncode == 0, r.stderr
        assert "(3, 6)" in r.stdout
        edge = np.load(str(tmp_path / "score.npy"))
        ref = SCORE_PATHS[stad["score"]](student, chw_from_hwc(minmax_normalize(selected)))
        assert edge.shape == scene.cube.shape[:2]
        assert np.abs(edge - ref).max() <= 1e-5 * np.abs(ref).max()
