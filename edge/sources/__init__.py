"""Frame sources behind one interface: picamera2, OpenCV capture (USB, RTSP/HTTP, video file), a
folder of images, one image, and the demo doorway clip.  See :func:`open_source`."""

from maskgate.edge.sources.base import EndOfStream, Frame, FrameSource, unusable_frame
from maskgate.edge.sources.factory import describe_source, open_source

__all__ = ["EndOfStream", "Frame", "FrameSource", "open_source", "describe_source", "unusable_frame"]
