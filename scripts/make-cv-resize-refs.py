#!/usr/bin/env python3
"""Reference outputs of OpenCV's cv2.resize(INTER_LINEAR) on 8-bit RGB images, for
test/segmentation.test.ts: mmcv (and so mmsegmentation) resizes every test image with it.

OpenCV's Python bindings are not installed here, but Debian's libopencv-imgproc is (a dependency
of python3-torch's stack): its C API (cvResize on CvMat headers) is called through ctypes.

    /usr/bin/python3 scripts/make-cv-resize-refs.py      # writes test/data/cv-resize/

Each case is a seeded random image (smooth gradients plus noise, so both rounding paths are hit)
and its resized version; cases.json lists sizes, files and the OpenCV version.
"""
import ctypes, json, os
import numpy as np

core = ctypes.CDLL('libopencv_core.so.406')
imgproc = ctypes.CDLL('libopencv_imgproc.so.406')
core.cvCreateMatHeader.restype = ctypes.c_void_p
core.cvCreateMatHeader.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
core.cvSetData.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
core.cvReleaseMat.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
imgproc.cvResize.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
CV_8UC3, CV_INTER_LINEAR = 16, 1


def header(array):
    mat = core.cvCreateMatHeader(array.shape[0], array.shape[1], CV_8UC3)
    core.cvSetData(mat, array.ctypes.data, array.shape[1] * 3)
    return mat


def cv_resize(image, width, height):
    image = np.ascontiguousarray(image, dtype=np.uint8)
    out = np.zeros((height, width, 3), np.uint8)
    src, dst = header(image), header(out)
    imgproc.cvResize(src, dst, CV_INTER_LINEAR)
    for mat in (src, dst):
        core.cvReleaseMat(ctypes.byref(ctypes.c_void_p(mat)))
    return out


def image(width, height, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / max(1, width - 1), y * 255 / max(1, height - 1), (x + y) * 127 / max(1, width + height - 2)], -1)
    return np.clip(base + rng.integers(-40, 41, (height, width, 3)), 0, 255).astype(np.uint8)


# (source w, h) -> (destination w, h): up, down, non-integer, exact half (INTER_AREA), one axis,
# row lengths whose SIMD tail is above and below 8 values, and an mmseg-like keep-ratio rescale.
CASES = [
    ((9, 7), (13, 5)), ((7, 9), (14, 18)), ((37, 23), (64, 40)), ((64, 48), (32, 24)), ((50, 34), (25, 17)),
    ((96, 40), (17, 11)), ((31, 31), (31, 19)), ((40, 30), (11, 30)), ((23, 17), (6, 3)), ((120, 90), (75, 56)),
    ((161, 83), (256, 132)), ((300, 200), (120, 80)), ((128, 96), (64, 48)), ((5, 3), (1, 1)), ((2, 2), (7, 7)),
]


def main():
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'data', 'cv-resize')
    os.makedirs(out_dir, exist_ok=True)
    cases = []
    for i, ((sw, sh), (dw, dh)) in enumerate(CASES):
        src = image(sw, sh, i)
        dst = cv_resize(src, dw, dh)
        name = f'case{i:02d}'
        src.tofile(os.path.join(out_dir, f'{name}-src.bin'))
        dst.tofile(os.path.join(out_dir, f'{name}-dst.bin'))
        cases.append({'name': name, 'src': [sw, sh], 'dst': [dw, dh]})
    meta = {'opencv': 'libopencv-imgproc 4.6 (Debian), cvResize INTER_LINEAR, CV_8UC3', 'cases': cases}
    with open(os.path.join(out_dir, 'cases.json'), 'w') as f:
        json.dump(meta, f, indent=1)
        f.write('\n')


if __name__ == '__main__':
    main()
