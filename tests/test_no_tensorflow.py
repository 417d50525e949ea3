"""The device path never imports TensorFlow: the gate and detect run on the device packages alone."""

import subprocess
import sys

CODE = r"""
import sys, json, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import maskgate.edge.gate, maskgate.edge.alerts, maskgate.cli
from maskgate.cli import main
rc = main(['detect', '--json', sys.argv[1]])
assert rc == 0, rc
assert not any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules)
print('ok')
"""


def test_gate_and_detect_run_without_tensorflow(shared):
    frame = shared / "data" / "encounters" / "0001.jpg"
    r = subprocess.run([sys.executable, "-c", CODE, str(frame)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("ok")
    assert '"decision"' in r.stdout
