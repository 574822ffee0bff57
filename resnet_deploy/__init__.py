"""resnet-deploy: convert, int8-quantise and package a Keras ResNet for TFLite, ONNX and OpenVINO,
and prove per backend that the artifact still computes what Keras computes.

Importing this package is cheap: TensorFlow, ONNX Runtime and OpenVINO load lazily inside the
target that needs them.
"""
__version__ = "0.1.0"
