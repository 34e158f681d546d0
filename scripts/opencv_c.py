"""OpenCV's C API through ctypes, for the reference scripts (OpenCV's Python bindings are not
installed here; Debian's libopencv-core / libopencv-imgproc 4.6 are): CvMat headers over numpy
arrays, and cvResize / cvCvtColor on them."""
import ctypes

import numpy as np

core = ctypes.CDLL('libopencv_core.so.406')
imgproc = ctypes.CDLL('libopencv_imgproc.so.406')
core.cvCreateMatHeader.restype = ctypes.c_void_p
core.cvCreateMatHeader.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
core.cvSetData.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
core.cvReleaseMat.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
imgproc.cvResize.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
imgproc.cvCvtColor.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
CV_8UC1, CV_8UC3 = 0, 16
CV_INTER_NN, CV_INTER_LINEAR = 0, 1
CV_RGB2HSV, CV_HSV2RGB = 41, 55


def header(array):
    """A CvMat header over an H x W (x 3) uint8 array (no copy)."""
    channels = 1 if array.ndim == 2 else array.shape[2]
    mat = core.cvCreateMatHeader(array.shape[0], array.shape[1], CV_8UC1 if channels == 1 else CV_8UC3)
    core.cvSetData(mat, array.ctypes.data, array.shape[1] * channels)
    return mat


def _apply(image, out, call):
    src, dst = header(image), header(out)
    call(src, dst)
    for mat in (src, dst):
        core.cvReleaseMat(ctypes.byref(ctypes.c_void_p(mat)))
    return out


def resize(image, width, height, interpolation):
    image = np.ascontiguousarray(image, dtype=np.uint8)
    out = np.zeros((height, width) + image.shape[2:], np.uint8)
    return _apply(image, out, lambda s, d: imgproc.cvResize(s, d, interpolation))


def cvt_color(image, code):
    image = np.ascontiguousarray(image, dtype=np.uint8)
    return _apply(image, np.zeros_like(image), lambda s, d: imgproc.cvCvtColor(s, d, code))
