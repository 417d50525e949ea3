"""maskgate: a doorway gate that unlocks only for people wearing a face mask.

The package is split by the stages of the data's path (see README): ``maskgate.edge`` is the on-device
loop and depends only on the device packages; ``maskgate.models`` and ``maskgate.convert`` are the
workstation side (Keras, TensorFlow); ``maskgate.deploy`` builds and flashes SD images.
Importing this package has no side effects and imports nothing heavy.
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("maskgate")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
