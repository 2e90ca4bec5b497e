"""The serverless function's own package (what function.zip holds): ``handler`` (the
Lambda entry point ``mlperf_pilot_fn.handler.handler``), ``engines`` (minimal wrappers of
onnxruntime, OpenVINO, OpenCV DNN and a null engine) and ``messages`` (a copy of
``mlperf_pilot.serverless.messages``, vendored by the packager). It imports nothing of
mlperf_pilot: only the standard library, numpy, boto3 and the one engine it runs."""
