"""Triton's and KServe's own HTTP request/response code against `swiftformer serve`.

Neither client installs here (no PyPI), so this loads their encoders and decoders from source
trees given on the command line (tritonclient's src/python/library, kserve's python/kserve), with
stand-ins only for what those modules import and these code paths never call (rapidjson and orjson
by the standard json module, grpc and pandas by empty names). The requests the clients build are
sent as the clients send them (headers included) and the responses read by the clients' own code.

  /usr/bin/python3 test/serve_clients.py URL MODEL INPUT.bin LOGITS.bin --triton DIR --kserve DIR

Prints one line per check and exits 1 on the first failure.
"""
import argparse
import importlib.util
import json
import sys
import types
import urllib.error
import urllib.request

import numpy as np


def module(name, path=None, package_dir=None):
    """Registers `name`: loaded from `path`, or an empty (package) module."""
    if path is None:
        m = types.ModuleType(name)
        if package_dir is not None:
            m.__path__ = [package_dir]
        sys.modules[name] = m
        return m
    spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=[package_dir] if package_dir else None)
    m = importlib.util.module_from_spec(spec)
    sys.modules[name] = m
    spec.loader.exec_module(m)
    return m


def post(url, body, headers):
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def check(ok, what):
    print(("ok  " if ok else "FAIL") + " " + what)
    if not ok:
        sys.exit(1)


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def triton(src, url, model, x, ref):
    root = src + "/tritonclient"
    sys.modules.setdefault("rapidjson", json)
    module("tritonclient", package_dir=root)
    module("tritonclient.utils", root + "/utils/__init__.py", root + "/utils")
    module("tritonclient.http", package_dir=root + "/http")  # its __init__ needs geventhttpclient
    utils = module("tritonclient.http._utils", root + "/http/_utils.py")
    infer_input = module("tritonclient.http._infer_input", root + "/http/_infer_input.py")
    requested = module("tritonclient.http._requested_output", root + "/http/_requested_output.py")
    result = module("tritonclient.http._infer_result", root + "/http/_infer_result.py")

    class Response:
        """What tritonclient's _get_error reads of a response."""
        def __init__(self, status, body):
            self.status_code, self._body = status, body

        def read(self):
            return self._body

    def infer(inputs, outputs, request_id="", parameters=None):
        body, json_size = utils._get_inference_request(
            inputs=inputs, request_id=request_id, outputs=outputs, sequence_id=0, sequence_start=False,
            sequence_end=False, priority=0, timeout=None, custom_parameters=parameters)
        # As InferenceServerClient.infer: the header only when binary data follows the JSON.
        headers = {} if json_size is None else {"Inference-Header-Content-Length": str(json_size)}
        status, h, out = post(f"{url}/v2/models/{model}/infer", body, headers)
        error = utils._get_error(Response(status, out))
        if error is not None:
            return None, error
        return result.InferResult.from_response_body(out, False, h.get("Inference-Header-Content-Length")), None

    for binary_in in (True, False):
        for binary_out in (True, False):
            inp = infer_input.InferInput("pixel_values", list(x.shape), "FP32")
            inp.set_data_from_numpy(x, binary_data=binary_in)
            out = requested.InferRequestedOutput("logits", binary_data=binary_out)
            res, err = infer([inp], [out], request_id="7")
            check(err is None, f"tritonclient infer (binary input {binary_in}, binary output {binary_out}): {err}")
            logits = res.as_numpy("logits")
            check(logits.shape == ref.shape and rel_err(logits, ref) <= 1e-4, f"  logits {logits.shape} match the fixture: {rel_err(logits, ref):.2e}")
            check(res.get_response()["id"] == "7", "  the request id comes back")
    # No outputs named: the client asks for every output in binary (binary_data_output).
    inp = infer_input.InferInput("pixel_values", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    res, err = infer([inp], None)
    check(err is None and rel_err(res.as_numpy("logits"), ref) <= 1e-4, "tritonclient infer with every output in binary (binary_data_output)")
    out = requested.InferRequestedOutput("logits", class_count=3)
    res, err = infer([inp], [out])
    top = res.as_numpy("logits")
    check(err is None and top.shape == (x.shape[0], 3), f"tritonclient classification (class_count=3): {top.shape}")
    for b in range(x.shape[0]):
        indices = [int(s.decode().split(":")[1]) for s in top[b]]
        check(indices == list(np.argsort(-ref[b])[:3]), f"  row {b}: top 3 classes {indices}")
    bad = infer_input.InferInput("pixels", list(x.shape), "FP32")
    bad.set_data_from_numpy(x)
    _, err = infer([bad], None)
    check(err is not None and err.status() == "400" and "no input 'pixels'" in err.message(), f"tritonclient reads the error: [{err.status()}] {err.message()}")
    status, _, _ = get(f"{url}/v2/health/ready")
    check(status == 200, "tritonclient is_server_ready: status 200")


def kserve(src, url, model, x, ref):
    root = src + "/kserve"
    try:
        import orjson  # noqa: F401
    except ImportError:
        orjson = module("orjson")
        orjson.dumps = lambda o: json.dumps(o).encode()
        orjson.loads = json.loads
        orjson.JSONDecodeError = json.JSONDecodeError
    module("pandas").DataFrame = object
    for name in ("google", "google.protobuf", "google.protobuf.internal"):
        module(name, package_dir="")
    module("google.protobuf.internal.containers").MessageMap = dict
    module("kserve", package_dir=root)
    module("kserve.protocol", package_dir=root + "/protocol")
    module("kserve.protocol.rest", package_dir=root + "/protocol/rest")
    module("kserve.protocol.rest.v2_datamodels").InferenceRequest = type("InferenceRequest", (), {})
    module("kserve.constants", package_dir="")
    module("kserve.constants.constants").GRPC_CONTENT_DATATYPE_MAPPINGS = {}
    errors = module("kserve.errors")
    errors.InvalidInput = type("InvalidInput", (Exception,), {})
    errors.InferenceError = type("InferenceError", (Exception,), {})
    module("kserve.protocol.grpc", package_dir="")
    pb2 = module("kserve.protocol.grpc.grpc_predict_v2_pb2")
    for name in ("ModelInferRequest", "InferTensorContents", "ModelInferResponse", "InferParameter"):
        setattr(pb2, name, type(name, (), {}))
    module("kserve.utils", package_dir=root + "/utils")
    module("kserve.utils.numpy_codec", root + "/utils/numpy_codec.py")
    t = module("kserve.protocol.infer_type", root + "/protocol/infer_type.py")

    for binary_out in (True, False):
        inp = t.InferInput("pixel_values", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=True)
        req = t.InferRequest(model_name=model, infer_inputs=[inp], request_outputs=[t.RequestedOutput("logits", parameters={"binary_data": binary_out})])
        data, json_length = req.to_rest()
        # As InferenceRESTClient.infer.
        headers = {"inference-header-content-length": str(json_length), "content-type": "application/octet-stream"}
        status, h, body = post(f"{url}/v2/models/{model}/infer", data, headers)
        check(status == 200, f"kserve InferRequest.to_rest (binary input, binary output {binary_out}): {status}")
        res = t.InferResponse.from_bytes(body, int(h.get("Inference-Header-Content-Length", len(body))))
        logits = res.outputs[0].as_numpy()
        check(res.model_name == model and rel_err(logits.reshape(ref.shape), ref) <= 1e-4, f"  InferResponse.from_bytes: logits match the fixture: {rel_err(logits.reshape(ref.shape), ref):.2e}")
    status, h, body = post(f"{url}/v2/models/nope/infer", b"{}", {"content-type": "application/json"})
    # InferenceRESTClient shows the server's message only when Content-Type is exactly application/json.
    check(status == 404 and h.get("Content-Type") == "application/json" and "unknown model" in json.loads(body)["error"], f"kserve reads the error: [{status}] {h.get('Content-Type')}")
    for path, key in (("live", "live"), ("ready", "ready")):
        status, _, body = get(f"{url}/v2/health/{path}")
        check(status == 200 and json.loads(body).get(key) is True, f"kserve is_server_{path}: response.json().get('{key}')")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("model")
    p.add_argument("input")
    p.add_argument("logits")
    p.add_argument("--triton")
    p.add_argument("--kserve")
    a = p.parse_args()
    x = np.fromfile(a.input, dtype=np.float32).reshape(2, 3, 224, 224)
    ref = np.fromfile(a.logits, dtype=np.float32).reshape(2, 1000)
    if a.triton:
        triton(a.triton, a.url, a.model, x, ref)
    if a.kserve:
        kserve(a.kserve, a.url, a.model, x, ref)


if __name__ == "__main__":
    main()
