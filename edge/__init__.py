"""The on-device gate: frames → face detection → mask classification → policy → lock.

Depends only on the device packages (ai-edge-litert or tflite-runtime, numpy, opencv-python-headless,
gpiozero, and picamera2 on a Pi).  TensorFlow is never imported here.
"""
