"""The two models: the Keras port of OpenCV's res10 face detector and the mask classifier.

This folder also holds the committed artifacts (``*.tflite``, ``manifest.json``) that the device
runs.  Importing the package imports nothing heavy; TensorFlow is loaded by the functions that
need it (see :mod:`maskgate.models._tf`).
"""

from pathlib import Path

#: Where the committed artifacts live (inside the installed package as well as in the source tree).
ARTIFACT_DIR = Path(__file__).resolve().parent
